// One REAL p2p-media-loader 2.3 `Peer` (the class browsers run, from the npm package)
// whose data channel is stdio: every message is a 4-byte big-endian length and the
// bytes, on stdin (from the Rust side) and stdout (to it). Driven by
// crates/p2p/tests/pml_peer_interop.rs. Reports go to stderr as lines:
//   "downloaded <id> <bytes> <sha256>", "error <text>", "closed".
// Scenario: announce loaded [10, 11] and http-loading [12]; serve 10 and 11 (anything
// else gets SegmentAbsent); once the remote announces 20, download it, then announce
// [10, 11, 20]. Exits when stdin closes, or after 30 s at most.
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { Peer } from './node_modules/p2p-media-loader-core/lib/p2p/peer.js'
import { Request } from './node_modules/p2p-media-loader-core/lib/requests/request.js'
import { EventTarget } from './node_modules/p2p-media-loader-core/lib/utils/event-target.js'
import { BandwidthCalculator } from './node_modules/p2p-media-loader-core/lib/bandwidth-calculator.js'

// The package's Request timers call window.setTimeout (browser code).
globalThis.window = globalThis

const timer = setTimeout(() => { report('error timed out'); process.exit(1) }, 30000)
function report (line) { process.stderr.write(line + '\n') }

// Segment bytes both sides derive: byte k of segment i is (k * 31 + i) & 0xff.
function segmentData (id, len) {
  const d = new Uint8Array(len)
  for (let k = 0; k < len; k++) d[k] = (k * 31 + id) & 0xff
  return d
}
const store = new Map([[10, segmentData(10, 150000)], [11, segmentData(11, 1000)]])

class StdioChannel extends EventEmitter {
  id = Buffer.from('-PM0203-RustNativePr', 'latin1').toString('hex')
  idUtf8 = '-PM0203-RustNativePr'
  write (chunk) {
    const bytes = chunk instanceof ArrayBuffer ? new Uint8Array(chunk) : chunk
    const head = Buffer.alloc(4)
    head.writeUInt32BE(bytes.byteLength)
    process.stdout.write(Buffer.concat([head, Buffer.from(bytes)]))
    return true // always drained: the upload loop writes every chunk at once
  }
  destroy () { report('closed') }
}

const channel = new StdioChannel()
const events = new EventTarget()
const stream = { type: 'main', index: 'x', segments: new Map() }
const segment = (externalId) => ({
  runtimeId: `seg-${externalId}`, externalId, url: `http://127.0.0.1/seg-${externalId}`,
  startTime: 0, endTime: 2, stream,
})
let downloadStarted = false

const peer = new Peer(channel, {
  onPeerClosed: () => report('closed'),
  onSegmentRequested: (p, id, requestId, byteFrom) => {
    const data = store.get(id)
    if (!data) { p.sendSegmentAbsentCommand(id, requestId); return }
    const from = byteFrom ?? 0
    void p.uploadSegmentData(segment(id), requestId, data.slice(from).buffer)
  },
  onSegmentsAnnouncement: () => {
    if (downloadStarted || peer.getSegmentStatus(segment(20)) !== 'loaded') return
    downloadStarted = true
    const request = new Request(segment(20), () => {},
      { all: new BandwidthCalculator(), http: new BandwidthCalculator() },
      { position: 0, rate: 1 },
      { highDemandTimeWindow: 15, httpDownloadTimeWindow: 3000, p2pDownloadTimeWindow: 6000 },
      events)
    download(request)
  },
}, {
  p2pNotReceivingBytesTimeoutMs: 20000,
  webRtcMaxMessageSize: 64 * 1024 - 1,
  p2pErrorRetries: 3,
  validateP2PSegment: undefined,
}, 'main', events)

events.addEventListener('onSegmentError', (e) => report(`error segment ${e.error?.type}`))

// Download through the real Peer, then poll the Request until it settles.
function download (request) {
  peer.downloadSegment(request)
  const check = setInterval(() => {
    if (request.status === 'succeed') {
      clearInterval(check)
      const data = new Uint8Array(request.data)
      report(`downloaded ${request.segment.externalId} ${data.byteLength} ${createHash('sha256').update(data).digest('hex')}`)
      store.set(20, data)
      peer.sendSegmentsAnnouncementCommand([10, 11, 20], [])
    } else if (request.status === 'failed' || request.status === 'aborted') {
      clearInterval(check)
      report(`error download ${request.status}`)
    }
  }, 10)
}

peer.sendSegmentsAnnouncementCommand([10, 11], [12])

let pending = Buffer.alloc(0)
process.stdin.on('data', (buf) => {
  pending = Buffer.concat([pending, buf])
  while (pending.length >= 4) {
    const len = pending.readUInt32BE(0)
    if (pending.length < 4 + len) break
    const message = new Uint8Array(pending.subarray(4, 4 + len))
    pending = pending.subarray(4 + len)
    channel.emit('data', message)
  }
})
process.stdin.on('end', () => { clearTimeout(timer); process.exit(0) })
