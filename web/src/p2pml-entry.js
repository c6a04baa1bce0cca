// Entry for web/vendor/p2p-media-loader.min.js (built by build.mjs with esbuild, run by
// update-vendor.sh): p2p-media-loader-hlsjs and -core as one self-contained script that
// sets `window.p2pml = { HlsJsP2PEngine, Core, debug, version, parts }`. `parts` is
// ours: the LL-HLS part extension (web/src/parts/, see web/P2P.md), which reaches the
// library only through the three hooks build.mjs adds (parts/hook.js).
/* global P2PML_VERSION */
export { HlsJsP2PEngine } from 'p2p-media-loader-hlsjs';
export { Core, debug } from 'p2p-media-loader-core';
export const version = P2PML_VERSION;
export * as parts from './parts/index.js';
