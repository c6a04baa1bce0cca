// Segment integrity in the browser: checks a segment that came from a peer against the
// origin's signed digest list before hls.js gets it (p2p-media-loader's
// `validateP2PSegment` hook, and `validateHTTPSegment` for a segment whose download
// started from a peer and was finished over HTTP: p2p-media-loader resumes from the
// peer's bytes). Not for segments that came from our own servers alone, and not a
// parser of anything but the two small JSON documents below.
//
// Format (README "Segment integrity"): GET /api/v1/keys →
//   {"keys":[{"kid","alg":"Ed25519","public_key":"<base64 32 bytes>"}]}
// and GET {rendition folder}/digests.json →
//   {"kid","payload":"<JSON string>","signature":"<base64 64 bytes>"}
// Verify the Ed25519 signature over the UTF-8 bytes of `payload` with the key whose
// `kid` matches, parse `payload`, compare lowercase-hex SHA-256 of the object's bytes
// with `objects[name]`. The list of a live rendition grows; a name it does not hold yet
// makes us fetch it again (one fetch at a time per rendition).
//
// Parts and objects with a signature (`verifyObject`, used by the part extension at
// `?latency=low`): the origin signs every init/segment/part it serves in the response
// header `mediamesh-signature: {kid}:{base64 Ed25519 signature}` over the UTF-8 bytes of
// `mediamesh-object/1\n{stream}\n{rendition}\n{name}\n{sha256 hex of the body}` for the
// object `/live/{stream}/{rendition}/{name}`; peers relay that value with the part
// (PartData field `g`). A signature with a known kid decides; a missing or malformed
// one, or one whose kid /api/v1/keys does not know, falls back to digests.json.
//
// Works in the page (sets `window.MediameshIntegrity`) and in node ≥ 20 (module.exports),
// where web/tests/integrity.test.mjs tests it with real Ed25519 keys.
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.MediameshIntegrity = factory();
})(typeof self !== 'undefined' ? self : globalThis, function () {
  'use strict';

  const MAX_JSON_BYTES = 4 * 1024 * 1024;

  function b64(s) {
    if (typeof s !== 'string') throw new Error('not a base64 string');
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function hex(buf) {
    const b = new Uint8Array(buf);
    let s = '';
    for (let i = 0; i < b.length; i++) s += b[i].toString(16).padStart(2, '0');
    return s;
  }

  // "…/live/demo/src/seg12.m4s?x" → { folder: "…/live/demo/src/", name: "seg12.m4s" }
  function splitUrl(url, base) {
    const u = new URL(url, base);
    u.search = '';
    u.hash = '';
    const href = u.href;
    const cut = href.lastIndexOf('/') + 1;
    return { folder: href.slice(0, cut), name: decodeURIComponent(href.slice(cut)) };
  }

  /**
   * Makes a verifier.
   * @param {object} [opts]
   * @param {string} [opts.keysUrl]  where the origin's public keys are (default /api/v1/keys)
   * @param {string} [opts.base]     base URL for relative URLs (default location.href)
   * @param {Function} [opts.fetch]  fetch to use (default globalThis.fetch)
   * @param {SubtleCrypto} [opts.subtle]
   * @param {Function} [opts.onReject] called with { url, reason } for every rejected segment
   */
  function createVerifier(opts) {
    const o = opts || {};
    const base = o.base || (typeof location !== 'undefined' ? location.href : undefined);
    const keysUrl = new URL(o.keysUrl || '/api/v1/keys', base).href;
    const doFetch = o.fetch || ((...a) => globalThis.fetch(...a));
    const subtle = o.subtle || globalThis.crypto.subtle;
    const stats = { verified: 0, rejected: 0, reasons: {}, listFetches: 0 };
    let keys = null; // Promise<Map kid → CryptoKey>
    const lists = new Map(); // folder → { objects: Map, inflight: Promise|null }

    async function getJson(url) {
      const r = await doFetch(url, { cache: 'no-store' });
      if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
      const text = await r.text();
      if (text.length > MAX_JSON_BYTES) throw new Error(`${url}: too large`);
      return JSON.parse(text);
    }

    function loadKeys(force) {
      if (!keys || force) {
        const p = (async () => {
          const j = await getJson(keysUrl);
          const map = new Map();
          for (const k of (j && Array.isArray(j.keys) ? j.keys : [])) {
            if (!k || k.alg !== 'Ed25519' || typeof k.kid !== 'string') continue;
            const raw = b64(k.public_key);
            if (raw.length !== 32) continue;
            map.set(k.kid, await subtle.importKey('raw', raw, { name: 'Ed25519' }, false, ['verify']));
          }
          return map;
        })();
        keys = p;
        p.catch(() => { if (keys === p) keys = null; }); // retry on the next segment
      }
      return keys;
    }

    // Fetches, verifies and parses one digests.json; throws on any doubt.
    async function fetchList(folder) {
      stats.listFetches++;
      const signed = await getJson(folder + 'digests.json');
      if (!signed || typeof signed.payload !== 'string' || typeof signed.kid !== 'string') {
        throw new Error('digests.json: missing kid or payload');
      }
      let key = (await loadKeys(false)).get(signed.kid);
      if (!key) key = (await loadKeys(true)).get(signed.kid); // the key may be new
      if (!key) throw new Error(`digests.json: unknown kid ${signed.kid}`);
      const sig = b64(signed.signature);
      const payload = new TextEncoder().encode(signed.payload);
      const ok = sig.length === 64 && (await subtle.verify({ name: 'Ed25519' }, key, sig, payload));
      if (!ok) throw new Error('digests.json: bad signature');
      const p = JSON.parse(signed.payload);
      if (!p || p.version !== 1 || typeof p.objects !== 'object' || p.objects === null) {
        throw new Error('digests.json: unexpected payload');
      }
      return new Map(Object.entries(p.objects).filter(([, v]) => typeof v === 'string'));
    }

    // The digest of `name` in `folder`, refreshing the list once if it lacks the name.
    async function digestOf(folder, name) {
      let entry = lists.get(folder);
      if (!entry) {
        entry = { objects: new Map(), inflight: null };
        lists.set(folder, entry);
      }
      if (entry.objects.has(name)) return entry.objects.get(name);
      if (!entry.inflight) {
        entry.inflight = fetchList(folder)
          .then((objects) => { entry.objects = objects; })
          .finally(() => { entry.inflight = null; });
      }
      // A fetch that began before this segment was listed may miss it: try once more.
      try { await entry.inflight; } catch (e) { /* fall through to one more try */ }
      if (entry.objects.has(name)) return entry.objects.get(name);
      if (!entry.inflight) {
        entry.inflight = fetchList(folder)
          .then((objects) => { entry.objects = objects; })
          .finally(() => { entry.inflight = null; });
      }
      await entry.inflight;
      return entry.objects.get(name);
    }

    function reject(url, reason) {
      stats.rejected++;
      stats.reasons[reason] = (stats.reasons[reason] || 0) + 1;
      if (o.onReject) {
        try { o.onReject({ url, reason }); } catch (e) { /* the hook must not break us */ }
      }
      return false;
    }

    // '' when `data` is the object `url` names per digests.json, else the reason.
    async function digestCheck(url, byteRange, data) {
      try {
        // Digests cover whole objects; our playlists never use byte ranges.
        if (byteRange) return 'byte-range';
        const { folder, name } = splitUrl(url, base);
        let want;
        try {
          want = await digestOf(folder, name);
        } catch (e) {
          return 'no-digests';
        }
        if (!want) return 'not-listed';
        const got = hex(await subtle.digest('SHA-256', data));
        if (got !== want.toLowerCase()) return 'digest-mismatch';
        return '';
      } catch (e) {
        return 'error';
      }
    }

    /**
     * p2p-media-loader 2.3 `validateP2PSegment(url, byteRange, data) → Promise<boolean>`.
     * Never throws: every doubt is a rejection (p2p-media-loader then drops the peer and
     * loads the segment over HTTP).
     */
    async function validate(url, byteRange, data) {
      const why = await digestCheck(url, byteRange, data);
      if (why) return reject(url, why);
      stats.verified++;
      return true;
    }

    // Keys are fetched again for an unknown kid at most this often (a peer can name
    // any kid; it must not make us hammer /api/v1/keys).
    const KEY_REFRESH_MS = 10000;
    let keysFetchedAt = 0;
    async function keyOf(kid) {
      let key = (await loadKeys(false)).get(kid);
      if (!key && Date.now() - keysFetchedAt > KEY_REFRESH_MS) {
        keysFetchedAt = Date.now();
        key = (await loadKeys(true)).get(kid);
      }
      return key;
    }

    /**
     * Checks an object (a part, a segment) against its `mediamesh-signature` value when
     * there is one with a known kid, else against digests.json. Resolves
     * `{ ok, reason, via, signature }`: `via` is 'signature' or 'digests'; `signature`
     * is the value worth passing on with the object (it verified), else null. Never
     * throws.
     */
    async function verifyObject(url, data, signature) {
      try {
        const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
        // A malformed value counts as none (PROTOCOL.md §5): digests.json decides.
        const sig = typeof signature === 'string' ? parseSignature(signature) : null;
        if (sig) {
          let key = null;
          try { key = await keyOf(sig.kid); } catch (e) { key = null; }
          if (key) {
            const id = objectOf(url, base);
            if (!id) return { ok: reject(url, 'not-an-object-url'), reason: 'not-an-object-url', via: 'signature', signature: null };
            const sum = hex(await subtle.digest('SHA-256', bytes));
            const msg = new TextEncoder().encode(`mediamesh-object/1\n${id.stream}\n${id.rendition}\n${id.name}\n${sum}`);
            const good = sig.bytes.length === 64 && (await subtle.verify({ name: 'Ed25519' }, key, sig.bytes, msg));
            if (!good) return { ok: reject(url, 'bad-signature'), reason: 'bad-signature', via: 'signature', signature: null };
            stats.verified++;
            stats.bySignature = (stats.bySignature || 0) + 1;
            return { ok: true, reason: '', via: 'signature', signature };
          }
        }
        const why = await digestCheck(url, undefined, bytes);
        if (why) return { ok: reject(url, why), reason: why, via: 'digests', signature: null };
        stats.verified++;
        return { ok: true, reason: '', via: 'digests', signature: null };
      } catch (e) {
        return { ok: reject(url, 'error'), reason: 'error', via: 'digests', signature: null };
      }
    }

    return { validate, verifyObject, stats };
  }

  // "kid:base64" → { kid, bytes }, or null when it is not of that shape.
  function parseSignature(v) {
    const at = v.indexOf(':');
    if (at <= 0 || v.length > 256) return null;
    try {
      const bytes = b64(v.slice(at + 1));
      return bytes.length === 64 ? { kid: v.slice(0, at), bytes } : null;
    } catch (e) {
      return null;
    }
  }

  // "…/live/demo/src/part1.2.m4s?x" → { stream, rendition, name }, or null.
  function objectOf(url, base) {
    const u = new URL(url, base);
    const segs = u.pathname.split('/');
    if (segs.length < 5 || segs[segs.length - 4] !== 'live') return null;
    const [stream, rendition, name] = segs.slice(-3).map(decodeURIComponent);
    return stream && rendition && name ? { stream, rendition, name } : null;
  }

  return { createVerifier, splitUrl, objectOf };
});
