// Golden vectors of the p2p-media-loader 2.3 peer protocol, produced by the REAL
// published npm package (p2p-media-loader-core, pinned in package.json).
// Usage: node pml-golden.mjs > ../../src/proto/golden.json
// The Rust tests in crates/p2p/src/proto/golden.rs check our codec against this file.
import { readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import {
  serializePeerCommand,
  deserializeCommand,
  isCommandChunk,
  BinaryCommandChunksJoiner,
} from './node_modules/p2p-media-loader-core/lib/p2p/commands/index.js'
import { getStreamSwarmId, generateStreamShortId } from './node_modules/p2p-media-loader-core/lib/utils/stream.js'
import { getStreamHash, generatePeerId, TRACKER_CLIENT_VERSION_PREFIX } from './node_modules/p2p-media-loader-core/lib/utils/peer.js'

const pkg = JSON.parse(readFileSync(new URL('./node_modules/p2p-media-loader-core/package.json', import.meta.url)))
const hex = (u8) => Buffer.from(u8).toString('hex')
const sha256 = (data) => createHash('sha256').update(data).digest('hex')
const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i)

// every id group of 255 values for 255 common parts: a body just over 64 KiB
const big = []
for (let g = 0; g < 255; g++) for (let k = 0; k < 255; k++) big.push(g * 256 + k)

const cases = [
  [{ c: 0, l: [1, 2, 3], p: [4] }],
  [{ c: 0, l: [], p: [] }],
  [{ c: 0, l: [5, 1000, 6, 1001, -1, -300, 0] }],
  [{ c: 0, p: [2 ** 40, 2 ** 40 + 1, 2 ** 53 - 1] }],
  [{ c: 0, l: range(0, 255).concat(range(256, 400)), p: range(400, 410) }],
  [{ c: 0, l: range(1000, 1200) }, 64],
  [{ c: 0, l: range(0, 255).concat(range(300, 500)) }, 100],
  [{ c: 0, l: range(0, 1000).filter((x) => x % 256 !== 255) }, 1000],
  [{ c: 0, l: big }, undefined, 'big'],
  [{ c: 1, i: 123, r: 456 }],
  [{ c: 1, i: 123, r: 456, b: 1000 }],
  [{ c: 1, i: 7, r: 8, b: 0 }],
  [{ c: 1, i: 2 ** 53 - 1, r: -7 }],
  [{ c: 2, i: 55, r: 999, s: 5000000 }],
  [{ c: 2, i: 0, r: 0, s: 0 }],
  [{ c: 3, i: 55, r: 999 }],
  [{ c: 4, i: 128, r: 255 }],
  [{ c: 5, i: -128, r: 65536 }],
]

// Small cases keep every byte; large ones (gen set, or over 2 KiB) keep lengths and a
// SHA-256 of the messages and of the decoded values, to keep this file small.
const commands = cases.map(([command, max = 64 * 1024 - 1, gen]) => {
  const messages = serializePeerCommand(command, max)
  let decoded
  const joiner = new BinaryCommandChunksJoiner((body) => { decoded = deserializeCommand(body) })
  for (const m of messages) {
    if (!isCommandChunk(m)) throw new Error('not a command chunk')
    joiner.addCommandChunk(m)
  }
  const total = messages.reduce((n, m) => n + m.length, 0)
  const out = { max, lengths: messages.map((m) => m.length) }
  out.command = gen ? { gen } : command
  if (gen || total > 2048) {
    out.messagesSha256 = sha256(Buffer.concat(messages))
    out.decodedSha256 = sha256(JSON.stringify(decoded))
  } else {
    out.messages = messages.map(hex)
    out.decoded = decoded
  }
  return out
})

const chunkCases = ['cstrcend', 'cstr', 'cstrend', 'dstr00dend', 'cstr01dend', 'dstr02cend', 'xcstrcend', 'cstrcendx', 'cstr\u0001cend', 'raw segment bytes']
const chunks = chunkCases.map((s) => ({ hex: hex(Buffer.from(s, 'latin1')), command: isCommandChunk(Buffer.from(s, 'latin1')) }))

const swarms = [
  ['http://127.0.0.1:8080/live/demo/index.m3u8', 'main', '0'],
  ['http://127.0.0.1:8080/live/demo/index.m3u8', 'secondary', '1'],
  ['my-swarm', 'main', generateStreamShortId({ bitrate: 800000, codecs: 'avc1.64001f', width: 640, height: 360 })],
  ['ünïcode swarm ☃', 'main', 'x'],
].map(([swarmId, type, index]) => {
  const streamSwarmId = getStreamSwarmId(swarmId, { type, index })
  return { swarmId, type, index, streamSwarmId, infoHash: getStreamHash(streamSwarmId) }
})

const shortIds = [
  { bitrate: 800000, codecs: 'avc1.64001f', width: 640, height: 360 },
  { bitrate: 0 },
  {},
  { bitrate: 2500000, codecs: 'AVC1.66.30 , mp4a.40.2', width: 1280, height: 720, frameRate: '30.000', videoRange: 'sdr' },
  { bitrate: 1200000, codecs: 'avc1.640028', width: 1920, height: 1080, frameRate: '29.97', videoRange: 'PQ' },
  { bitrate: 0, codecs: 'mp4a.40.2', language: 'ENG', channels: '2', name: ' English ' },
  { bitrate: 0, codecs: 'ec-3', language: 'und', channels: '16/JOC', name: 'Atmos' },
  { bitrate: 100, codecs: 'avc1.066.30', frameRate: '0' },
].map((props) => ({ props, id: generateStreamShortId(props) }))

console.log(JSON.stringify({
  package: `${pkg.name}@${pkg.version}`,
  peerIdPrefix: TRACKER_CLIENT_VERSION_PREFIX,
  peerIdSample: generatePeerId(TRACKER_CLIENT_VERSION_PREFIX),
  commands,
  chunks,
  swarms,
  shortIds,
}, null, 1).replace(/\n +(-?\d+,?)(?=\n)/g, ' $1'))
