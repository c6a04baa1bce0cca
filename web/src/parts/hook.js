// The seam between p2p-media-loader-core and our part extension. build.mjs patches
// three calls into the library's P2PLoader (one loader per stream/swarm) when it
// bundles it: `loaderCreated(loader)` at the end of its constructor,
// `peerConnected(peer, loader)` at the start of its onPeerConnected (before the
// library sends the peer its first announcement), `loaderDestroyed(loader)` in its
// destroy. They reach the parts engine registered for the loader's swarm id; with none
// registered (every page not at `?latency=low`) they do nothing and the library runs
// exactly as published.

const engines = new Map(); // swarm id → parts engine

export function register(swarmId, engine) {
  engines.set(swarmId, engine);
  return () => {
    if (engines.get(swarmId) === engine) engines.delete(swarmId);
  };
}

const engineOf = (loader) => loader && loader.config && engines.get(loader.config.swarmId);

function guarded(name, fn) {
  try {
    fn();
  } catch (e) {
    // Our extension must never break the library: log and go on without it.
    console.warn(`mediamesh parts: ${name} failed`, e);
  }
}

export function loaderCreated(loader) {
  const e = engineOf(loader);
  if (e) guarded('loaderCreated', () => e.onLoader(loader));
}

export function peerConnected(peer, loader) {
  const e = engineOf(loader);
  if (e) guarded('peerConnected', () => e.onPeer(peer, loader));
}

export function loaderDestroyed(loader) {
  const e = engineOf(loader);
  if (e) guarded('loaderDestroyed', () => e.onLoaderGone(loader));
}
