//! Origin HA through the whole live path (`Streams` → `Publisher` → packager → store)
//! with a stream directory standing in for the fleet: a second origin adopting the
//! first one's numbering produces the same segments, and a new timeline continues
//! after its predecessor with one discontinuity.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::directory::Directory;
use super::numbering::SharedTimeline;
use super::Streams;
use crate::config::{Limits, PackagingConfig};
use crate::ingest::demo::{Clip, DEMO_CLIP};

#[derive(Debug, Default)]
struct FakeDirectory {
    timelines: Mutex<Vec<SharedTimeline>>,
}

impl Directory for FakeDirectory {
    fn timelines(&self, _: &str) -> Vec<SharedTimeline> {
        self.timelines.lock().clone()
    }
    fn holders(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
}

fn origin(directory: Option<Arc<FakeDirectory>>) -> Streams {
    let s = Streams::new(
        PackagingConfig {
            dvr_window: Duration::from_secs(3600),
            ..PackagingConfig::default()
        },
        Limits::default(),
        Default::default(),
        false,
    );
    if let Some(d) = directory {
        s.set_directory(d);
    }
    s
}

/// Feeds passes `from..to` of the demo clip (timestamps continue across passes).
fn feed(s: &Streams, clip: &Clip, from: u64, to: u64) -> super::Publisher {
    let mut p = s.publish("cam", None).expect("publish");
    clip.configure(&mut p).expect("configure");
    for i in from..to {
        clip.feed_all(&mut p, i * clip.duration().as_millis() as u64)
            .expect("feed");
    }
    p
}

/// (msn, bytes) of every complete segment.
fn segments(s: &Streams) -> Vec<(u64, Vec<u8>)> {
    let cam = s.get("cam").expect("stream");
    let t = cam.renditions[0].store.read();
    t.segments
        .iter()
        .map(|seg| {
            let bytes = seg.parts.iter().flat_map(|p| p.bytes.to_vec()).collect();
            (seg.msn, bytes)
        })
        .collect()
}

#[test]
fn an_origin_adopting_the_numbering_makes_the_same_segments() {
    let clip = Clip::parse(DEMO_CLIP).expect("clip");
    let a = origin(None);
    let _pa = feed(&a, &clip, 0, 4);
    let mut shared = a
        .get("cam")
        .and_then(|c| c.shared_timeline())
        .expect("timeline");
    // B gets the same publish from the second pass on. Frames are fed at once here,
    // not in real time: B sees them one clip duration "early", so the directory's
    // wall-clock mapping is moved by as much (the grid is what B must adopt).
    shared.pdt_anchor_ms -= clip.duration().as_millis() as i64;
    let dir = Arc::new(FakeDirectory::default());
    dir.timelines.lock().push(shared);
    let b = origin(Some(dir));
    let _pb = feed(&b, &clip, 1, 4);
    let (sa, sb) = (segments(&a), segments(&b));
    assert!(sb.len() >= 3, "{} segments", sb.len());
    // B's first segment may lack audio from before it joined; the rest are identical.
    let mut same = 0;
    for (msn, bytes) in sb.iter().skip(1) {
        let theirs = sa.iter().find(|(m, _)| m == msn);
        assert!(theirs.is_some(), "seg{msn} not on the first origin");
        if theirs.is_some_and(|(_, b)| b == bytes) {
            same += 1;
        }
    }
    assert_eq!(
        same,
        sb.len() - 1,
        "segments after B's first are byte-identical"
    );
}

#[test]
fn a_new_timeline_continues_after_its_predecessor_with_one_discontinuity() {
    let clip = Clip::parse(DEMO_CLIP).expect("clip");
    let dir = Arc::new(FakeDirectory::default());
    dir.timelines.lock().push(SharedTimeline {
        grid: super::numbering::Grid {
            anchor_ms: 0,
            target_ms: 2000,
        },
        pdt_anchor_ms: 12_345,
        last_msn: Some(900_000_123),
        last_cc: 4,
        live: false,
        updated_ms: 0,
    });
    let b = origin(Some(dir));
    let _p = feed(&b, &clip, 0, 2);
    let cam = b.get("cam").expect("stream");
    let t = cam.renditions[0].store.read();
    let msns: Vec<u64> = t.segments.iter().map(|s| s.msn).collect();
    assert_eq!(msns.first(), Some(&900_000_124));
    assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "{msns:?}");
    assert!(t.segments[0].discontinuity);
    assert!(t.segments.iter().skip(1).all(|s| !s.discontinuity));
    assert_eq!(t.discontinuity_sequence, 4);
}

#[test]
fn a_stream_published_again_on_the_same_origin_never_reuses_a_name() {
    let clip = Clip::parse(DEMO_CLIP).expect("clip");
    let s = Streams::new(
        PackagingConfig {
            reconnect_grace: Duration::ZERO,
            ended_linger: Duration::ZERO,
            ..PackagingConfig::default()
        },
        Limits::default(),
        Default::default(),
        false,
    );
    drop(feed(&s, &clip, 0, 3));
    let last = segments(&s).last().map(|x| x.0).expect("segments");
    s.reap();
    s.reap();
    assert!(s.get("cam").is_none(), "forgotten");
    // A new publish whose clock starts at 0 again, within the same second.
    let _p = feed(&s, &clip, 0, 1);
    let first = segments(&s).first().map(|x| x.0).expect("segments");
    assert_eq!(first, last + 1);
}
