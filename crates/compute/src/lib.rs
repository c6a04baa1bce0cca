//! Edge compute: Proxy-Wasm filters and media functions (work in progress).
