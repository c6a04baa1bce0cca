//! Fuzz the Proxy-Wasm header-map decoder (the bytes a filter hands the host in
//! `proxy_set_header_map_pairs`, `proxy_send_local_response`, `proxy_http_call`):
//! never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]

use compute::abi::{decode_map, encode_map};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = decode_map(data) {
        let again = encode_map(&pairs);
        assert_eq!(decode_map(&again).expect("re-encoded map decodes"), pairs);
    }
    let _ = compute::abi::property_path(data);
});
