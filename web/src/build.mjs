// Bundles web/vendor/p2p-media-loader.min.js (run by update-vendor.sh): esbuild, IIFE,
// global `p2pml`, from p2pml-entry.js. p2p-media-loader-core comes from its own
// pre-bundled dist (export condition `p2pml:core-as-bundle`), into which this adds
// three calls to our part extension's hooks (parts/hook.js) while bundling — the only
// change to the library, applied to the text esbuild reads, never to node_modules.
// Each anchor must occur exactly once, so a new library version fails loudly here
// instead of silently losing the hooks.
//
//   node src/build.mjs <core version> <hlsjs version>
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const [core, hlsjs] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const hook = JSON.stringify(path.join(here, 'parts/hook.js'));

const PATCHES = [
  // P2PLoader: created (one per stream swarm), a peer connected, destroyed.
  ['\t\tthis.trackerClient.start();\n', '\t\tthis.trackerClient.start();\n\t\t__mm.loaderCreated(this);\n'],
  ['\tonPeerConnected = (peer) => {\n', '\tonPeerConnected = (peer) => {\n\t\t__mm.peerConnected(peer, this);\n'],
  ['\t\tthis.trackerClient.destroy();\n', '\t\t__mm.loaderDestroyed(this);\n\t\tthis.trackerClient.destroy();\n'],
];

const hooks = {
  name: 'mediamesh-part-hooks',
  setup(b) {
    b.onLoad({ filter: /p2p-media-loader-core\.es\.js$/ }, async (args) => {
      let text = await readFile(args.path, 'utf8');
      for (const [from, to] of PATCHES) {
        const n = text.split(from).length - 1;
        if (n !== 1) throw new Error(`p2p-media-loader-core: anchor ${JSON.stringify(from)} found ${n} times (want 1)`);
        text = text.replace(from, to);
      }
      return { contents: `import * as __mm from ${hook};\n${text}`, loader: 'js' };
    });
  },
};

await build({
  entryPoints: [path.join(here, 'p2pml-entry.js')],
  bundle: true,
  format: 'iife',
  globalName: 'p2pml',
  minify: true,
  target: 'es2020',
  conditions: ['p2pml:core-as-bundle'],
  legalComments: 'none',
  define: { P2PML_VERSION: JSON.stringify(core) },
  banner: {
    js: `/*! p2p-media-loader-core ${core} + p2p-media-loader-hlsjs ${hlsjs} (Apache-2.0, Novage) with bundled MIT/ISC/Apache-2.0 dependencies: see p2p-media-loader.LICENSE; plus mediamesh's part extension (web/src/parts, three hooks added to core's P2PLoader by web/src/build.mjs) */`,
  },
  logLevel: 'warning',
  outfile: path.join(here, '../vendor/p2p-media-loader.min.js'),
  plugins: [hooks],
});
