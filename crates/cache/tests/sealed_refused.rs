//! A kernel that refuses a memory file (here: no descriptor left under the open-file
//! limit) leaves a large body on the heap: nothing is counted as sealed, the object
//! keeps its bytes and offers no file to send from, and sealing works again once
//! descriptors are free. A test binary of its own with one test: it lowers the whole
//! process's open-file limit for a moment.

use bytes::Bytes;
use cache::sealed::{sealed_count, SealedBody, SEAL_MIN};
use cache::{CachedObject, Memo, Pages};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Puts the open-file limit back when dropped, also when an assertion fails.
struct Restore(Rlimit);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = setrlimit(Resource::Nofile, self.0);
    }
}

/// The lowest descriptor number not open now: the next one the kernel would give.
fn lowest_free_fd() -> u64 {
    use std::os::fd::AsRawFd;
    let probe = std::fs::File::open("/dev/null").expect("/dev/null");
    u64::try_from(probe.as_raw_fd()).unwrap_or(0)
}

fn object(body: Bytes) -> CachedObject {
    CachedObject {
        status: 200,
        headers: Vec::new(),
        body,
        stored_ms: 0,
        fresh_until_ms: u64::MAX,
        stale_while_revalidate_until_ms: 0,
        stale_if_error_until_ms: 0,
        memo: Memo::default(),
        pages: Pages::default(),
    }
}

#[test]
fn out_of_descriptors_a_large_body_stays_on_the_heap() {
    let body = Bytes::from(
        (0..SEAL_MIN * 2)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    // Sealing works here (and the budget is read now, with the limit as it is).
    let first = SealedBody::seal(&body).expect("a memory file");
    assert_eq!(first.bytes(), body);
    let counted = sealed_count();

    let was = getrlimit(Resource::Nofile);
    let restore = Restore(was);
    // The next descriptor would be at the limit: `memfd_create` fails (EMFILE).
    let limit = lowest_free_fd();
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(limit),
            maximum: was.maximum,
        },
    )
    .expect("lowering the soft limit");
    assert!(SealedBody::seal(&body).is_none(), "no descriptor, no file");
    let mut obj = object(body.clone());
    obj.seal_body();
    drop(restore);

    assert_eq!(sealed_count(), counted, "a refused body is not counted");
    assert_eq!(obj.body, body, "the body stays, on the heap");
    assert!(obj.body_file(&obj.body).is_none(), "no file to send from");
    // Descriptors free again: the same object is sealed now.
    obj.seal_body();
    assert!(obj.body_file(&obj.body).is_some());
    assert_eq!(obj.body, body);
    assert_eq!(sealed_count(), counted + 1);
    drop(first);
}
