// Unit tests of the page's part extension (web/src/parts/) and of the signature check
// it uses (web/integrity.js `verifyObject`), in node: the wire format against the
// examples of crates/p2p/PROTOCOL.md §5, the election hash against the native peer's,
// two PartLinks talking over stand-in connections (routing, one slot, a part with its
// signature, protocol violations), two PartSwarms (one elected HTTP fetcher, the other
// pulls; a part that fails verification bans its sender), and Ed25519-signed objects
// with real keys.
//
//   node --test web/tests/parts.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { webcrypto } from 'node:crypto';
import * as wire from '../src/parts/wire.js';
import { PartLink, peerKey, rendezvous } from '../src/parts/link.js';
import { PartSwarm, partOfUrl } from '../src/parts/swarm.js';
import { newPartStats } from '../src/parts/engine.js';

const require = createRequire(import.meta.url);
const { createVerifier } = require('../integrity.js');
const { subtle } = webcrypto;
const hexOf = (u8) => Buffer.from(u8).toString('hex');
const ascii = (s) => Buffer.from(s, 'ascii').toString('hex');

test('wire: the examples of PROTOCOL.md §5', () => {
  // PartRequest i=123 n=2 r=7 is `cstr 41 69 01 7b 6e 01 02 72 01 07 cend`.
  const [req] = wire.partCommand(wire.CMD.PartRequest, 123, 2, 7);
  assert.equal(hexOf(req), ascii('cstr') + '4169017b6e010272010' + '7' + ascii('cend'));
  // Loaded [1] with the extension: `cstr 00 6c 10 01 01 01 01 78 01 01 cend`.
  const [ann] = wire.segmentsAnnouncement([1], [], wire.EXT_PARTS);
  assert.equal(hexOf(ann), ascii('cstr') + '006c1001010101780101' + ascii('cend'));
  // SegmentRequest i=123 r=456 b=1000 (§2), through the generic encoder.
  const seg = wire.frame(wire.encodeBody(1, [['i', 'int', 123], ['r', 'int', 456], ['b', 'int', 1000]]));
  assert.equal(hexOf(seg[0]), ascii('cstr') + '0169017b720201c8620203e8' + ascii('cend'));
});

test('wire: round trips, splitting and malformed part commands', () => {
  const g = 'k1:' + 'A'.repeat(86) + '==';
  const [m] = wire.partData(898159080, 3, 25000, 42, g);
  const body = m.subarray(4, m.length - 4);
  assert.deepEqual(wire.readCommand(wire.decodeBody(body)), { c: 66, msn: 898159080, index: 3, r: 42, s: 25000, g });
  const packed = [wire.packPart(10, 0), wire.packPart(10, 1), wire.packPart(11, 0), wire.packPart(2 ** 40, 255)];
  const [pa] = wire.partsAnnouncement(packed);
  assert.deepEqual(wire.readCommand(wire.decodeBody(pa.subarray(4, pa.length - 4))).parts, packed);
  // A body too big for one message is split and joins back.
  const big = new Uint8Array(150000).map((_, i) => (i * 7) & 0xff);
  const msgs = wire.frame(big, 65535);
  assert.ok(msgs.length >= 3 && msgs.every((x) => x.length <= 65535 && wire.isCommandChunk(x)));
  const j = new wire.Joiner(1 << 20);
  let out = null;
  for (const x of msgs) out = j.push(x) || out;
  assert.deepEqual(out, big);
  const bad = (items) => () => wire.readCommand(wire.decodeBody(wire.encodeBody(65, items)));
  assert.throws(bad([['i', 'int', 1], ['n', 'int', 256], ['r', 'int', 1]]), wire.WireError);
  assert.throws(bad([['i', 'int', -1], ['n', 'int', 0], ['r', 'int', 1]]), wire.WireError);
  assert.throws(bad([['i', 'int', 1], ['r', 'int', 1]]), wire.WireError);
  assert.throws(bad([['i', 'str', 'x'], ['n', 'int', 0], ['r', 'int', 1]]), wire.WireError);
  assert.throws(() => wire.decodeBody(Uint8Array.of(65, 0x69, 0x30)), wire.WireError);
  const long = wire.encodeBody(66, [['i', 'int', 1], ['n', 'int', 0], ['s', 'int', 1], ['r', 'int', 1], ['g', 'str', 'k:' + 'A'.repeat(300)]]);
  assert.throws(() => wire.readCommand(wire.decodeBody(long)), wire.WireError);
  const [unsent] = wire.partData(1, 0, 1, 1, 'k:' + 'A'.repeat(300));
  assert.equal(wire.readCommand(wire.decodeBody(unsent.subarray(4, unsent.length - 4))).g, undefined);
  assert.equal(wire.readCommand(wire.decodeBody(wire.encodeBody(70, [['z', 'int', 1]]))), null);
});

test('election: the native peer\'s FNV-1a peer key and rendezvous hash', () => {
  const k = peerKey('-PM0203-abcdefghijkl');
  assert.equal(k, 0xd098e8c92ed1466bn);
  assert.equal(rendezvous(k, 898159080 * 256 + 3), 0x13dbe1d84f3bf89dn);
});

test('part names', () => {
  assert.deepEqual(partOfUrl('http://h/live/demo/src/part898159080.3.m4s?x=1'), { msn: 898159080, index: 3 });
  assert.equal(partOfUrl('http://h/live/demo/src/seg1.m4s'), null);
  assert.equal(partOfUrl('http://h/live/demo/src/part1.256.m4s'), null);
});

// ---- two links over stand-in connections ---------------------------------------------

class FakeConn extends EventEmitter {
  constructor() {
    super();
    this.other = null;
    this.sent = [];
  }
  write(m) {
    const copy = Uint8Array.from(m);
    this.sent.push(copy);
    queueMicrotask(() => this.other.emit('data', copy));
    return true;
  }
  destroy() { this.emit('close'); }
}

class FakePeerBase {
  get downloadingSegment() { return this.libraryBusy ? { externalId: 1 } : undefined; }
}

function fakePeer(id, conn) {
  const peer = new FakePeerBase();
  peer.id = id;
  peer.connection = conn;
  peer.library = [];
  peer.destroyed = false;
  peer.destroy = () => { peer.destroyed = true; };
  peer.peerProtocol = {
    peerConfig: { webRtcMaxMessageSize: 1000 },
    onDataReceived: (d) => peer.library.push(Uint8Array.from(d)),
    getUploadingRequestId: () => undefined,
    stopUploadingSegmentData: () => {},
  };
  conn.on('data', peer.peerProtocol.onDataReceived);
  return peer;
}

function pair(store = new Map()) {
  const ca = new FakeConn();
  const cb = new FakeConn();
  ca.other = cb;
  cb.other = ca;
  const seen = { a: [], b: [] };
  const mk = (name, conn) => {
    const peer = fakePeer(`-PM0203-${name.repeat(12)}`, conn);
    const link = new PartLink(peer, {
      onCapability: (l) => seen[name].push('capability'),
      onAnnounce: (l) => seen[name].push(['announce', [...l.remoteParts]]),
      onRequest: (l, msn, index, r) => {
        seen[name].push(['request', msn, index, r]);
        const p = store.get(`${msn}.${index}`);
        if (p) l.sendPart(msn, index, r, p.data, p.g);
        else l.sendAbsent(msn, index, r);
      },
      onViolation: (l, reason) => seen[name].push(['violation', reason]),
      onClosed: () => seen[name].push('closed'),
      onUploaded: () => {},
    });
    link.install();
    return { peer, link };
  };
  return { a: mk('a', ca), b: mk('b', cb), seen, ca, cb };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

test('links: capability, announcements, a part with its signature, absent', async () => {
  const data = new Uint8Array(2500).map((_, i) => i & 0xff);
  const store = new Map([['7.1', { data, g: 'kid:sig' }]]);
  const { a, b, seen } = pair(store);
  // p2p-media-loader's own announcement now carries x; the other side learns it and
  // the library still gets the command.
  a.peer.sendSegmentsAnnouncementCommand([5, 6], []);
  b.peer.sendSegmentsAnnouncementCommand([], []);
  await tick();
  assert.ok(a.link.speaksParts && b.link.speaksParts);
  assert.equal(b.peer.library.length, 1, 'the announcement reached the library too');
  a.link.sendPartsAnnouncement([wire.packPart(7, 1)]);
  await tick();
  assert.deepEqual(seen.b.at(-1), ['announce', [wire.packPart(7, 1)]]);
  assert.equal(b.peer.library.length, 1, 'part commands do not reach the library');
  // While the part download runs p2p-media-loader sees the link as busy.
  const got = b.link.request(7, 1, 1000);
  assert.ok(b.peer.downloadingSegment);
  const { data: bytes, g } = await got;
  assert.deepEqual(bytes, data);
  assert.equal(g, 'kid:sig');
  assert.equal(b.peer.downloadingSegment, undefined);
  assert.equal(b.peer.library.length, 1, 'part bytes do not reach the library');
  // 2500 bytes in chunks of ≤ 1000: header, 3 chunks, completion.
  await assert.rejects(b.link.request(8, 0, 1000), /absent/);
  // Raw data with no part download of ours is the library's.
  a.link.conn.write(new Uint8Array([1, 2, 3]));
  await tick();
  assert.equal(b.peer.library.length, 2);
  assert.deepEqual(seen.a.filter((x) => x[0] === 'violation'), []);
  assert.deepEqual(seen.b.filter((x) => x[0] === 'violation'), []);
});

test('links: one slot, a timeout cancels, a cheating sender is a violation', async () => {
  const { a, b, seen } = pair(new Map());
  a.peer.sendSegmentsAnnouncementCommand([], []);
  b.peer.sendSegmentsAnnouncementCommand([], []);
  await tick();
  b.peer.libraryBusy = true;
  assert.equal(b.link.free, false, 'no part request while the library downloads');
  b.peer.libraryBusy = false;
  // A request nobody answers times out and is cancelled on the wire.
  a.link.events.onRequest = () => {};
  await assert.rejects(b.link.request(9, 0, 20), /timeout/);
  await tick();
  const cancels = a.link.conn.other === b.link.conn ? b.link.conn.sent : [];
  assert.ok(cancels.some((m) => m[4] === wire.CMD.CancelPartRequest));
  // A header, then more bytes than it said: a violation.
  a.link.events.onRequest = (l, msn, index, r) => {
    l.write(wire.partData(msn, index, 10, r));
    l.conn.write(new Uint8Array(11));
  };
  await assert.rejects(b.link.request(9, 1, 1000), /protocol violation/);
  assert.ok(seen.b.some((x) => x[0] === 'violation'));
  // A completion of another request after our header: a violation too.
  const c = pair(new Map());
  c.a.peer.sendSegmentsAnnouncementCommand([], []);
  c.b.peer.sendSegmentsAnnouncementCommand([], []);
  await tick();
  c.a.link.events.onRequest = (l, msn, index, r) => {
    l.write(wire.partData(msn, index, 3, r));
    l.conn.write(new Uint8Array(3));
    l.write(wire.partCommand(wire.CMD.PartSendingCompleted, msn, index, r + 1));
  };
  await assert.rejects(c.b.link.request(3, 0, 1000), /protocol violation/);
  // A malformed part command: a violation.
  const d = pair(new Map());
  d.a.link.write(wire.frame(wire.encodeBody(65, [['i', 'int', 1], ['n', 'int', 999], ['r', 'int', 1]])));
  await tick();
  assert.ok(d.seen.b.some((x) => x[0] === 'violation'));
});

// ---- signed objects -------------------------------------------------------------------

async function signer() {
  const kp = await subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const raw = new Uint8Array(await subtle.exportKey('raw', kp.publicKey));
  const kid = 'k1';
  const objects = {};
  const b64 = (u8) => Buffer.from(u8).toString('base64');
  const sha = async (b) => Buffer.from(await subtle.digest('SHA-256', b)).toString('hex');
  const o = {
    objects,
    fetches: [],
    async header(stream, rendition, name, body) {
      const msg = `mediamesh-object/1\n${stream}\n${rendition}\n${name}\n${await sha(body)}`;
      const sig = new Uint8Array(await subtle.sign('Ed25519', kp.privateKey, new TextEncoder().encode(msg)));
      return `${kid}:${b64(sig)}`;
    },
    sha,
    fetch: async (url) => {
      o.fetches.push(url);
      const path = new URL(url).pathname;
      let body;
      if (path === '/api/v1/keys') body = { keys: [{ kid, alg: 'Ed25519', public_key: b64(raw) }] };
      else if (path === '/live/demo/src/digests.json') {
        const payload = JSON.stringify({ version: 1, stream: 'demo', rendition: 'src', objects });
        const sig = new Uint8Array(await subtle.sign('Ed25519', kp.privateKey, new TextEncoder().encode(payload)));
        body = { kid, payload, signature: b64(sig) };
      } else return new Response('no', { status: 404 });
      return new Response(JSON.stringify(body), { status: 200 });
    },
  };
  return o;
}

test('signatures: a signed part verifies without digests.json; forged or tampered ones do not', async () => {
  const o = await signer();
  const BASE = 'http://127.0.0.1:9/';
  const url = `${BASE}live/demo/src/part5.2.m4s`;
  const part = new TextEncoder().encode('part five two '.repeat(300));
  const g = await o.header('demo', 'src', 'part5.2.m4s', part);
  const v = createVerifier({ base: BASE, fetch: o.fetch });
  let r = await v.verifyObject(url, part, g);
  assert.deepEqual([r.ok, r.via, r.signature], [true, 'signature', g]);
  assert.equal(o.fetches.filter((u) => u.endsWith('digests.json')).length, 0);
  const bad = part.slice();
  bad[10] ^= 1;
  r = await v.verifyObject(url, bad, g);
  assert.deepEqual([r.ok, r.reason], [false, 'bad-signature']);
  // The signature of another object (same bytes, other name) does not carry over.
  r = await v.verifyObject(`${BASE}live/demo/src/part5.3.m4s`, part, g);
  assert.deepEqual([r.ok, r.reason], [false, 'bad-signature']);
  // A malformed value counts as none: digests.json decides (not listed yet here).
  r = await v.verifyObject(url, part, 'garbage');
  assert.deepEqual([r.ok, r.via], [false, 'digests']);
  // No signature, or an unknown kid: digests.json decides (and the value is not relayed).
  o.objects['part5.2.m4s'] = await o.sha(part);
  r = await v.verifyObject(url, part, undefined);
  assert.deepEqual([r.ok, r.via, r.signature], [true, 'digests', null]);
  r = await v.verifyObject(url, part, 'other:' + g.split(':')[1]);
  assert.deepEqual([r.ok, r.via, r.signature], [true, 'digests', null]);
  r = await v.verifyObject(url, bad, undefined);
  assert.deepEqual([r.ok, r.reason], [false, 'digest-mismatch']);
});

// ---- two swarms: the election and the pull ---------------------------------------------

function swarms({ verifyB, config, bufferAhead, fetchDelayMs } = {}) {
  const ca = new FakeConn();
  const cb = new FakeConn();
  ca.other = cb;
  cb.other = ca;
  const ids = { a: '-PM0203-aaaaaaaaaaaa', b: '-PM0203-bbbbbbbbbbbb' };
  const http = [];
  const bans = [];
  const body = new Uint8Array(3000).map((_, i) => (i * 13) & 0xff);
  const fetch = async (url) => {
    http.push(url);
    if (fetchDelayMs) await new Promise((r) => setTimeout(r, fetchDelayMs));
    return new Response(body, { status: 200, headers: { 'mediamesh-signature': 'k1:sig' } });
  };
  const mk = (me, remote, conn, verify) => {
    const s = new PartSwarm({
      folder: 'http://h/live/demo/src/', position: () => 10, fetch, stats: newPartStats(),
      verify: verify || (async (_u, _d, g) => ({ ok: true, reason: '', signature: g })),
      onBan: (id, reason) => bans.push([me, id, reason]),
      config: { tickMs: 20, ...(config || {}) },
      bufferAhead,
    });
    s.me = peerKey(ids[me]);
    const peer = fakePeer(ids[remote], conn);
    s.addPeer(peer);
    return { s, peer };
  };
  const a = mk('a', 'b', ca);
  const b = mk('b', 'a', cb, verifyB);
  a.peer.sendSegmentsAnnouncementCommand([], []);
  b.peer.sendSegmentsAnnouncementCommand([], []);
  const details = {
    url: 'http://h/live/demo/src/index.m3u8', live: true, fragments: [],
    partList: [{ fragment: { sn: 100 }, index: 0, url: 'http://h/live/demo/src/part100.0.m4s', start: 11, duration: 0.5 }],
  };
  return { a: a.s, b: b.s, http, bans, body, details, keys: [peerKey(ids.a), peerKey(ids.b)] };
}

const until = async (cond) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond());
};

test('swarms: one elected fetcher over HTTP, the other pulls the part with its signature', async () => {
  const t = swarms();
  try {
    await tick();
    const packed = wire.packPart(100, 0);
    const aFirst = rendezvous(t.keys[0], packed) > rendezvous(t.keys[1], packed);
    const [fetcher, puller] = aFirst ? [t.a, t.b] : [t.b, t.a];
    fetcher.playlist(t.details);
    puller.playlist(t.details);
    const got = await puller.get('http://h/live/demo/src/part100.0.m4s', null);
    assert.deepEqual(got.data, t.body);
    assert.equal(got.source, 'p2p');
    assert.equal(t.http.length, 1, 'one HTTP fetch in the swarm');
    assert.equal(puller.stats.p2pPartBytes, t.body.length);
    assert.equal(fetcher.stats.uploadedPartBytes, t.body.length);
    assert.equal(puller.parts.get(packed).g, 'k1:sig', 'the signature came along');
  } finally {
    t.a.destroy();
    t.b.destroy();
  }
});

test('swarms: a part that fails verification bans the sender and comes over HTTP', async () => {
  let fail = true;
  const t = swarms({ verifyB: async (_u, _d, g) => (fail ? { ok: false, reason: 'bad-signature' } : { ok: true, signature: g }) });
  try {
    await tick();
    const packed = wire.packPart(100, 0);
    // b pulls from a: make a the fetcher whatever the hash says.
    t.b.me = 0n;
    t.a.me = 0xffffffffffffffffn;
    t.a.playlist(t.details);
    await until(() => t.a.parts.get(packed)?.verified);
    t.b.playlist(t.details);
    const pending = t.b.get('http://h/live/demo/src/part100.0.m4s', null);
    await until(() => t.bans.length === 1);
    fail = false;
    const got = await pending;
    assert.equal(got.source, 'http');
    assert.deepEqual(t.bans[0].slice(0, 2), ['b', '-PM0203-aaaaaaaaaaaa']);
    assert.equal(t.b.stats.rejectedParts, 1);
    assert.equal(t.b.stats.p2pPartBytes, 0);
    assert.equal(t.b.links.size, 0, 'the banned link is gone');
  } finally {
    t.a.destroy();
    t.b.destroy();
  }
});

test('swarms: a part gets one peer try: after a silent holder it comes over HTTP', async () => {
  // a holds the part but does not answer; b asks it once, gives up after the peer
  // wait and fetches over HTTP although a still announces the part.
  const t = swarms({ config: { demandFallbackMs: 60000, minPeerWaitMs: 50, peerTimeoutMs: 50 } });
  try {
    await tick();
    const packed = wire.packPart(100, 0);
    t.b.me = 0n;
    t.a.me = 0xffffffffffffffffn;
    t.a.playlist(t.details);
    await until(() => t.a.parts.get(packed)?.verified);
    t.a.serve = () => {};
    const served = t.http.length;
    t.b.playlist(t.details);
    const got = await t.b.get('http://h/live/demo/src/part100.0.m4s', null);
    assert.equal(got.source, 'http');
    assert.equal(t.b.stats.peerRequests, 1, 'one peer try');
    assert.equal(t.b.stats.peerTimeouts, 1);
    assert.equal(t.http.length, served + 1);
    assert.ok([...t.b.links.values()].some((l) => l.remoteParts.has(packed)), 'a still announces it');
  } finally {
    t.a.destroy();
    t.b.destroy();
  }
});

test('swarms: a part learnt of too late for one whole peer wait comes over HTTP at once', async () => {
  // The playhead is at 10 s; urgent window 300 ms and peer wait 400 ms. a holds the
  // part; for b it starts 600 ms ahead (no room for a whole peer wait): HTTP, no peer
  // try, although a announces it and b is not the elected fetcher.
  const t = swarms({ config: { staggerMs: 60000, demandFallbackMs: 60000 } });
  try {
    await tick();
    const packed = wire.packPart(100, 0);
    t.b.me = 0n;
    t.a.me = 0xffffffffffffffffn;
    const details = { ...t.details, partList: [{ ...t.details.partList[0], start: 10.6 }] };
    t.a.playlist(details);
    await until(() => t.a.parts.get(packed)?.verified);
    const served = t.http.length;
    await until(() => [...t.b.links.values()].some((l) => l.remoteParts.has(packed)));
    t.b.playlist(details);
    const got = await t.b.get('http://h/live/demo/src/part100.0.m4s', null);
    assert.equal(got.source, 'http');
    assert.equal(t.b.stats.peerRequests, 0, 'no peer try');
    assert.equal(t.http.length, served + 1);
  } finally {
    t.a.destroy();
    t.b.destroy();
  }
});

test('swarms: a starving player gets what it asks for over HTTP at once; the urgent window follows HTTP', async () => {
  // b is not the elected fetcher and nobody holds the part: with enough buffered it
  // waits (its HTTP turn and the demand fallback are a minute away here); with less
  // than the least urgent window buffered, it fetches at once.
  for (const starving of [false, true]) {
    const t = swarms({
      config: { staggerMs: 60000, demandFallbackMs: 60000 },
      bufferAhead: () => (starving ? 0.1 : 2),
      fetchDelayMs: 200,
    });
    try {
      await tick();
      t.b.me = 0n;
      t.a.me = 0xffffffffffffffffn;
      assert.equal(t.b.urgentMs(), 300, 'the least window before any HTTP fetch');
      t.b.playlist(t.details);
      const pending = t.b.get('http://h/live/demo/src/part100.0.m4s', null);
      await tick();
      assert.equal(t.http.length, starving ? 1 : 0, `starving: ${starving}`);
      if (starving) {
        const got = await pending;
        assert.equal(got.source, 'http');
        // That fetch of a complete part took at least 200 ms: the window is now at
        // least twice that plus the margin, and never above the cap.
        const w = t.b.urgentMs();
        assert.ok(w >= 2 * 200 + 100 && w <= 2000, `urgent window ${w}`);
      }
    } finally {
      t.a.destroy();
      t.b.destroy();
    }
  }
});

test('swarms: explain names the part the playhead waits for and its state', async () => {
  const t = swarms({ config: { staggerMs: 60000, demandFallbackMs: 60000 }, bufferAhead: () => 2 });
  try {
    await tick();
    t.b.me = 0n;
    t.a.me = 0xffffffffffffffffn;
    assert.equal(t.b.explain(10).part, null, 'nothing listed yet');
    t.b.playlist(t.details);
    t.b.get('http://h/live/demo/src/part100.0.m4s', null);
    const why = t.b.explain(10);
    assert.equal(why.part, '100.0');
    assert.equal(why.state, 'missing');
    assert.equal(why.leadMs, 1000);
    assert.equal(why.waiters, 1);
    assert.equal(why.heldAhead, 0);
    assert.equal(why.rank, 1, 'a is ranked first for it');
  } finally {
    t.a.destroy();
    t.b.destroy();
  }
});
