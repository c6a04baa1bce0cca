//! Fuzz the write API's request bodies (`origin::http::admin`): any bytes through the
//! strict JSON parser of every body type, and what parses through the publish-key
//! store and the admin-token check. Nothing may panic; an accepted key must work and
//! be listed without its secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use origin::http::admin::{access, parse_json, Access, AddKey, AdminToken, SetP2p};
use origin::live::keys::PublishKeys;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = parse_json::<AddKey>(data) {
        let keys = PublishKeys::new(Default::default(), false);
        if let Ok((info, secret)) = keys.add(&body.stream, body.key) {
            assert!(keys.allows(&body.stream, Some(&secret)));
            let listed = serde_json::to_string(&keys.list()).unwrap_or_default();
            assert!(listed.contains(&info.id) && !listed.contains(&secret));
            assert_eq!(keys.revoke(&body.stream, Some(&info.id)), 1);
            assert!(!keys.allows(&body.stream, Some(&secret)));
        }
    }
    let _ = parse_json::<SetP2p>(data);
    // The same bytes as an Authorization header.
    if let Ok(v) = axum::http::HeaderValue::from_bytes(data) {
        if let Ok(token) = AdminToken::new("fuzz-admin-token-0123") {
            let a = access(&token, Some(&v));
            assert!(
                a != Access::Granted || data.trim_ascii_end().ends_with(b"fuzz-admin-token-0123")
            );
        }
    }
});
