// End-to-end check of the mediamesh tracker. Usage: node e2e.mjs ws://127.0.0.1:PORT/tracker
// Part 1 drives the REAL npm bittorrent-tracker Client (announce/update/scrape/stop).
// Part 2 uses raw `ws` sockets with hand-made offers/answers, since node has no WebRTC
// here (webrtc-polyfill is replaced by a stub, see package.json "overrides").
// Prints "ok <step>" lines; exits 1 on the first failure and after 20 s at most.
import { Client } from 'bittorrent-tracker'
import WebSocket from 'ws'

const url = process.argv[2]
if (!url) fail('usage: node e2e.mjs ws://HOST:PORT/tracker')
const timer = setTimeout(() => fail('timed out'), 20000)

function fail (msg) { console.error('FAIL: ' + msg); process.exit(1) }
function ok (step) { console.log('ok ' + step) }
function check (cond, msg) { if (!cond) fail(msg) }
const bin = hex => Buffer.from(hex, 'hex').toString('latin1') // 20-byte "binary string"

// Awkward bytes on purpose: NUL, quote, backslash, newline, 0x80-0xff.
const INFO = 'ff00800102030405060708090a0b0c0d0e0f7f22'
const INFO2 = '5c22000a0d80ff7f0102030405060708090a0b0c'
const PEER_A = '2d4d4d303030312da1a2a3a4a5a6a7a8a9aaabac'
const PEER_B = '2d4d4d303030312d000102035c22ff80fe7f0a0d'
const P1 = '2d52573030302d31' + '00'.repeat(12)
const P2 = '2d52573030302d32' + 'ff'.repeat(12)
const OFFER_ID = 'deadbeef' + '80'.repeat(16)

function waitEvent (emitter, event, pred, what) {
  return new Promise(resolve => {
    const on = data => {
      if (!pred(data)) return
      emitter.removeListener(event, on)
      resolve(data)
    }
    emitter.on(event, on)
  }).catch(err => fail(`${what}: ${err}`))
}

function makeClient (peerId, extra) {
  const c = new Client({
    infoHash: INFO,
    peerId,
    announce: [url],
    port: 6881,
    wrtc: {}, // non-false so ws:// trackers are used; numwant 0 means no RTCPeerConnection is made
    getAnnounceOpts: () => Object.assign({ numwant: 0 }, extra)
  })
  c.on('error', err => fail(`client ${peerId} error: ${err.message}`))
  c.on('warning', err => fail(`client ${peerId} warning: ${err.message}`))
  return c
}

async function realClient () {
  const a = makeClient(PEER_A, {})
  const upA = waitEvent(a, 'update', d => d.complete === 0 && d.incomplete === 1, 'A first update')
  a.start()
  const u = await upA
  check(u.infoHash === INFO, `update infoHash ${u.infoHash}`)
  check(u.announce === url, 'update announce url')
  ok('real client A announced: complete=0 incomplete=1')

  const b = makeClient(PEER_B, { left: 0 })
  const upB = waitEvent(b, 'update', d => d.complete === 1 && d.incomplete === 1, 'B update')
  b.start()
  await upB
  ok('real client B (seeder, left=0) announced: complete=1 incomplete=1')

  const sc = waitEvent(a, 'scrape', d => true, 'scrape')
  a.scrape()
  const s = await sc
  check(s.infoHash === INFO, `scrape infoHash ${s.infoHash}`)
  check(s.complete === 1 && s.incomplete === 1 && s.downloaded === 1, `scrape counts ${JSON.stringify(s)}`)
  ok('real client scrape: complete=1 incomplete=1 downloaded=1')

  const afterStop = waitEvent(a, 'update', d => d.complete === 0 && d.incomplete === 1, 'update after B stopped')
  b.stop()
  a.update()
  await afterStop
  ok('real client B stopped: A sees complete=0 incomplete=1')
  await new Promise(resolve => b.destroy(() => a.destroy(resolve)))
}

function rawSocket () {
  const ws = new WebSocket(url)
  ws.inbox = []
  ws.waiters = []
  ws.on('message', data => {
    let msg
    try { msg = JSON.parse(data.toString()) } catch (e) { fail('tracker sent non-JSON: ' + data) }
    ws.inbox.push(msg)
    ws.waiters = ws.waiters.filter(w => !w(msg))
  })
  ws.on('error', err => fail('raw socket error: ' + err.message))
  return new Promise(resolve => ws.once('open', () => resolve(ws)))
}

function next (ws, pred, what) {
  return new Promise(resolve => {
    const i = ws.inbox.findIndex(pred)
    if (i >= 0) return resolve(ws.inbox.splice(i, 1)[0])
    ws.waiters.push(msg => {
      if (!pred(msg)) return false
      ws.inbox.splice(ws.inbox.indexOf(msg), 1)
      resolve(msg)
      return true
    })
  })
}

const announce = (peer, extra) => JSON.stringify(Object.assign({
  action: 'announce', info_hash: bin(INFO2), peer_id: bin(peer), numwant: 0, uploaded: 0, downloaded: 0, left: 10, event: 'started', offers: []
}, extra))

async function rawSignalling () {
  const [r1, r2, r3] = await Promise.all([rawSocket(), rawSocket(), rawSocket()])
  r1.send(announce(P1))
  await next(r1, m => m.action === 'announce' && m.incomplete === 1 && m.info_hash === bin(INFO2))
  ok('raw peer 1 announced')

  const offer = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' }
  r2.send(announce(P2, { numwant: 1, offers: [{ offer, offer_id: bin(OFFER_ID) }] }))
  const resp = await next(r2, m => m.action === 'announce' && m.complete === 0 && m.incomplete === 2)
  check(resp.interval === 120, 'interval 120')
  const got = await next(r1, m => m.offer)
  check(got.action === 'announce' && got.peer_id === bin(P2) && got.offer_id === bin(OFFER_ID) && got.info_hash === bin(INFO2), 'relayed offer fields ' + JSON.stringify(got))
  check(got.offer.sdp === offer.sdp, 'offer sdp intact')
  ok('offer relayed to peer 1 with peer_id/offer_id/info_hash')

  const answer = { type: 'answer', sdp: 'v=0\r\nanswer\r\n' }
  r1.send(JSON.stringify({ action: 'announce', info_hash: bin(INFO2), peer_id: bin(P1), to_peer_id: bin(P2), answer, offer_id: got.offer_id }))
  const ans = await next(r2, m => m.answer)
  check(ans.peer_id === bin(P1) && ans.offer_id === bin(OFFER_ID) && ans.answer.sdp === answer.sdp, 'answer fields ' + JSON.stringify(ans))
  ok('answer forwarded to peer 2 via to_peer_id')

  r3.send(announce(P1))
  const refused = await next(r3, m => m['failure reason'])
  check(/another connection/.test(refused['failure reason']) && refused.info_hash === bin(INFO2), 'impersonation refusal ' + JSON.stringify(refused))
  ok('impersonation of peer 1 refused: ' + refused['failure reason'])

  r3.send('this is not json')
  const bad = await next(r3, m => m['failure reason'])
  ok('garbage frame answered with failure reason: ' + bad['failure reason'])

  r1.close()
  for (;;) {
    r2.send(JSON.stringify({ action: 'scrape', info_hash: bin(INFO2) }))
    const s = await next(r2, m => m.action === 'scrape')
    const f = s.files[bin(INFO2)]
    if (f && f.incomplete === 1) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  ok('closing peer 1 removed it from the swarm')
  r2.close()
  r3.close()
}

async function plainGet () {
  const res = await fetch(url.replace(/^ws/, 'http'))
  check(res.status === 426, 'plain GET status ' + res.status)
  ok('plain GET answered 426')
}

await realClient()
await rawSignalling()
await plainGet()
clearTimeout(timer)
console.log('ALL OK')
process.exit(0)
