//! Session behaviour: two sessions talking to each other, and hostile remotes.

use super::*;

fn pair() -> (Session, Session) {
    let a = Session::new(SessionLimits::default()).unwrap();
    let b = Session::new(SessionLimits::default())
        .unwrap()
        .with_first_request_id(500);
    (a, b)
}

/// Delivers messages and collects the events.
fn deliver(to: &mut Session, messages: &[Vec<u8>]) -> Vec<SessionEvent> {
    messages
        .iter()
        .filter_map(|m| to.handle_message(m).unwrap())
        .collect()
}

fn drain_upload(from: &mut Session) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| from.next_upload_message()).collect()
}

fn segment(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>())
}

#[test]
fn announce_request_send_receive() {
    let (mut a, mut b) = pair();
    let ev = deliver(&mut b, &a.announce(&[10, 11, 12], &[13]).unwrap());
    assert_eq!(
        ev,
        vec![SessionEvent::Announced {
            loaded: 3,
            http_loading: 1
        }]
    );
    assert_eq!(b.remote_status(11), Some(SegmentStatus::Loaded));
    assert_eq!(b.remote_status(13), Some(SegmentStatus::HttpLoading));
    assert_eq!(b.remote_status(14), None);

    let (rid, msgs) = b.request_segment(11, 0).unwrap();
    assert_eq!(rid, 500);
    assert_eq!(
        deliver(&mut a, &msgs),
        vec![SessionEvent::SegmentRequested {
            segment: 11,
            request_id: 500,
            byte_from: 0
        }]
    );
    let data = segment(200_000);
    a.send_segment(500, data.clone()).unwrap();
    let up = drain_upload(&mut a);
    assert_eq!(up.len(), 1 + 4 + 1); // header, 4 chunks of ≤ 65535, completion
    assert!(up.iter().all(|m| m.len() <= 65535));
    let ev = deliver(&mut b, &up);
    assert_eq!(
        ev[0],
        SessionEvent::ResponseStarted {
            segment: 11,
            request_id: 500,
            size: 200_000
        }
    );
    assert_eq!(
        ev.last(),
        Some(&SessionEvent::SegmentReceived {
            segment: 11,
            request_id: 500,
            byte_from: 0,
            bytes: data
        })
    );
    assert_eq!(b.downloading(), None);
    assert!(!a.is_uploading());
}

#[test]
fn resume_from_byte() {
    let (mut a, mut b) = pair();
    let (rid, msgs) = b.request_segment(3, 1000).unwrap();
    deliver(&mut a, &msgs);
    let data = segment(5000);
    a.send_segment(rid, data.clone()).unwrap();
    let ev = deliver(&mut b, &drain_upload(&mut a));
    assert_eq!(
        ev.last(),
        Some(&SessionEvent::SegmentReceived {
            segment: 3,
            request_id: rid,
            byte_from: 1000,
            bytes: data.slice(1000..)
        })
    );
}

#[test]
fn absent_and_busy() {
    let (mut a, mut b) = pair();
    deliver(&mut b, &a.announce(&[1], &[]).unwrap());
    let (rid, msgs) = b.request_segment(1, 0).unwrap();
    assert_eq!(b.request_segment(2, 0), Err(UsageError::Busy));
    deliver(&mut a, &msgs);
    assert_eq!(
        a.segment_absent(rid + 1),
        Err(UsageError::NoSuchRequest(rid + 1))
    );
    let ev = deliver(&mut b, &a.segment_absent(rid).unwrap());
    assert_eq!(
        ev,
        vec![SessionEvent::SegmentAbsent {
            segment: 1,
            request_id: rid
        }]
    );
    assert_eq!(b.remote_status(1), None);
    assert!(b.request_segment(2, 0).is_ok());
}

#[test]
fn remote_cancel_stops_upload() {
    let (mut a, mut b) = pair();
    let (rid, msgs) = b.request_segment(1, 0).unwrap();
    deliver(&mut a, &msgs);
    a.send_segment(rid, segment(300_000)).unwrap();
    let first: Vec<_> = (0..2).filter_map(|_| a.next_upload_message()).collect();
    deliver(&mut b, &first);
    let cancel = b.cancel_request().unwrap();
    assert_eq!(
        deliver(&mut a, &cancel),
        vec![SessionEvent::RequestCancelled {
            segment: 1,
            request_id: rid
        }]
    );
    assert_eq!(a.next_upload_message(), None);
}

#[test]
fn tail_of_cancelled_request_is_tolerated() {
    let (mut a, mut b) = pair();
    let (rid, msgs) = b.request_segment(1, 0).unwrap();
    deliver(&mut a, &msgs);
    a.send_segment(rid, segment(150_000)).unwrap();
    // b cancels before anything arrives; a had already sent everything.
    b.cancel_request().unwrap();
    let up = drain_upload(&mut a);
    assert!(deliver(&mut b, &up).is_empty());
    // after the completion of the cancelled request, stray data is a violation
    assert_eq!(
        b.handle_message(b"junk"),
        Err(ProtoError::UnexpectedData { len: 4 })
    );
}

#[test]
fn superseding_request_cancels_the_old_upload() {
    let (mut a, mut b) = pair();
    let (r1, m1) = b.request_segment(1, 0).unwrap();
    deliver(&mut a, &m1);
    a.send_segment(r1, segment(100_000)).unwrap();
    let head: Vec<_> = (0..2).filter_map(|_| a.next_upload_message()).collect();
    b.cancel_request().unwrap();
    let (r2, m2) = b.request_segment(2, 0).unwrap();
    // the old tail arrives before the new request reaches a
    deliver(&mut b, &head);
    deliver(&mut a, &m2);
    assert_eq!(a.next_upload_message(), None, "old upload stopped");
    a.send_segment(r2, segment(10)).unwrap();
    let ev = deliver(&mut b, &drain_upload(&mut a));
    assert!(matches!(
        ev.last(),
        Some(SessionEvent::SegmentReceived { segment: 2, .. })
    ));
}

fn cmd(c: PeerCommand) -> Vec<u8> {
    c.encode(65535).unwrap().remove(0)
}

#[test]
fn hostile_remote() {
    // data before any request
    let mut s = Session::new(SessionLimits::default()).unwrap();
    assert_eq!(
        s.handle_message(&[1, 2, 3]),
        Err(ProtoError::UnexpectedData { len: 3 })
    );

    // more bytes than announced
    let mut s = Session::new(SessionLimits::default()).unwrap();
    let (rid, _) = s.request_segment(5, 0).unwrap();
    s.handle_message(&cmd(PeerCommand::SegmentData {
        segment: 5,
        request_id: rid,
        size: 4,
    }))
    .unwrap();
    s.handle_message(&[0; 3]).unwrap();
    assert_eq!(
        s.handle_message(&[0; 2]),
        Err(ProtoError::Overflow {
            received: 5,
            expected: 4
        })
    );

    // completion short of the announced size
    let mut s = Session::new(SessionLimits::default()).unwrap();
    let (rid, _) = s.request_segment(5, 0).unwrap();
    s.handle_message(&cmd(PeerCommand::SegmentData {
        segment: 5,
        request_id: rid,
        size: 4,
    }))
    .unwrap();
    s.handle_message(&[0; 3]).unwrap();
    assert_eq!(
        s.handle_message(&cmd(PeerCommand::SendingCompleted {
            segment: 5,
            request_id: rid
        })),
        Err(ProtoError::LengthMismatch {
            received: 3,
            expected: 4
        })
    );

    // completion for another request after the header
    let mut s = Session::new(SessionLimits::default()).unwrap();
    let (rid, _) = s.request_segment(5, 0).unwrap();
    s.handle_message(&cmd(PeerCommand::SegmentData {
        segment: 5,
        request_id: rid,
        size: 0,
    }))
    .unwrap();
    assert_eq!(
        s.handle_message(&cmd(PeerCommand::SendingCompleted {
            segment: 6,
            request_id: rid
        })),
        Err(ProtoError::WrongCompletion {
            segment: 6,
            request_id: rid
        })
    );

    // negative and huge sizes
    let mut s = Session::new(SessionLimits::default()).unwrap();
    let (rid, _) = s.request_segment(5, 0).unwrap();
    assert!(matches!(
        s.handle_message(&cmd(PeerCommand::SegmentData {
            segment: 5,
            request_id: rid,
            size: -1
        })),
        Err(ProtoError::BadValue { field: "size", .. })
    ));
    let mut s = Session::new(SessionLimits::default()).unwrap();
    let (rid, _) = s.request_segment(5, 0).unwrap();
    assert!(matches!(
        s.handle_message(&cmd(PeerCommand::SegmentData {
            segment: 5,
            request_id: rid,
            size: i64::MAX
        })),
        Err(ProtoError::SegmentTooLarge { .. })
    ));

    // negative byte_from
    let mut s = Session::new(SessionLimits::default()).unwrap();
    assert!(matches!(
        s.handle_message(&cmd(PeerCommand::SegmentRequest {
            segment: 1,
            request_id: 1,
            byte_from: Some(-4)
        })),
        Err(ProtoError::BadValue {
            field: "byte_from",
            ..
        })
    ));

    // unknown command type
    let mut s = Session::new(SessionLimits::default()).unwrap();
    assert_eq!(
        s.handle_message(b"cstr\x09cend"),
        Err(ProtoError::UnknownCommand(9))
    );

    // a header for a request we never made is ignored (as the JS does), but the data after it is not
    let mut s = Session::new(SessionLimits::default()).unwrap();
    assert_eq!(
        s.handle_message(&cmd(PeerCommand::SegmentData {
            segment: 5,
            request_id: 1,
            size: 4
        })),
        Ok(None)
    );
    assert!(s.handle_message(&[0; 4]).is_err());
}

#[test]
fn data_never_handed_out_before_completion() {
    let (mut a, mut b) = pair();
    let (rid, msgs) = b.request_segment(1, 0).unwrap();
    deliver(&mut a, &msgs);
    a.send_segment(rid, segment(70_000)).unwrap();
    let up = drain_upload(&mut a);
    let (last, rest) = up.split_last().unwrap();
    for m in rest {
        let ev = b.handle_message(m).unwrap();
        assert!(!matches!(ev, Some(SessionEvent::SegmentReceived { .. })));
    }
    assert!(matches!(
        b.handle_message(last).unwrap(),
        Some(SessionEvent::SegmentReceived { .. })
    ));
}

#[test]
fn tiny_message_size_is_refused() {
    let limits = SessionLimits {
        max_message_size: 8,
        ..SessionLimits::default()
    };
    assert!(Session::new(limits).is_err());
}

/// Seen with the real JS peer: request A, cancel A, request B; the JS writes
/// A's header and chunks, then B's header and chunks, and only then A's and B's
/// SendingCompleted (each a microtask later).
#[test]
fn completion_of_cancelled_request_after_the_next_header() {
    let mut s = Session::new(SessionLimits::default()).unwrap();
    let (a, _) = s.request_segment(1, 0).unwrap();
    s.cancel_request().unwrap();
    let (b, _) = s.request_segment(2, 0).unwrap();
    for m in [
        cmd(PeerCommand::SegmentData {
            segment: 1,
            request_id: a,
            size: 3,
        }),
        vec![9; 3],
        cmd(PeerCommand::SegmentData {
            segment: 2,
            request_id: b,
            size: 2,
        }),
        vec![8; 2],
        cmd(PeerCommand::SendingCompleted {
            segment: 1,
            request_id: a,
        }),
    ] {
        s.handle_message(&m).unwrap();
    }
    assert_eq!(
        s.handle_message(&cmd(PeerCommand::SendingCompleted {
            segment: 2,
            request_id: b
        }))
        .unwrap(),
        Some(SessionEvent::SegmentReceived {
            segment: 2,
            request_id: b,
            byte_from: 0,
            bytes: Bytes::from(vec![8; 2])
        })
    );
}

fn part_pair() -> (Session, Session) {
    part_pair_with(SessionLimits::default())
}

fn part_pair_with(limits: SessionLimits) -> (Session, Session) {
    let a = Session::new(limits).unwrap();
    let b = Session::new(limits).unwrap().with_first_request_id(500);
    let (mut a, mut b) = (a.with_extensions(EXT_PARTS), b.with_extensions(EXT_PARTS));
    deliver(&mut b, &a.announce(&[], &[]).unwrap());
    deliver(&mut a, &b.announce(&[], &[]).unwrap());
    (a, b)
}

const P: WirePart = WirePart {
    segment: 40,
    index: 2,
};

#[test]
fn parts_only_go_to_peers_that_speak_the_extension() {
    let (mut a, mut b) = pair();
    let a_ext = Session::new(SessionLimits::default())
        .unwrap()
        .with_extensions(EXT_PARTS);
    // A stock announcement carries no `x`: no part commands for that peer.
    deliver(&mut a, &b.announce(&[1], &[]).unwrap());
    assert!(!a.remote_speaks_parts());
    assert_eq!(a.announce_parts(&[P]), Err(UsageError::NoPartExtension));
    assert!(matches!(
        a.request_part(P),
        Err(UsageError::NoPartExtension)
    ));
    // Without extensions our announcement is byte-for-byte the stock one.
    assert_eq!(
        a.announce(&[1], &[]).unwrap(),
        vec![b"cstr\x00l\x10\x01\x01\x01\x01cend".to_vec()]
    );
    // With them it only adds the `x` field.
    let with_x = a_ext.announce(&[1], &[]).unwrap();
    assert_eq!(
        with_x,
        vec![b"cstr\x00l\x10\x01\x01\x01\x01x\x01\x01cend".to_vec()]
    );
    deliver(&mut b, &with_x);
    assert!(b.remote_speaks_parts());
    assert_eq!(b.remote_status(1), Some(SegmentStatus::Loaded));
}

#[test]
fn part_announce_request_send_receive() {
    let (mut a, mut b) = part_pair();
    let ev = deliver(&mut b, &a.announce_parts(&[P]).unwrap());
    assert_eq!(ev, vec![SessionEvent::PartsAnnounced { parts: 1 }]);
    assert_eq!(b.remote_parts().collect::<Vec<_>>(), vec![P]);
    let (rid, msgs) = b.request_part(P).unwrap();
    assert_eq!(b.downloading_part(), Some(P));
    // One download at a time, parts and segments together.
    assert_eq!(b.request_segment(1, 0), Err(UsageError::Busy));
    let ev = deliver(&mut a, &msgs);
    assert_eq!(
        ev,
        vec![SessionEvent::PartRequested {
            part: P,
            request_id: rid
        }]
    );
    // A part request cannot be answered as a segment and vice versa.
    assert_eq!(
        a.send_segment(rid, segment(10)),
        Err(UsageError::NoSuchRequest(rid))
    );
    let data = segment(150_000);
    a.send_part(rid, data.clone(), None).unwrap();
    let ev = deliver(&mut b, &drain_upload(&mut a));
    assert!(ev.contains(&SessionEvent::PartReceived {
        part: P,
        request_id: rid,
        bytes: data,
        signature: None,
    }));
    assert_eq!(b.downloading(), None);
}

#[test]
fn a_part_signature_travels_with_the_part_even_in_the_smallest_messages() {
    let (mut a, mut b) = part_pair_with(SessionLimits {
        max_message_size: framing::MIN_MESSAGE_SIZE,
        ..SessionLimits::default()
    });
    let (rid, msgs) = b.request_part(P).unwrap();
    deliver(&mut a, &msgs);
    let sig = format!("0123456789abcdef:{}==", "Q".repeat(86));
    let data = segment(1_000);
    a.send_part(rid, data.clone(), Some(sig.clone())).unwrap();
    let upload = drain_upload(&mut a);
    let ev = deliver(&mut b, &upload);
    assert!(ev.contains(&SessionEvent::PartReceived {
        part: P,
        request_id: rid,
        bytes: data,
        signature: Some(sig),
    }));
    // Too long to send: refused before anything goes out.
    let (mut a, mut b) = part_pair();
    let (rid, msgs) = b.request_part(P).unwrap();
    deliver(&mut a, &msgs);
    assert!(matches!(
        a.send_part(rid, segment(10), Some("a".repeat(MAX_PART_SIGNATURE + 1))),
        Err(UsageError::StringTooLong(_))
    ));
}

#[test]
fn part_absent_and_cancel() {
    let (mut a, mut b) = part_pair();
    let (rid, msgs) = b.request_part(P).unwrap();
    deliver(&mut a, &msgs);
    let ev = deliver(&mut b, &a.part_absent(rid).unwrap());
    assert_eq!(
        ev,
        vec![SessionEvent::PartAbsent {
            part: P,
            request_id: rid
        }]
    );
    // Cancel while the upload runs: the tail is tolerated, the completion ignored.
    let (rid, msgs) = b.request_part(P).unwrap();
    deliver(&mut a, &msgs);
    a.send_part(rid, segment(200_000), None).unwrap();
    let upload = drain_upload(&mut a);
    let cancel = b.cancel_request().unwrap();
    let ev = deliver(&mut a, &cancel);
    assert!(ev.is_empty(), "upload already drained: {ev:?}");
    assert!(deliver(&mut b, &upload)
        .iter()
        .all(|e| !matches!(e, SessionEvent::PartReceived { .. })));
}

#[test]
fn hostile_part_responses() {
    // Completion of a part while a segment is in progress is a violation.
    let (mut a, mut b) = part_pair();
    let (rid, msgs) = b.request_segment(7, 0).unwrap();
    deliver(&mut a, &msgs);
    a.send_segment(rid, segment(100)).unwrap();
    let mut upload = drain_upload(&mut a);
    upload.pop(); // SendingCompleted
    deliver(&mut b, &upload);
    let wrong = PeerCommand::PartSendingCompleted {
        part: WirePart {
            segment: 7,
            index: 0,
        },
        request_id: rid,
    }
    .encode(1000)
    .unwrap();
    assert!(matches!(
        b.handle_message(&wrong[0]),
        Err(ProtoError::WrongCompletion { .. })
    ));
    // Part data bigger than announced.
    let (mut a, mut b) = part_pair();
    let (rid, msgs) = b.request_part(P).unwrap();
    deliver(&mut a, &msgs);
    let header = PeerCommand::PartData {
        part: P,
        request_id: rid,
        size: 4,
        signature: None,
    }
    .encode(1000)
    .unwrap();
    deliver(&mut b, &header);
    assert!(matches!(
        b.handle_message(b"12345"),
        Err(ProtoError::Overflow { .. })
    ));
    // A part header for a part we did not ask for is ignored (like a stale
    // segment header), and its bytes are then a violation.
    let (_, mut b) = part_pair();
    let other = PeerCommand::PartData {
        part: P,
        request_id: 1,
        size: 4,
        signature: None,
    }
    .encode(1000)
    .unwrap();
    assert!(deliver(&mut b, &other).is_empty());
    assert!(matches!(
        b.handle_message(b"1234"),
        Err(ProtoError::UnexpectedData { .. })
    ));
    // Extension commands beyond ours are ignored.
    let (_, mut b) = part_pair();
    assert_eq!(b.handle_message(b"cstr\xc8cend"), Ok(None));
}
