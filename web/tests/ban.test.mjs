// Unit tests of web/ban.js (the page's session ban of peers that sent bad segments):
// tracker frames relaying an offer or answer from a banned peer id are dropped through
// both listener styles of the WebSocket, others pass untouched; a remote description
// from a banned peer is refused; banning closes the data channels and connections of
// that peer; hostile frames never throw.
//
//   node --test web/tests/ban.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { createBanList, wrapWebSocket, wrapPeerConnection, peerIdOf } = require('../ban.js');

const ID_A = '-PM0203-aaaaaaaaaaaa';
const ID_B = '-PM0203-bbbbbbbbbbbb';
const offerFrom = (id, sdp = 'v=0 offer ' + id) => JSON.stringify({
  action: 'announce', info_hash: 'Uqs7nRWjLxJFjgqwLyBH', peer_id: id,
  offer_id: '\u0001'.repeat(20), offer: { type: 'offer', sdp },
});
const answerFrom = (id, sdp = 'v=0 answer ' + id) => JSON.stringify({
  action: 'announce', info_hash: 'Uqs7nRWjLxJFjgqwLyBH', peer_id: id,
  to_peer_id: ID_B, offer_id: '\u0002'.repeat(20), answer: { type: 'answer', sdp },
});

// A stand-in for the browser WebSocket: an EventTarget with an `onmessage` accessor on
// its prototype, like the real one.
class FakeWebSocket extends EventTarget {
  constructor(url) { super(); this.url = url; this._onmessage = null; }
  get onmessage() { return this._onmessage; }
  set onmessage(fn) { this._onmessage = fn; }
  receive(data) {
    const ev = new MessageEvent('message', { data });
    if (this._onmessage) this._onmessage(ev);
    this.dispatchEvent(ev);
  }
}

test('peer ids decode like p2p-media-loader (UTF-8 of the binary string)', () => {
  assert.equal(peerIdOf(ID_A), ID_A);
  assert.equal(peerIdOf('\u00c3\u00a9'), '\u00e9');
  assert.equal(peerIdOf(42), null);
  assert.equal(peerIdOf('x'.repeat(65)), null);
});

test('frames from a banned peer are dropped, others pass', () => {
  const list = createBanList();
  assert.equal(list.frame(offerFrom(ID_A)), false);
  assert.equal(list.ban(ID_A, 'p2p-segment-validation-failed'), true);
  assert.equal(list.ban(ID_A, 'again'), false, 'a second ban of one id counts once');
  assert.equal(list.frame(offerFrom(ID_A)), true);
  assert.equal(list.frame(answerFrom(ID_A)), true);
  assert.equal(list.frame(offerFrom(ID_B)), false);
  assert.equal(list.frame(JSON.stringify({ action: 'announce', interval: 120, peer_id: ID_A })), false,
    'an announce reply without offer/answer is not ours to drop');
  assert.deepEqual(
    [list.stats.bans, list.stats.refusedOffers, list.stats.refusedAnswers, list.stats.bannedIds],
    [1, 1, 1, [ID_A]],
  );
});

test('hostile frames never throw and are passed on', () => {
  const list = createBanList();
  list.ban(ID_A);
  for (const f of ['', '{', '"offer"', 'null', '[]', '{"offer":1}', '{"offer":{},"peer_id":[1]}',
    '{"answer":{"sdp":5},"peer_id":"' + 'z'.repeat(100) + '"}', 'x'.repeat(2 << 20) + '"offer"',
    undefined, null, 7]) {
    assert.equal(list.frame(f), false, String(f).slice(0, 40));
  }
});

test('the wrapped WebSocket filters onmessage and addEventListener alike', () => {
  const list = createBanList();
  const WS = wrapWebSocket(FakeWebSocket, list);
  const ws = new WS('ws://127.0.0.1/tracker');
  const viaProp = [];
  const viaListener = [];
  ws.onmessage = (ev) => viaProp.push(ev.data);
  const listener = (ev) => viaListener.push(ev.data);
  ws.addEventListener('message', listener);
  assert.equal(typeof ws.onmessage, 'function');

  ws.receive(offerFrom(ID_A));
  list.ban(ID_A);
  ws.receive(offerFrom(ID_A, 'v=0 second'));
  ws.receive(answerFrom(ID_A));
  ws.receive(offerFrom(ID_B));
  ws.receive(new ArrayBuffer(4)); // binary frames are not tracker JSON: passed on
  assert.equal(viaProp.length, 3);
  assert.equal(viaListener.length, 3);
  assert.ok(!viaProp.some((d) => typeof d === 'string' && d.includes('second')));

  ws.removeEventListener('message', listener);
  ws.onmessage = null;
  assert.equal(ws.onmessage, null);
  ws.receive(offerFrom(ID_B));
  assert.equal(viaListener.length, 3, 'removeEventListener removes the wrapped listener');
  assert.equal(viaProp.length, 3);
});

class FakeChannel {
  constructor() { this.closed = false; }
  close() { this.closed = true; }
}
class FakePeerConnection extends EventTarget {
  constructor(config) { super(); this.config = config; this.closed = false; this.remote = null; this.connectionState = 'new'; }
  createDataChannel() { return new FakeChannel(); }
  setRemoteDescription(d) { this.remote = d; return Promise.resolve(); }
  close() { this.closed = true; }
}

test('a banned peer is refused at setRemoteDescription and its connections are closed', async () => {
  const list = createBanList();
  const pcs = wrapPeerConnection(FakePeerConnection, list);
  const PC = pcs.Class;

  // We offered; A answered (the frame passed, so its SDP is noted).
  assert.equal(list.frame(answerFrom(ID_A, 'sdp-of-a')), false);
  const ours = new PC({ iceServers: [] });
  const ch = ours.createDataChannel('data');
  await ours.setRemoteDescription({ type: 'answer', sdp: 'sdp-of-a' });
  // A second, incoming connection from A whose channel arrives by event.
  assert.equal(list.frame(offerFrom(ID_A, 'sdp-of-a-2')), false);
  const theirs = new PC({});
  await theirs.setRemoteDescription({ type: 'offer', sdp: 'sdp-of-a-2' });
  const ch2 = new FakeChannel();
  theirs.dispatchEvent(Object.assign(new Event('datachannel'), { channel: ch2 }));
  // And one to B that must survive.
  list.frame(offerFrom(ID_B, 'sdp-of-b'));
  const other = new PC({});
  const chB = other.createDataChannel('data');
  await other.setRemoteDescription({ type: 'offer', sdp: 'sdp-of-b' });

  list.ban(ID_A, 'p2p-segment-validation-failed');
  assert.equal(ch.closed, true);
  assert.equal(ch2.closed, true);
  assert.equal(chB.closed, false);
  assert.equal(list.stats.closedConnections, 2);
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(ours.closed, true);
  assert.equal(theirs.closed, true);
  assert.equal(other.closed, false);
  assert.equal(pcs.closeAll(ID_A), 0, 'closed connections are forgotten');

  // An SDP of A noted before the ban (a handshake under way) is refused now.
  list.noteSdp('late-sdp-of-a', ID_A);
  const late = new PC({});
  await assert.rejects(late.setRemoteDescription({ type: 'answer', sdp: 'late-sdp-of-a' }), /banned/);
  assert.equal(list.stats.refusedDescriptions, 1);
  // SDPs nobody noted (not from the tracker) pass.
  const unknown = new PC({});
  await unknown.setRemoteDescription({ type: 'offer', sdp: 'never-seen' });
  assert.equal(unknown.remote.sdp, 'never-seen');
});

test('the SDP notes are bounded', () => {
  const list = createBanList();
  for (let i = 0; i < 1000; i++) list.noteSdp('sdp' + i, ID_B);
  assert.equal(list.peerOfSdp('sdp0'), undefined);
  assert.equal(list.peerOfSdp('sdp999'), ID_B);
});
