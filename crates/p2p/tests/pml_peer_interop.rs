//! Interop: our sans-IO `proto::Session` against the REAL p2p-media-loader 2.3
//! `Peer` class from npm (`tests/js/pml-peer.mjs`), with stdio standing in for the
//! WebRTC data channel. Both directions: we download from the JS peer (whole, by
//! byte range, absent, cancelled mid-flight) and it downloads from us (a segment
//! whose first chunk would look like a command, after a split announcement).
//! Needs Node.js and `cd crates/p2p/tests/js && npm ci`; fails (never skips) if not.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use bytes::Bytes;
use p2p::proto::{SegmentStatus, Session, SessionEvent, SessionLimits};
use sha2::{Digest, Sha256};

const SETUP: &str = "run `cd crates/p2p/tests/js && npm ci` (needs Node.js >= 18 on PATH)";
/// Upper bound for any single wait; never reached when things work.
const WAIT: Duration = Duration::from_secs(20);

fn segment_data(id: i64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| ((k as i64 * 31 + id) & 0xff) as u8)
        .collect()
}

struct JsPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: Receiver<Vec<u8>>,
    reports: Receiver<String>,
}

impl Drop for JsPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl JsPeer {
    fn start() -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js");
        let pkg = dir.join("node_modules/p2p-media-loader-core/package.json");
        assert!(
            pkg.exists(),
            "npm package p2p-media-loader-core missing: {SETUP}"
        );
        let mut child = Command::new("node")
            .arg("pml-peer.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node ({e}): {SETUP}"));
        let mut stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (mtx, messages) = mpsc::channel();
        std::thread::spawn(move || loop {
            let mut head = [0u8; 4];
            if stdout.read_exact(&mut head).is_err() {
                return;
            }
            let mut m = vec![0u8; u32::from_be_bytes(head) as usize];
            if stdout.read_exact(&mut m).is_err() || mtx.send(m).is_err() {
                return;
            }
        });
        let (rtx, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if rtx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            messages,
            reports,
        }
    }

    fn send(&mut self, messages: &[Vec<u8>]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        for m in messages {
            stdin
                .write_all(&(m.len() as u32).to_be_bytes())
                .expect("write");
            stdin.write_all(m).expect("write");
        }
        stdin.flush().expect("flush");
    }

    /// Feeds the JS peer's messages to `session` until `want` matches an event.
    fn until(&self, session: &mut Session, want: impl Fn(&SessionEvent) -> bool) -> SessionEvent {
        loop {
            let m = self.messages.recv_timeout(WAIT).unwrap_or_else(|_| {
                let reports: Vec<String> = self.reports.try_iter().collect();
                panic!("no message from the JS peer; its reports: {reports:?}")
            });
            match session.handle_message(&m) {
                Ok(Some(e)) if want(&e) => return e,
                Ok(_) => {}
                Err(e) => panic!("JS peer broke the protocol: {e}"),
            }
        }
    }

    fn report(&self) -> String {
        self.reports
            .recv_timeout(WAIT)
            .expect("a report from the JS peer")
    }
}

#[test]
fn native_session_and_real_js_peer_exchange_segments() {
    let mut js = JsPeer::start();
    let mut s = Session::new(SessionLimits::default()).expect("session");

    // 1. its announcement
    js.until(&mut s, |e| matches!(e, SessionEvent::Announced { .. }));
    assert_eq!(s.remote_status(10), Some(SegmentStatus::Loaded));
    assert_eq!(s.remote_status(11), Some(SegmentStatus::Loaded));
    assert_eq!(s.remote_status(12), Some(SegmentStatus::HttpLoading));

    // 2. a whole segment of three chunks
    let (rid, m) = s.request_segment(10, 0).expect("request");
    js.send(&m);
    let got = js.until(&mut s, |e| {
        matches!(e, SessionEvent::SegmentReceived { .. })
    });
    let SessionEvent::SegmentReceived {
        segment,
        request_id,
        bytes,
        ..
    } = got
    else {
        unreachable!()
    };
    assert_eq!((segment, request_id), (10, rid));
    assert_eq!(bytes, segment_data(10, 150_000));

    // 3. resume from a byte
    let (_, m) = s.request_segment(11, 100).expect("request");
    js.send(&m);
    let got = js.until(&mut s, |e| {
        matches!(e, SessionEvent::SegmentReceived { .. })
    });
    let SessionEvent::SegmentReceived {
        bytes, byte_from, ..
    } = got
    else {
        unreachable!()
    };
    assert_eq!(byte_from, 100);
    assert_eq!(bytes, segment_data(11, 1000)[100..]);

    // 4. a segment it does not have
    let (rid, m) = s.request_segment(99, 0).expect("request");
    js.send(&m);
    let got = js.until(&mut s, |e| matches!(e, SessionEvent::SegmentAbsent { .. }));
    assert_eq!(
        got,
        SessionEvent::SegmentAbsent {
            segment: 99,
            request_id: rid
        }
    );

    // 5. cancel right after asking: the JS has already sent it all; the tail is
    // tolerated and the next request works
    let (_, m) = s.request_segment(10, 0).expect("request");
    js.send(&m);
    let cancel = s.cancel_request().expect("cancel");
    js.send(&cancel);
    let (_, m) = s.request_segment(11, 0).expect("request");
    js.send(&m);
    let got = js.until(&mut s, |e| {
        matches!(e, SessionEvent::SegmentReceived { .. })
    });
    let SessionEvent::SegmentReceived { segment, bytes, .. } = got else {
        unreachable!()
    };
    assert_eq!(segment, 11);
    assert_eq!(bytes, segment_data(11, 1000));

    // 6. it downloads from us. The announcement is big enough to be split
    // (cstr…dend, dstr…cend); the segment's first 64 KiB chunk would look like a
    // command if sent whole.
    let loaded: Vec<i64> = (0..255)
        .flat_map(|g| (0..255).map(move |k| g * 256 + k))
        .collect();
    let announce = s.announce(&loaded, &[]).expect("announce");
    assert_eq!(announce.len(), 2, "split announcement");
    js.send(&announce);
    let got = js.until(&mut s, |e| {
        matches!(e, SessionEvent::SegmentRequested { .. })
    });
    let SessionEvent::SegmentRequested {
        segment,
        request_id,
        byte_from,
    } = got
    else {
        unreachable!()
    };
    assert_eq!((segment, byte_from), (20, 0));
    let mut data = segment_data(20, 200_000);
    data[..4].copy_from_slice(b"cstr");
    data[65_531..65_535].copy_from_slice(b"cend");
    s.send_segment(request_id, Bytes::from(data.clone()))
        .expect("send");
    let upload: Vec<Vec<u8>> = std::iter::from_fn(|| s.next_upload_message()).collect();
    js.send(&upload);
    let report = js.report();
    let sha = hex::encode(Sha256::digest(&data));
    assert_eq!(report, format!("downloaded 20 200000 {sha}"));
    js.until(&mut s, |e| matches!(e, SessionEvent::Announced { .. }));
    assert_eq!(s.remote_status(20), Some(SegmentStatus::Loaded));

    // 7. clean end: the JS peer never dropped us
    js.stdin.take();
    let status = js.child.wait().expect("wait");
    assert!(status.success(), "node exited with {status}");
    let rest: Vec<String> = js.reports.try_iter().collect();
    assert!(rest.is_empty(), "unexpected reports: {rest:?}");
}

/// The part extension (PROTOCOL.md §5) is invisible to a stock peer: the real JS
/// `Peer` takes our announcement with `x`, ignores part commands (even a request,
/// which a stock peer is never sent in practice), and keeps serving whole segments.
#[test]
fn the_real_js_peer_ignores_the_part_extension() {
    use p2p::proto::{PeerCommand, WirePart, EXT_PARTS};
    let mut js = JsPeer::start();
    let mut s = Session::new(SessionLimits::default())
        .expect("session")
        .with_extensions(EXT_PARTS);
    js.until(&mut s, |e| matches!(e, SessionEvent::Announced { .. }));
    assert!(!s.remote_speaks_parts(), "a stock peer has no `x`");
    js.send(&s.announce(&[1, 2], &[]).expect("announce"));
    let part = WirePart {
        segment: 10,
        index: 1,
    };
    for c in [
        PeerCommand::PartsAnnouncement { parts: vec![part] },
        PeerCommand::PartRequest {
            part,
            request_id: 5,
        },
        PeerCommand::CancelPartRequest {
            part,
            request_id: 5,
        },
    ] {
        js.send(&c.encode(65_535).expect("encode"));
    }
    // Still a working peer for whole segments.
    let (rid, m) = s.request_segment(10, 0).expect("request");
    js.send(&m);
    let got = js.until(&mut s, |e| {
        matches!(e, SessionEvent::SegmentReceived { .. })
    });
    let SessionEvent::SegmentReceived {
        segment,
        request_id,
        bytes,
        ..
    } = got
    else {
        unreachable!()
    };
    assert_eq!((segment, request_id), (10, rid));
    assert_eq!(bytes, segment_data(10, 150_000));
}
