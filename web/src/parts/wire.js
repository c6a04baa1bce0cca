// The wire format of the mediamesh part extension (crates/p2p/PROTOCOL.md §5) on top
// of p2p-media-loader 2.3's binary commands (§2): items (Int, SimilarIntArray,
// String), command bodies, `cstr…cend` framing and splitting, and the commands this
// page reads or writes itself: the SegmentsAnnouncement (0) with the capability field
// `x`, and the part commands 64–69. Pure functions on Uint8Arrays; no state. Our own
// code (written from PROTOCOL.md), not p2p-media-loader's serializer.

export const CMD = Object.freeze({
  SegmentsAnnouncement: 0,
  SegmentRequest: 1,
  SegmentData: 2,
  SegmentSendingCompleted: 3,
  SegmentAbsent: 4,
  CancelSegmentRequest: 5,
  PartsAnnouncement: 64,
  PartRequest: 65,
  PartData: 66,
  PartSendingCompleted: 67,
  PartAbsent: 68,
  CancelPartRequest: 69,
});

/** Capability bit 0 of the announcement's `x`: "I speak the part extension v1". */
export const EXT_PARTS = 1;
/** Highest part index on the wire (PROTOCOL.md §5). */
export const MAX_PART_INDEX = 255;
/** Largest media sequence number on the wire (2^45). */
export const MAX_MSN = 2 ** 45;
/** Longest part signature (`g`) sent or accepted (PROTOCOL.md §5). */
export const MAX_SIGNATURE = 256;
/** Part announcements longer than this are refused. */
export const MAX_ANNOUNCED_PARTS = 1024;

const CSTR = [0x63, 0x73, 0x74, 0x72]; // "cstr"
const DSTR = [0x64, 0x73, 0x74, 0x72]; // "dstr"
const CEND = [0x63, 0x65, 0x6e, 0x64]; // "cend"
const DEND = [0x64, 0x65, 0x6e, 0x64]; // "dend"

export class WireError extends Error {}

const same = (b, at, tag) => b[at] === tag[0] && b[at + 1] === tag[1] && b[at + 2] === tag[2] && b[at + 3] === tag[3];

/** p2p-media-loader's rule: a message is a command chunk iff ≥ 8 bytes, starts with
 * `cstr`/`dstr` and ends with `cend`/`dend`. */
export function isCommandChunk(b) {
  if (b.length < 8) return false;
  const e = b.length - 4;
  return (same(b, 0, CSTR) || same(b, 0, DSTR)) && (same(b, e, CEND) || same(b, e, DEND));
}
export const startsCommand = (b) => same(b, 0, CSTR);
export const endsCommand = (b) => same(b, b.length - 4, CEND);

// ---- items ----------------------------------------------------------------------

function intBytes(v) {
  let n = BigInt(v);
  const neg = n < 0n;
  if (neg) n = -n;
  const bits = n.toString(2).length + 1; // room for the sign bit
  const len = Math.ceil(bits / 8);
  if (len > 15) throw new WireError('integer too large');
  const out = new Uint8Array(1 + len);
  out[0] = len; // item type 0 (Int) in the high nibble
  for (let i = len; i >= 1; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  if (neg) out[1] |= 0x80;
  return out;
}

function readInt(b, at) {
  if (at >= b.length) throw new WireError('truncated item');
  const head = b[at];
  if (head >> 4 !== 0) throw new WireError('not an Int item');
  const len = head & 0x0f;
  if (len < 1 || len > 8 || at + 1 + len > b.length) throw new WireError('bad Int length');
  let n = BigInt(b[at + 1] & 0x7f);
  for (let i = 2; i <= len; i++) n = (n << 8n) | BigInt(b[at + i]);
  if (b[at + 1] & 0x80) n = -n;
  return { value: n, next: at + 1 + len };
}

function similarIntArrayBytes(values) {
  const groups = new Map(); // common part → low bytes, in order of first appearance
  for (const v of values) {
    const n = BigInt(v);
    const common = n & ~0xffn;
    let g = groups.get(common);
    if (!g) groups.set(common, (g = []));
    g.push(Number(n & 0xffn));
  }
  const parts = [];
  let count = 0;
  for (const [common, lows] of groups) {
    // A group holds at most 255 values: split long ones (same common part).
    for (let i = 0; i < lows.length; i += 255) {
      const slice = lows.slice(i, i + 255);
      parts.push(intBytes(common | BigInt(slice.length)), Uint8Array.from(slice));
      count++;
    }
  }
  if (count > 255) throw new WireError('too many groups');
  return concat([Uint8Array.of(0x10, count), ...parts]);
}

function readSimilarIntArray(b, at, maxValues) {
  if (at + 2 > b.length || b[at] >> 4 !== 1) throw new WireError('not a SimilarIntArray item');
  const groups = b[at + 1];
  let p = at + 2;
  const out = [];
  for (let g = 0; g < groups; g++) {
    const { value, next } = readInt(b, p);
    p = next;
    const count = Number(value & 0xffn);
    const common = value & ~0xffn;
    if (p + count > b.length) throw new WireError('truncated SimilarIntArray');
    if (out.length + count > maxValues) throw new WireError('array too long');
    for (let i = 0; i < count; i++) out.push(common | BigInt(b[p + i]));
    p += count;
  }
  return { value: out, next: p };
}

function stringBytes(s) {
  const utf8 = new TextEncoder().encode(s);
  if (utf8.length > 0xfff) throw new WireError('string too long');
  return concat([Uint8Array.of(0x20 | (utf8.length >> 8), utf8.length & 0xff), utf8]);
}

function readString(b, at) {
  if (at + 2 > b.length || b[at] >> 4 !== 2) throw new WireError('not a String item');
  const len = ((b[at] & 0x0f) << 8) | b[at + 1];
  if (at + 2 + len > b.length) throw new WireError('truncated String');
  return { value: new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(at + 2, at + 2 + len)), next: at + 2 + len };
}

export function concat(arrays) {
  let len = 0;
  for (const a of arrays) len += a.length;
  const out = new Uint8Array(len);
  let p = 0;
  for (const a of arrays) {
    out.set(a, p);
    p += a.length;
  }
  return out;
}

// ---- command bodies ---------------------------------------------------------------

/**
 * Parses a command body into `{ c, fields }`: `fields` maps a one-letter field name to
 * a BigInt (Int), an array of BigInt (SimilarIntArray) or a string. Throws WireError on
 * anything malformed (item types 3–15, truncation, an array over `maxValues`).
 */
export function decodeBody(body, maxValues = MAX_ANNOUNCED_PARTS * 32) {
  if (body.length < 1) throw new WireError('empty command');
  const c = body[0];
  const fields = {};
  let p = 1;
  while (p < body.length) {
    const name = String.fromCharCode(body[p]);
    p++;
    if (p >= body.length) throw new WireError('field without item');
    const type = body[p] >> 4;
    let r;
    if (type === 0) r = readInt(body, p);
    else if (type === 1) r = readSimilarIntArray(body, p, maxValues);
    else if (type === 2) r = readString(body, p);
    else throw new WireError(`item type ${type}`);
    fields[name] = r.value; // a repeated field keeps its last value
    p = r.next;
  }
  return { c, fields };
}

/** Encodes a body from `[name, kind, value]` triples (kind 'int' | 'ints' | 'str'). */
export function encodeBody(c, items) {
  const parts = [Uint8Array.of(c)];
  for (const [name, kind, value] of items) {
    parts.push(Uint8Array.of(name.charCodeAt(0)));
    if (kind === 'int') parts.push(intBytes(value));
    else if (kind === 'ints') parts.push(similarIntArrayBytes(value));
    else parts.push(stringBytes(value));
  }
  return concat(parts);
}

/** Splits a body into the messages of §2 ("Framing and splitting"), max `max` bytes each. */
export function frame(body, max = 65535) {
  const L = body.length;
  if (L + 8 <= max) return [concat([Uint8Array.from(CSTR), body, Uint8Array.from(CEND)])];
  let n = Math.ceil(L / max);
  if (Math.ceil(L / n) + 8 > max) n++;
  const size = Math.ceil(L / n);
  const out = [];
  for (let i = 0; i < n; i++) {
    const slice = body.subarray(i * size, Math.min(L, (i + 1) * size));
    const head = i === 0 ? CSTR : DSTR;
    const tail = i === n - 1 ? CEND : DEND;
    out.push(concat([Uint8Array.from(head), slice, Uint8Array.from(tail)]));
  }
  return out;
}

/**
 * Joins command chunks as p2p-media-loader's BinaryCommandChunksJoiner does: `push`
 * returns the joined body when a chunk ending in `cend` completes it, else null. A
 * `dstr` chunk with nothing joined is dropped; a `cstr` chunk while joining drops what
 * was joined and that chunk. Bounded by `limit` bytes.
 */
export class Joiner {
  constructor(limit = 256 * 1024) {
    this.limit = limit;
    this.parts = [];
    this.size = 0;
  }
  push(chunk) {
    const body = chunk.subarray(4, chunk.length - 4);
    if (startsCommand(chunk)) {
      if (this.size > 0) {
        this.reset();
        return null;
      }
    } else if (this.size === 0) {
      return null;
    }
    this.parts.push(body);
    this.size += body.length;
    if (this.size > this.limit) {
      this.reset();
      throw new WireError('command too large');
    }
    if (!endsCommand(chunk)) return null;
    const joined = concat(this.parts);
    this.reset();
    return joined;
  }
  reset() {
    this.parts = [];
    this.size = 0;
  }
}

// ---- the commands ------------------------------------------------------------------

/** Packs a part into the number PartsAnnouncement carries: msn × 256 + index. */
export const packPart = (msn, index) => msn * 256 + index;
export const unpackPart = (packed) => ({ msn: Math.floor(packed / 256), index: packed % 256 });

function okPart(msn, index) {
  return Number.isSafeInteger(msn) && msn >= 0 && msn < MAX_MSN && Number.isInteger(index) && index >= 0 && index <= MAX_PART_INDEX;
}

/** SegmentsAnnouncement with our capability: `l`, `p` (omitted when empty), `x`. */
export function segmentsAnnouncement(loaded, httpLoading, x = EXT_PARTS, max) {
  const items = [];
  if (loaded && loaded.length) items.push(['l', 'ints', loaded]);
  if (httpLoading && httpLoading.length) items.push(['p', 'ints', httpLoading]);
  if (x) items.push(['x', 'int', x]);
  return frame(encodeBody(CMD.SegmentsAnnouncement, items), max);
}

export function partsAnnouncement(packed, max) {
  return frame(encodeBody(CMD.PartsAnnouncement, packed.length ? [['q', 'ints', packed]] : []), max);
}

/** The part commands 65, 67, 68, 69 (fields i, n, r). */
export function partCommand(c, msn, index, r, max) {
  return frame(encodeBody(c, [['i', 'int', msn], ['n', 'int', index], ['r', 'int', r]]), max);
}

/** PartData (66): `i`, `n`, `s`, `r`, and `g` (the mediamesh-signature value) when known. */
export function partData(msn, index, size, r, g, max) {
  const items = [['i', 'int', msn], ['n', 'int', index], ['s', 'int', size], ['r', 'int', r]];
  if (typeof g === 'string' && g && new TextEncoder().encode(g).length <= MAX_SIGNATURE) items.push(['g', 'str', g]);
  return frame(encodeBody(CMD.PartData, items), max);
}

const num = (v, what) => {
  if (typeof v !== 'bigint') throw new WireError(`${what}: missing or not an Int`);
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new WireError(`${what}: out of range`);
  return Number(v);
};

/**
 * Reads one of our commands from a parsed body (`decodeBody`). Returns
 * `{ c, msn, index, r, s?, g?, parts? }` for 64–69, `{ c: 0, x }` for an announcement,
 * null for anything else. Throws WireError for a part command that breaks §5.
 */
export function readCommand({ c, fields }) {
  if (c === CMD.SegmentsAnnouncement) {
    const x = typeof fields.x === 'bigint' ? Number(BigInt.asUintN(32, fields.x)) : 0;
    return { c, x };
  }
  if (c === CMD.PartsAnnouncement) {
    const q = fields.q === undefined ? [] : fields.q;
    if (!Array.isArray(q)) throw new WireError('q: not an array');
    if (q.length > MAX_ANNOUNCED_PARTS) throw new WireError('too many parts announced');
    const parts = q.map((v) => num(v, 'q'));
    for (const p of parts) {
      const { msn, index } = unpackPart(p);
      if (!okPart(msn, index)) throw new WireError('bad part in announcement');
    }
    return { c, parts };
  }
  if (c < CMD.PartRequest || c > CMD.CancelPartRequest) return null;
  const msn = num(fields.i, 'i');
  const index = num(fields.n, 'n');
  if (!okPart(msn, index)) throw new WireError('bad part');
  const r = typeof fields.r === 'bigint' ? Number(fields.r) : NaN;
  if (!Number.isSafeInteger(r)) throw new WireError('r: missing or not an Int');
  const out = { c, msn, index, r };
  if (c === CMD.PartData) {
    out.s = num(fields.s, 's');
    if (fields.g !== undefined) {
      if (typeof fields.g !== 'string') throw new WireError('g: not a String');
      if (new TextEncoder().encode(fields.g).length > MAX_SIGNATURE) throw new WireError('g: too long');
      out.g = fields.g;
    }
  }
  return out;
}

/** The command type of a chunk that starts a command (`cstr…`), or -1. */
export function commandTypeOf(chunk) {
  return startsCommand(chunk) && chunk.length > 8 ? chunk[4] : -1;
}
