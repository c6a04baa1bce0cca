//! Fuzz the AMF0 decoder; whatever decodes must re-encode and decode to the
//! same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmp::amf0;

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = amf0::decode_all(data) {
        let mut buf = Vec::new();
        for v in &values {
            amf0::encode(v, &mut buf);
        }
        let again = amf0::decode_all(&buf).expect("re-encoded AMF0 must decode");
        // NaN != NaN, so compare encodings rather than values.
        let mut buf2 = Vec::new();
        for v in &again {
            amf0::encode(v, &mut buf2);
        }
        assert_eq!(buf, buf2);
    }
});
