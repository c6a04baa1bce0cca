// The part extension's public face, exported as `p2pml.parts` by the vendored bundle.
export { createPartsEngine, newPartStats } from './engine.js';
export * as wire from './wire.js';
export { peerKey, rendezvous } from './link.js';
export { partOfUrl } from './swarm.js';
