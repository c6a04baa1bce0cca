// Entry for web/vendor/p2p-media-loader.min.js (built by update-vendor.sh with esbuild):
// p2p-media-loader-hlsjs and -core as one self-contained script that sets
// `window.p2pml = { HlsJsP2PEngine, Core, debug, version }`. Nothing of ours lives here.
/* global P2PML_VERSION */
export { HlsJsP2PEngine } from 'p2p-media-loader-hlsjs';
export { Core, debug } from 'p2p-media-loader-core';
export const version = P2PML_VERSION;
