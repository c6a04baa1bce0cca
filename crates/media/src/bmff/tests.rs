//! Tests of `bmff`: well-formed boxes, hostile box structures, the writer and the
//! bit reader.

use super::*;

/// A box with a 32-bit size.
fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(payload);
    v
}

/// A box with a 64-bit largesize.
fn large(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = 1u32.to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(&((payload.len() + 16) as u64).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn all(buf: &[u8]) -> Result<Vec<BoxRef<'_>>, BoxError> {
    Boxes::new(buf).collect()
}

fn kinds(boxes: &[BoxRef<'_>]) -> Vec<FourCc> {
    boxes.iter().map(|b| b.kind).collect()
}

// ---- headers ----

#[test]
fn headers_32_bit_64_bit_and_to_end() {
    assert_eq!(
        BoxHeader::parse(&bx(b"free", b"abc")),
        Ok(Some(BoxHeader {
            kind: *b"free",
            header_len: 8,
            size: Some(11)
        }))
    );
    assert_eq!(
        BoxHeader::parse(&large(b"mdat", b"abc")),
        Ok(Some(BoxHeader {
            kind: *b"mdat",
            header_len: 16,
            size: Some(19)
        }))
    );
    let to_end = [0, 0, 0, 0, b'm', b'd', b'a', b't', 1, 2, 3];
    assert_eq!(
        BoxHeader::parse(&to_end),
        Ok(Some(BoxHeader {
            kind: *b"mdat",
            header_len: 8,
            size: None
        }))
    );
    let b = all(&to_end).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].payload(), &[1, 2, 3]);
    assert_eq!(b[0].end(), to_end.len());
}

#[test]
fn truncated_headers() {
    let whole = bx(b"moov", b"");
    for n in 0..8 {
        assert_eq!(BoxHeader::parse(&whole[..n]), Ok(None), "{n} bytes");
    }
    // A largesize header needs 16 bytes.
    let big = large(b"mdat", b"");
    for n in 8..16 {
        assert_eq!(BoxHeader::parse(&big[..n]), Ok(None), "{n} bytes");
        assert_eq!(all(&big[..n]), Err(BoxError::TruncatedHeader));
    }
    // Trailing bytes after a good box: an error, unless padding is allowed.
    let mut padded = bx(b"free", b"");
    padded.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(all(&padded), Err(BoxError::TruncatedHeader));
    let b: Vec<_> = Boxes::new(&padded)
        .allow_padding()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kinds(&b), [*b"free"]);
}

#[test]
fn size_smaller_than_header() {
    for size in 1u32..8 {
        let mut v = size.to_be_bytes().to_vec();
        v.extend_from_slice(b"trak");
        v.extend_from_slice(&[0; 16]);
        let want = if size == 1 {
            // size 1 = largesize follows: 0 here.
            BoxError::InvalidSize {
                kind: *b"trak",
                size: 0,
            }
        } else {
            BoxError::InvalidSize {
                kind: *b"trak",
                size: u64::from(size),
            }
        };
        assert_eq!(all(&v), Err(want), "size {size}");
    }
    for size in [0u64, 1, 8, 15] {
        let mut v = 1u32.to_be_bytes().to_vec();
        v.extend_from_slice(b"mdat");
        v.extend_from_slice(&size.to_be_bytes());
        v.extend_from_slice(&[0; 16]);
        assert_eq!(
            all(&v),
            Err(BoxError::InvalidSize {
                kind: *b"mdat",
                size
            }),
            "largesize {size}"
        );
    }
}

#[test]
fn size_beyond_buffer_and_largesize_overflow() {
    let mut v = bx(b"moov", b"12345678");
    v.truncate(12);
    assert_eq!(
        all(&v),
        Err(BoxError::Overrun {
            kind: *b"moov",
            size: 16,
            available: 12
        })
    );
    // Largesizes no buffer can hold, and the largest 64-bit value: an overrun,
    // never a wrap-around of an offset.
    for size in [1u64 << 32, 1 << 63, u64::MAX] {
        let mut v = 1u32.to_be_bytes().to_vec();
        v.extend_from_slice(b"mdat");
        v.extend_from_slice(&size.to_be_bytes());
        v.extend_from_slice(&[0; 32]);
        assert_eq!(
            all(&v),
            Err(BoxError::Overrun {
                kind: *b"mdat",
                size,
                available: 48
            }),
            "largesize {size:#x}"
        );
    }
    // A child larger than its parent, though the buffer would hold it.
    let inner = bx(b"trak", &[0; 8]);
    let mut parent = bx(b"moov", &inner);
    parent.extend_from_slice(&[0; 64]);
    let Some(Ok(moov)) = Boxes::new(&parent).next() else {
        panic!("moov");
    };
    let mut lying = parent.clone();
    lying[8..12].copy_from_slice(&40u32.to_be_bytes());
    let Some(Ok(moov2)) = Boxes::new(&lying).next() else {
        panic!("moov");
    };
    assert_eq!(moov.children().count(), 1);
    assert!(matches!(
        moov2.children().next(),
        Some(Err(BoxError::Overrun {
            size: 40,
            available: 16,
            ..
        }))
    ));
}

#[test]
fn iteration_stops_after_an_error() {
    let mut v = bx(b"free", b"");
    v.extend_from_slice(&[0, 0, 0, 3, b'b', b'a', b'd', b'!']);
    v.extend(bx(b"skip", b""));
    let mut it = Boxes::new(&v);
    assert!(matches!(it.next(), Some(Ok(b)) if &b.kind == b"free"));
    assert!(matches!(it.next(), Some(Err(BoxError::InvalidSize { .. }))));
    assert!(it.next().is_none());
}

#[test]
fn deep_nesting_is_bounded() {
    // 40 levels of `deep` boxes, each the only child of the one before.
    let mut v = bx(b"leaf", b"");
    for _ in 0..40 {
        v = bx(b"deep", &v);
    }
    // A recursive walker that descends into every box stops at MAX_DEPTH.
    fn walk(b: BoxRef<'_>, deepest: &mut u32) -> Result<(), BoxError> {
        *deepest = (*deepest).max(b.depth());
        for c in b.children() {
            walk(c?, deepest)?;
        }
        Ok(())
    }
    let mut deepest = 0;
    let top = Boxes::new(&v).next().unwrap().unwrap();
    assert_eq!(walk(top, &mut deepest), Err(BoxError::TooDeep(MAX_DEPTH)));
    assert_eq!(deepest, MAX_DEPTH);
    // Paths longer than the bound are refused before any walking.
    let path = [b"deep"; MAX_DEPTH as usize + 2];
    assert_eq!(
        Boxes::new(&v).find_path(&path),
        Err(BoxError::TooDeep(MAX_DEPTH))
    );
    // Within the bound, find_path walks down.
    let path = [b"deep"; 5];
    let found = Boxes::new(&v).find_path(&path).unwrap().unwrap();
    assert_eq!(found.depth(), 4);
}

#[test]
fn limits_and_budgets() {
    let v: Vec<u8> = (0..10).flat_map(|_| bx(b"free", b"")).collect();
    assert_eq!(Boxes::new(&v).limit(10).count(), 10);
    let r: Result<Vec<_>, _> = Boxes::new(&v).limit(9).collect();
    assert_eq!(r, Err(BoxError::TooManyBoxes(9)));
    // A budget is shared by every iterator it is given to.
    let parent = bx(b"moov", &v);
    let budget = Budget::new(10);
    let moov = Boxes::new(&parent).budget(&budget).next().unwrap().unwrap();
    let r: Result<Vec<_>, _> = moov.children().budget(&budget).collect();
    assert_eq!(r, Err(BoxError::TooManyBoxes(10)));
    assert_eq!(budget.seen(), 10);
}

#[test]
fn offsets_are_absolute_and_children_after_skips_fields() {
    let entry = bx(b"avcC", &[1, 2, 3]);
    let mut stsd_payload = vec![0, 0, 0, 0, 0, 0, 0, 1];
    stsd_payload.extend_from_slice(&entry);
    let file = [
        bx(b"ftyp", b"isom"),
        large(b"moov", &bx(b"stsd", &stsd_payload)),
    ]
    .concat();
    let top = all(&file).unwrap();
    assert_eq!(kinds(&top), [*b"ftyp", *b"moov"]);
    let moov = top[1];
    assert_eq!((moov.offset(), moov.header_len()), (12, 16));
    assert_eq!(moov.payload_offset(), 28);
    let stsd = moov.children().find(b"stsd").unwrap().unwrap();
    assert_eq!(stsd.offset(), 28);
    let avcc = stsd.children_after(8).unwrap().next().unwrap().unwrap();
    assert_eq!(avcc.offset(), 44);
    assert_eq!(&file[avcc.offset()..avcc.end()], avcc.bytes());
    assert_eq!(avcc.payload(), &[1, 2, 3]);
    assert_eq!(avcc.depth(), 2);
    assert!(matches!(
        stsd.children_after(99),
        Err(BoxError::Truncated(_))
    ));
    assert_eq!(
        Boxes::new(&file)
            .find_path(&[b"moov", b"stsd"])
            .unwrap()
            .map(|b| b.offset()),
        Some(28)
    );
    assert_eq!(
        moov.find_path(&[b"stsd", b"nope"]).unwrap().map(|b| b.kind),
        None
    );
}

#[test]
fn find_reads_the_whole_level() {
    let mut v = [bx(b"mvhd", b""), bx(b"trak", b"")].concat();
    assert!(Boxes::new(&v).find(b"mvhd").unwrap().is_some());
    v.extend_from_slice(&[0, 0, 0, 99, b'b', b'a', b'd', b'!']);
    assert!(Boxes::new(&v).find(b"mvhd").is_err());
    let [a, b, c] = Boxes::new(&v[..16])
        .find_all([b"trak", b"mvhd", b"none"])
        .unwrap();
    assert_eq!(
        (a.map(|b| b.offset()), b.map(|b| b.offset()), c),
        (Some(8), Some(0), None)
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A small deterministic generator (no dependency): every prefix of many
    // pseudo-random buffers, walked recursively into every payload.
    fn walk(b: BoxRef<'_>) {
        for c in b.children().limit(64) {
            match c {
                Ok(c) => walk(c),
                Err(_) => break,
            }
        }
        if let Ok(kids) = b.children_after(8) {
            for c in kids.take(4).flatten() {
                walk(c);
            }
        }
    }
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..300 {
        let len = (state % 96) as usize;
        let mut buf = Vec::with_capacity(len);
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Bias towards small sizes so boxes nest.
            let byte = (state >> 24) as u8;
            buf.push(if byte < 96 { byte % 24 } else { byte });
        }
        for end in 0..=buf.len() {
            let budget = Budget::new(1000);
            for b in Boxes::new(&buf[..end]).budget(&budget).flatten() {
                walk(b);
            }
        }
    }
}

// ---- fields ----

#[test]
fn reader_reads_and_reports_truncation() {
    let data = [
        1u8, 0, 0, 0x10, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 7,
    ];
    let mut r = Reader::new(&data, "test box");
    assert_eq!(r.full_header(), Ok((1, 0x10)));
    assert_eq!(r.u16(), Ok(0xdead));
    assert_eq!(r.u8(), Ok(0xbe));
    assert_eq!(r.position(), 7);
    assert_eq!(r.remaining(), 9);
    assert_eq!(r.take(10), Err(BoxError::Truncated("test box")));
    // A failed read consumes nothing.
    assert_eq!(r.position(), 7);
    r.skip(1).unwrap();
    assert_eq!(r.u64(), Ok(7));
    assert_eq!(
        r.what("the last byte").u8(),
        Err(BoxError::Truncated("the last byte"))
    );
    assert_eq!(r.rest(), &[] as &[u8]);
    assert_eq!(u32_at(&data, 4), Some(0xdead_beef));
    assert_eq!(u32_at(&data, 13), None);
    assert_eq!(u64_at(&data, usize::MAX - 2), None);
    assert_eq!(u16_at(&data, 14), Some(7));
}

#[test]
fn tables_are_checked_before_allocation() {
    // A count of 2^32 - 1 entries of 12 bytes, with nothing behind it.
    let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff], "stsc box");
    assert_eq!(r.table(12), Err(BoxError::Truncated("stsc box")));
    let data = [0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    let mut r = Reader::new(&data, "stco box");
    assert_eq!(r.table(4), Ok((2, &data[4..12])));
    assert_eq!(r.remaining(), 1);
    let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff], "x");
    assert!(r.table(usize::MAX).is_err());
}

#[test]
fn descriptors() {
    // Tag 5, size 3 in one byte; tag 4, size 2 in four bytes.
    let data = [5, 3, 1, 2, 3, 4, 0x80, 0x80, 0x80, 2, 9, 9];
    let mut r = Reader::new(&data, "esds");
    assert_eq!(r.descriptor(), Ok((5, &[1u8, 2, 3][..])));
    assert_eq!(r.descriptor(), Ok((4, &[9u8, 9][..])));
    // Five size bytes, a size past the end, and a missing size.
    for bad in [&[3u8, 0x80, 0x80, 0x80, 0x80, 0][..], &[3, 4, 1], &[3]] {
        assert!(Reader::new(bad, "esds").descriptor().is_err(), "{bad:?}");
    }
}

// ---- writing ----

#[test]
fn writer_patches_sizes_and_writes_full_boxes() {
    let mut w = Writer::default();
    w.plain(b"moov", |w| {
        w.full(b"mvhd", 1, 0x00ab_cdef, |w| w.u32(7));
        let open = w.begin(b"trak");
        w.bytes(b"xy");
        w.end(open).unwrap();
    });
    let out = w.finish();
    let top = all(&out).unwrap();
    assert_eq!(kinds(&top), [*b"moov"]);
    assert_eq!(top[0].len(), out.len());
    let kids: Vec<_> = top[0].children().collect::<Result<_, _>>().unwrap();
    assert_eq!(kinds(&kids), [*b"mvhd", *b"trak"]);
    let mut r = kids[0].reader("mvhd");
    assert_eq!(r.full_header(), Ok((1, 0x00ab_cdef)));
    assert_eq!(r.u32(), Ok(7));
    assert_eq!(kids[1].payload(), b"xy");
    // Flags are cut to 24 bits.
    let mut w = Writer::default();
    let open = w.begin_full(b"tfhd", 0, 0xff00_0001);
    w.end(open).unwrap();
    assert_eq!(
        w.as_slice(),
        &[0, 0, 0, 12, b't', b'f', b'h', b'd', 0, 0, 0, 1]
    );
}

#[test]
fn known_size_headers_switch_to_largesize() {
    assert_eq!(header_len_for(0), 8);
    assert_eq!(header_len_for(u64::from(u32::MAX) - 8), 8);
    assert_eq!(header_len_for(u64::from(u32::MAX) - 7), 16);
    assert_eq!(header_len_for(u64::MAX), 16);
    let mut w = Writer::default();
    w.header(b"mdat", 3);
    w.bytes(&[1, 2, 3]);
    let b = all(w.as_slice()).unwrap();
    assert_eq!((b[0].header_len(), b[0].payload()), (8, &[1u8, 2, 3][..]));
    let mut w = Writer::default();
    w.header(b"mdat", 1 << 32);
    let h = BoxHeader::parse(w.as_slice()).unwrap().unwrap();
    assert_eq!((h.header_len, h.size), (16, Some((1 << 32) + 16)));
    // Patching out of range does nothing.
    w.patch_u32(w.len() - 2, 5);
    w.patch_u32(usize::MAX, 5);
    assert_eq!(w.len(), 16);
}

#[test]
fn descriptor_size_encoding() {
    for (n, want) in [
        (0usize, vec![0u8]),
        (0x7f, vec![0x7f]),
        (0x80, vec![0x81, 0x00]),
        (0x3fff, vec![0xff, 0x7f]),
        (0x4000, vec![0x81, 0x80, 0x00]),
        (0x20_0000, vec![0x81, 0x80, 0x80, 0x00]),
    ] {
        let mut w = Writer::default();
        w.descriptor_header(9, n);
        let b = w.as_slice();
        assert_eq!(b[0], 9);
        assert_eq!(&b[1..], &want[..], "{n:#x}");
        assert_eq!(descriptor_len(n), 1 + want.len() + n);
    }
    // What the writer writes, the reader reads.
    let mut w = Writer::default();
    w.descriptor_header(5, 200);
    w.zeros(200);
    let mut r = Reader::new(w.as_slice(), "descriptor");
    let (tag, body) = r.descriptor().unwrap();
    assert_eq!((tag, body.len(), r.remaining()), (5, 200, 0));
}

// ---- bits ----

#[test]
fn bits_and_exp_golomb() {
    // 1 | 010 | 011 | 00100 | 00101 | 1...: ue = 0, 1, 2, 3, 4; then se.
    let data = [0b1010_0110, 0b0100_0010, 0b1001_0000];
    let mut r = BitReader::new(&data);
    let ue: Vec<u32> = (0..5).map(|_| r.ue().unwrap()).collect();
    assert_eq!(ue, [0, 1, 2, 3, 4]);
    // 1 -> 0, 010 -> +1, 011 -> -1
    let mut r = BitReader::new(&[0b1010_0110]);
    assert_eq!((r.se(), r.se(), r.se()), (Ok(0), Ok(1), Ok(-1)));
    let mut r = BitReader::new(&[0xa5, 0xff]);
    assert_eq!(r.bits(4), Ok(0xa));
    assert_eq!(r.flag(), Ok(false));
    assert_eq!(r.bits(11), Ok(0b101_1111_1111));
    assert_eq!(r.position(), 16);
    assert_eq!(r.bit(), Err(BitError::End));
    assert_eq!(BitReader::new(&[0; 8]).bits(33), Err(BitError::TooWide(33)));
    assert_eq!(BitReader::new(&[0xff; 4]).bits(32), Ok(u32::MAX));
    // 32 leading zeros: beyond u32.
    assert_eq!(
        BitReader::new(&[0, 0, 0, 0, 0xff]).ue(),
        Err(BitError::ExpGolombTooLong)
    );
    // 31 leading zeros: the largest value.
    let mut max = vec![0u8, 0, 0, 1];
    max.extend_from_slice(&[0xff; 4]);
    assert_eq!(BitReader::new(&max).ue(), Ok(u32::MAX - 1));
    assert_eq!(BitReader::new(&[0, 0]).ue(), Err(BitError::End));
}
