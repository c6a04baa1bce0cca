//! Fuzz the ISO-BMFF box layer (`media::bmff`) that every MP4 reader and writer of
//! mediamesh stands on. Arbitrary bytes walked as boxes, recursively into every
//! payload (as a container, and after the fields of a full box, `stsd` or a sample
//! entry), with every field reader tried on every payload, must give `Ok` or `Err`:
//! never a panic, an overflow, unbounded recursion or an allocation from a declared
//! size. What the reader reads, the writer must write back byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::bmff::{BitReader, BoxHeader, BoxRef, Boxes, Budget, Reader, Writer};

fn fields(buf: &[u8]) {
    let mut r = Reader::new(buf, "fuzz");
    let _ = r.full_header();
    let _ = r.clone().table(12);
    let _ = r.clone().u64();
    while r.descriptor().is_ok() {}
}

fn walk(b: BoxRef<'_>, budget: &Budget) {
    fields(b.payload());
    for skip in [0, 4, 8, 78] {
        let Ok(kids) = b.children_after(skip) else {
            continue;
        };
        for kid in kids.budget(budget).allow_padding() {
            match kid {
                Ok(kid) => {
                    assert!(kid.offset() >= b.payload_offset() && kid.end() <= b.end());
                    assert_eq!(kid.depth(), b.depth() + 1);
                    walk(kid, budget);
                }
                Err(_) => break,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = BoxHeader::parse(data);
    // Shared by the whole walk: bounds the work however the boxes nest.
    let budget = Budget::new(4096);
    let mut copy = Writer::default();
    let mut copied = Vec::new();
    for b in Boxes::new(data).budget(&budget) {
        let Ok(b) = b else { break };
        assert_eq!(&data[b.offset()..b.end()], b.bytes());
        walk(b, &budget);
        copy.plain(&b.kind, |w| w.bytes(b.payload()));
        copied.push(b);
    }
    // Rewritten with 32-bit sizes: the same boxes, the same payloads, and the same
    // bytes wherever the input had an exact 32-bit size.
    let copy = copy.finish();
    let again: Vec<_> = Boxes::new(&copy).collect::<Result<_, _>>().expect("own output");
    assert_eq!(again.len(), copied.len());
    for (a, b) in again.iter().zip(&copied) {
        assert_eq!((a.kind, a.payload()), (b.kind, b.payload()));
        if b.header_len() == 8 && b.bytes()[..4] != [0; 4] {
            assert_eq!(a.bytes(), b.bytes());
        }
    }
    let mut bits = BitReader::new(data);
    while bits.ue().is_ok() && bits.se().is_ok() {}
});
