// Unit tests of web/integrity.js (the browser's check of segments from peers) in node
// with real Ed25519 keys from WebCrypto: a good segment passes; a tampered one, a list
// with a bad signature, an unknown key and an unlisted name are rejected; a live list
// that lacks a new segment is fetched again.
//
//   node --test web/tests/integrity.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { webcrypto } from 'node:crypto';

const require = createRequire(import.meta.url);
const { createVerifier, splitUrl } = require('../integrity.js');
const { subtle } = webcrypto;

const b64 = (u8) => Buffer.from(u8).toString('base64');
const hex = (buf) => Buffer.from(buf).toString('hex');
const sha = async (bytes) => hex(await subtle.digest('SHA-256', bytes));

async function origin() {
  const kp = await subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const raw = new Uint8Array(await subtle.exportKey('raw', kp.publicKey));
  const kid = hex(await subtle.digest('SHA-256', raw)).slice(0, 16);
  const objects = {};
  const o = {
    kid,
    fetches: [],
    tamperSignature: false,
    objects,
    async sign() {
      const payload = JSON.stringify({ version: 1, stream: 'demo', rendition: 'src', generated_ms: Date.now(), objects });
      const sig = new Uint8Array(await subtle.sign('Ed25519', kp.privateKey, new TextEncoder().encode(payload)));
      if (o.tamperSignature) sig[0] ^= 1;
      return { kid: o.kidOverride || kid, payload, signature: b64(sig) };
    },
    fetch: async (url) => {
      o.fetches.push(url);
      const path = new URL(url).pathname;
      let body;
      if (path === '/api/v1/keys') body = { keys: [{ kid, alg: 'Ed25519', public_key: b64(raw) }] };
      else if (path === '/live/demo/src/digests.json') body = await o.sign();
      else return new Response('no', { status: 404 });
      return new Response(JSON.stringify(body), { status: 200 });
    },
  };
  return o;
}

const BASE = 'http://127.0.0.1:9/';
const seg = (n) => new TextEncoder().encode(`segment ${n} `.repeat(1000)).buffer;

test('a good segment passes and a tampered one is rejected', async () => {
  const o = await origin();
  o.objects['seg1.m4s'] = await sha(seg(1));
  const v = createVerifier({ base: BASE, fetch: o.fetch });
  assert.equal(await v.validate(`${BASE}live/demo/src/seg1.m4s`, undefined, seg(1)), true);
  const bad = new Uint8Array(seg(1));
  bad[100] ^= 0x40;
  assert.equal(await v.validate(`${BASE}live/demo/src/seg1.m4s`, undefined, bad.buffer), false);
  assert.equal(v.stats.verified, 1);
  assert.equal(v.stats.rejected, 1);
  assert.equal(v.stats.reasons['digest-mismatch'], 1);
  // The list was fetched once and the keys once.
  assert.equal(o.fetches.filter((u) => u.endsWith('digests.json')).length, 1);
  assert.equal(o.fetches.filter((u) => u.endsWith('/keys')).length, 1);
});

test('a list with a bad signature or an unknown key is not trusted', async () => {
  const o = await origin();
  o.objects['seg1.m4s'] = await sha(seg(1));
  o.tamperSignature = true;
  const v = createVerifier({ base: BASE, fetch: o.fetch });
  assert.equal(await v.validate(`${BASE}live/demo/src/seg1.m4s`, undefined, seg(1)), false);
  assert.equal(v.stats.reasons['no-digests'], 1);
  o.tamperSignature = false;
  o.kidOverride = '0000000000000000';
  assert.equal(await v.validate(`${BASE}live/demo/src/seg1.m4s`, undefined, seg(1)), false);
  o.kidOverride = undefined;
  assert.equal(await v.validate(`${BASE}live/demo/src/seg1.m4s`, undefined, seg(1)), true);
});

test('a live list is fetched again for a segment it does not list yet', async () => {
  const o = await origin();
  o.objects['seg1.m4s'] = await sha(seg(1));
  const rejected = [];
  const v = createVerifier({ base: BASE, fetch: o.fetch, onReject: (r) => rejected.push(r) });
  assert.equal(await v.validate(`${BASE}live/demo/src/seg1.m4s`, undefined, seg(1)), true);
  o.objects['seg2.m4s'] = await sha(seg(2));
  assert.equal(await v.validate(`${BASE}live/demo/src/seg2.m4s?x=1`, undefined, seg(2)), true);
  assert.equal(o.fetches.filter((u) => u.endsWith('digests.json')).length, 2);
  // Never listed: rejected after a bounded number of fetches.
  assert.equal(await v.validate(`${BASE}live/demo/src/seg3.m4s`, undefined, seg(3)), false);
  assert.ok(o.fetches.filter((u) => u.endsWith('digests.json')).length <= 4);
  assert.deepEqual(rejected.map((r) => r.reason), ['not-listed']);
  // No digests at all for this folder, and byte ranges: rejected, never thrown.
  assert.equal(await v.validate(`${BASE}live/other/src/seg1.m4s`, undefined, seg(1)), false);
  assert.equal(await v.validate(`${BASE}live/demo/src/seg1.m4s`, { start: 0, end: 9 }, seg(1)), false);
  assert.equal(await v.validate('::not a url::', undefined, seg(1)), false);
});

test('hostile JSON from the origin path is rejected, never thrown', async () => {
  for (const body of ['', 'null', '[]', '{"kid":1}', '{"kid":"a","payload":"{}","signature":"!!"}', '{"keys":"x"}']) {
    const v = createVerifier({
      base: BASE,
      fetch: async () => new Response(body, { status: 200 }),
    });
    assert.equal(await v.validate(`${BASE}live/demo/src/seg1.m4s`, undefined, seg(1)), false, body);
  }
});

test('splitUrl finds the rendition folder and the object name', () => {
  assert.deepEqual(splitUrl('/live/demo/src/seg7.m4s?a=b#c', BASE), {
    folder: `${BASE}live/demo/src/`,
    name: 'seg7.m4s',
  });
});
