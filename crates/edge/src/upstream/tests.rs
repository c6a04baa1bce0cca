//! End-to-end tests of `Upstreams` against tiny hyper servers on 127.0.0.1:0.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::*;

/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

struct ServerState {
    name: String,
    status: AtomicU16,
    delay_ms: AtomicU64,
    requests: AtomicUsize,
    health_checks: AtomicUsize,
    last_headers: Mutex<Option<HeaderMap>>,
}

/// A test upstream: answers `status` (after `delay_ms`) with its name as the body, and
/// the same status on `/healthz`. Stopped (with its connections) when dropped.
struct TestServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start(name: &str) -> TestServer {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("local_addr: {e}"),
        };
        let state = Arc::new(ServerState {
            name: name.to_string(),
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
            health_checks: AtomicUsize::new(0),
            last_headers: Mutex::new(None),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut conns = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let st = st.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TestServer { addr, state, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_status(&self, s: u16) {
        self.state.status.store(s, Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    st: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if req.uri().path() == "/healthz" {
        st.health_checks.fetch_add(1, Ordering::SeqCst);
    } else {
        st.requests.fetch_add(1, Ordering::SeqCst);
        *st.last_headers.lock() = Some(req.headers().clone());
        let delay = st.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }
    let status = StatusCode::from_u16(st.status.load(Ordering::SeqCst))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Full::new(Bytes::from(st.name.clone())));
    *resp.status_mut() = status;
    Ok(resp)
}

/// An address where nothing listens (bound, then released).
async fn dead_url() -> String {
    let l = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = match l.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("local_addr: {e}"),
    };
    drop(l);
    format!("http://{addr}")
}

fn config(origins: Vec<String>, parents: Vec<String>) -> UpstreamConfig {
    UpstreamConfig {
        origins,
        parents,
        connect_timeout: Duration::from_millis(500),
        first_byte_timeout: Duration::from_secs(2),
        breaker_cooldown: Duration::from_secs(60),
        ..UpstreamConfig::default()
    }
}

fn build(cfg: UpstreamConfig) -> Arc<Upstreams> {
    match Upstreams::new(cfg) {
        Ok(u) => u,
        Err(e) => panic!("config: {e}"),
    }
}

async fn get(up: &Upstreams, path: &str) -> Result<Fetched, FetchError> {
    get_with(up, path, &HeaderMap::new()).await
}

async fn get_with(up: &Upstreams, path: &str, h: &HeaderMap) -> Result<Fetched, FetchError> {
    match tokio::time::timeout(WAIT * 2, up.fetch(path, &Method::GET, path, h)).await {
        Ok(r) => r,
        Err(_) => panic!("fetch of {path} did not finish in time"),
    }
}

async fn body(f: Fetched) -> String {
    match tokio::time::timeout(WAIT, f.response.into_body().collect()).await {
        Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Ok(Err(e)) => panic!("body: {e}"),
        Err(_) => panic!("body timed out"),
    }
}

fn ok(r: Result<Fetched, FetchError>) -> Fetched {
    match r {
        Ok(f) => f,
        Err(e) => panic!("fetch failed: {e}"),
    }
}

fn origin_status(up: &Upstreams, index: usize) -> TargetStatus {
    match up
        .status()
        .into_iter()
        .filter(|s| s.kind == Kind::Origin)
        .nth(index)
    {
        Some(s) => s,
        None => panic!("no origin {index}"),
    }
}

#[tokio::test]
async fn first_origin_500_is_served_by_the_second() {
    let o1 = TestServer::start("o1").await;
    let o2 = TestServer::start("o2").await;
    o1.set_status(500);
    let up = build(config(vec![o1.url(), o2.url()], vec![]));
    let f = ok(get(&up, "/live/a.m3u8").await);
    assert_eq!(f.target.kind, Kind::Origin);
    assert_eq!(f.target.index, 1);
    assert_eq!(f.response.status(), StatusCode::OK);
    assert_eq!(body(f).await, "o2");
    assert_eq!(o1.requests(), 1);
    assert_eq!(origin_status(&up, 0).consecutive_failures, 1);
}

#[tokio::test]
async fn first_origin_down_is_served_by_the_second() {
    let o2 = TestServer::start("o2").await;
    let up = build(config(vec![dead_url().await, o2.url()], vec![]));
    let f = ok(get(&up, "/seg1.m4s").await);
    assert_eq!(f.target.index, 1);
    assert_eq!(body(f).await, "o2");
    let st = origin_status(&up, 0);
    assert!(st.last_error.is_some_and(|e| e.contains("connect")));
}

#[tokio::test]
async fn both_down_is_all_failed() {
    let up = build(config(vec![dead_url().await, dead_url().await], vec![]));
    match get(&up, "/x").await {
        Err(FetchError::AllFailed { tried, .. }) => assert_eq!(tried, 2),
        other => panic!("expected AllFailed, got {other:?}"),
    }
    let o1 = TestServer::start("o1").await;
    let o2 = TestServer::start("o2").await;
    o1.set_status(503);
    o2.set_status(502);
    let up = build(config(vec![o1.url(), o2.url()], vec![]));
    match get(&up, "/x").await {
        Err(FetchError::AllFailed { tried, last }) => {
            assert_eq!(tried, 2);
            assert!(last.contains("502"), "{last}");
        }
        other => panic!("expected AllFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_4xx_is_an_answer_not_a_failure() {
    let o1 = TestServer::start("o1").await;
    let o2 = TestServer::start("o2").await;
    o1.set_status(404);
    let up = build(config(vec![o1.url(), o2.url()], vec![]));
    let f = ok(get(&up, "/missing").await);
    assert_eq!(f.response.status(), StatusCode::NOT_FOUND);
    assert_eq!(f.target.index, 0);
    assert_eq!(o2.requests(), 0);
    assert_eq!(origin_status(&up, 0).consecutive_failures, 0);
}

#[tokio::test]
async fn breaker_opens_skips_without_connecting_and_health_checks_close_it() {
    let o1 = TestServer::start("o1").await;
    let o2 = TestServer::start("o2").await;
    o1.set_status(500);
    let mut cfg = config(vec![o1.url(), o2.url()], vec![]);
    cfg.health_interval = Duration::from_millis(50);
    let up = build(cfg);
    for i in 0..3 {
        let f = ok(get(&up, &format!("/s{i}")).await);
        assert_eq!(f.target.index, 1);
    }
    assert_eq!(o1.requests(), 3);
    let st = origin_status(&up, 0);
    assert_eq!(st.breaker, BreakerState::Open);
    assert_eq!(st.consecutive_failures, 3);
    assert_eq!(up.plan("/s4").len(), 1);

    // Open: skipped without a request.
    for i in 4..8 {
        let f = ok(get(&up, &format!("/s{i}")).await);
        assert_eq!(f.target.index, 1);
    }
    assert_eq!(o1.requests(), 3);

    // The origin comes back; active checks close the breaker long before the 60 s cooldown.
    o1.set_status(200);
    let checker = up.spawn_health_checks();
    let deadline = Instant::now() + WAIT;
    loop {
        let st = origin_status(&up, 0);
        if st.breaker == BreakerState::Closed && st.healthy == Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "breaker never closed: {st:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    checker.abort();
    let _ = checker.await;
    assert!(o1.state.health_checks.load(Ordering::SeqCst) >= 1);
    let f = ok(get(&up, "/s9").await);
    assert_eq!(f.target.index, 0);
    assert_eq!(body(f).await, "o1");
    assert_eq!(o1.requests(), 4);
}

#[tokio::test]
async fn failing_health_checks_open_the_breaker() {
    let o1 = TestServer::start("o1").await;
    let o2 = TestServer::start("o2").await;
    o1.set_status(503);
    let mut cfg = config(vec![o1.url(), o2.url()], vec![]);
    cfg.health_interval = Duration::from_millis(30);
    let up = build(cfg);
    let checker = up.spawn_health_checks();
    let deadline = Instant::now() + WAIT;
    while origin_status(&up, 0).breaker != BreakerState::Open {
        assert!(Instant::now() < deadline, "breaker never opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    checker.abort();
    let _ = checker.await;
    assert_eq!(origin_status(&up, 0).healthy, Some(false));
    assert_eq!(origin_status(&up, 1).healthy, Some(true));
    assert_eq!(o1.requests(), 0);
    let f = ok(get(&up, "/x").await);
    assert_eq!(f.target.index, 1);
    assert_eq!(o1.requests(), 0);
}

#[tokio::test]
async fn half_open_trial_by_a_real_request_closes_the_breaker() {
    let o1 = TestServer::start("o1").await;
    let o2 = TestServer::start("o2").await;
    o1.set_status(500);
    let mut cfg = config(vec![o1.url(), o2.url()], vec![]);
    cfg.breaker_failures = 1;
    cfg.breaker_cooldown = Duration::from_millis(100);
    let up = build(cfg);
    ok(get(&up, "/a").await);
    assert_eq!(origin_status(&up, 0).breaker, BreakerState::Open);
    o1.set_status(200);
    // The cooldown passes on tokio's clock, not the wall clock (then real I/O again).
    // (No check just short of the cooldown here: the breaker opened an unknown bit of
    // real time before the clock was paused; the boundary is tested in `health`.)
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(origin_status(&up, 0).breaker, BreakerState::HalfOpen);
    tokio::time::resume();
    let f = ok(get(&up, "/b").await);
    assert_eq!(f.target.index, 0);
    assert_eq!(origin_status(&up, 0).breaker, BreakerState::Closed);
}

#[tokio::test]
async fn a_dropped_trial_is_released() {
    let o1 = TestServer::start("o1").await;
    o1.state.delay_ms.store(3_000, Ordering::SeqCst);
    let mut cfg = config(vec![o1.url()], vec![]);
    cfg.breaker_failures = 1;
    cfg.breaker_cooldown = Duration::from_millis(1);
    let up = build(cfg);
    up.report(&up.plan("/x")[0], false);
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(5)).await;
    tokio::time::resume();
    let r = tokio::time::timeout(
        Duration::from_millis(200),
        up.fetch("/x", &Method::GET, "/x", &HeaderMap::new()),
    )
    .await;
    assert!(r.is_err(), "the slow fetch should have been cut off");
    // The trial went out and was abandoned: the next request may take it.
    let slot = &up.origins[0];
    assert_eq!(
        slot.state.lock().breaker.try_acquire(Instant::now()),
        Admission::Trial
    );
}

#[tokio::test]
async fn slow_first_byte_times_out_and_fails_over() {
    let slow = TestServer::start("slow").await;
    slow.state.delay_ms.store(3_000, Ordering::SeqCst);
    let fast = TestServer::start("fast").await;
    let mut cfg = config(vec![slow.url(), fast.url()], vec![]);
    cfg.first_byte_timeout = Duration::from_millis(200);
    let up = build(cfg.clone());
    let started = Instant::now();
    let f = ok(get(&up, "/p.m3u8").await);
    assert_eq!(body(f).await, "fast");
    assert!(started.elapsed() < Duration::from_secs(2));

    cfg.origins = vec![slow.url()];
    let up = build(cfg);
    let started = Instant::now();
    match get(&up, "/p.m3u8").await {
        Err(FetchError::Timeout) => {}
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn request_headers_via_and_forwarded_for() {
    let o1 = TestServer::start("o1").await;
    let up = build(config(vec![o1.url()], vec![]));
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.9"));
    h.insert("host", HeaderValue::from_static("viewer.example"));
    h.insert("connection", HeaderValue::from_static("close"));
    let f = ok(get_with(&up, "/v.m3u8?_HLS_msn=7&_HLS_part=1", &h).await);
    let _ = body(f).await;
    let seen = o1.state.last_headers.lock().clone().unwrap_or_default();
    assert_eq!(
        seen.get("via").and_then(|v| v.to_str().ok()),
        Some("1.1 mediamesh-edge")
    );
    assert_eq!(
        seen.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
        Some("198.51.100.9")
    );
    let host = o1.addr.to_string();
    assert_eq!(
        seen.get("host").and_then(|v| v.to_str().ok()),
        Some(host.as_str())
    );
}

#[tokio::test]
async fn head_requests_and_bad_requests() {
    let o1 = TestServer::start("o1").await;
    let up = build(config(vec![o1.url()], vec![]));
    let f = ok(up.fetch("/k", &Method::HEAD, "/k", &HeaderMap::new()).await);
    assert_eq!(f.response.status(), StatusCode::OK);
    drop(f);
    match up.fetch("/k", &Method::POST, "/k", &HeaderMap::new()).await {
        Err(FetchError::InvalidRequest(_)) => {}
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    match up
        .fetch("k", &Method::GET, "no-slash", &HeaderMap::new())
        .await
    {
        Err(FetchError::InvalidRequest(_)) => {}
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    assert_eq!(o1.requests(), 1);
    assert_eq!(origin_status(&up, 0).consecutive_failures, 0);
}

#[tokio::test]
async fn parents_plan_starts_with_the_rendezvous_winner_and_fail_over() {
    let p0 = TestServer::start("p0").await;
    let p1 = TestServer::start("p1").await;
    let origin = TestServer::start("origin").await;
    let up = build(config(vec![origin.url()], vec![p0.url(), p1.url()]));
    let ids = vec![p0.url(), p1.url()];
    let key = "/live/ch1/seg42.m4s";
    let winner = match rendezvous_owner(&ids, 0..2, key) {
        Some(w) => w,
        None => panic!("no owner"),
    };
    let plan = up.plan(key);
    assert_eq!(plan.len(), 3);
    assert_eq!(plan[0].kind, Kind::Parent);
    assert_eq!(plan[0].index, winner);
    assert_eq!(plan[1].index, 1 - winner);
    assert_eq!(plan[2].kind, Kind::Origin);

    let f = ok(up.fetch(key, &Method::GET, key, &HeaderMap::new()).await);
    assert_eq!(f.target, plan[0]);
    assert_eq!(body(f).await, format!("p{winner}"));

    // The winner dies: the runner-up parent serves, not the origin.
    let (dead, alive) = if winner == 0 { (p0, p1) } else { (p1, p0) };
    drop(dead);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let f = ok(up.fetch(key, &Method::GET, key, &HeaderMap::new()).await);
    assert_eq!(f.target.kind, Kind::Parent);
    assert_eq!(f.target.index, 1 - winner);
    let _ = body(f).await;
    assert_eq!(origin.requests(), 0);
    assert!(alive.requests() >= 1);
}

#[test]
fn a_dead_parent_moves_only_its_own_keys() {
    let parents: Vec<String> = (1..=3).map(|i| format!("http://127.0.0.{i}:9")).collect();
    let up = build(config(vec!["http://127.0.0.1:9".into()], parents));
    let t0 = Instant::now();
    let keys: Vec<String> = (0..3000).map(|i| format!("/c/{i}.m4s")).collect();
    let before: Vec<Target> = keys
        .iter()
        .map(|k| up.plan_at(k, t0).targets[0].clone())
        .collect();
    // Open parent 1's breaker.
    for _ in 0..3 {
        up.record_at(&up.parents[1], false, Some("test"), t0);
    }
    let mut moved = 0;
    for (k, b) in keys.iter().zip(&before) {
        let plan = up.plan_at(k, t0);
        assert!(!plan.probing);
        assert_eq!(plan.targets.len(), 3); // 2 live parents + origin
        let now_first = &plan.targets[0];
        if b.index == 1 {
            moved += 1;
            assert_ne!(now_first.index, 1);
            assert_eq!(now_first.kind, Kind::Parent);
        } else {
            assert_eq!(now_first, b, "{k} moved off a live parent");
        }
    }
    assert!((700..=1300).contains(&moved), "{moved}");
    // After the cooldown the parent is live again and gets its keys back.
    let later = t0 + Duration::from_secs(61);
    for (k, b) in keys.iter().zip(&before) {
        assert_eq!(&up.plan_at(k, later).targets[0], b);
    }
}

#[test]
fn when_everything_is_open_the_plan_returns_everything() {
    let up = build(config(
        vec!["http://127.0.0.1:9".into(), "http://127.0.0.2:9".into()],
        vec!["http://127.0.0.3:9".into(), "http://127.0.0.4:9".into()],
    ));
    let t0 = Instant::now();
    for slot in up.parents.iter().chain(up.origins.iter()) {
        for _ in 0..3 {
            up.record_at(slot, false, Some("down"), t0);
        }
    }
    let plan = up.plan_at("/k", t0);
    assert!(plan.probing);
    let kinds: Vec<(Kind, usize)> = plan.targets.iter().map(|t| (t.kind, t.index)).collect();
    let ranked = rendezvous_rank(&up.parent_ids, 0..2, "/k");
    assert_eq!(
        kinds,
        vec![
            (Kind::Parent, ranked[0]),
            (Kind::Parent, ranked[1]),
            (Kind::Origin, 0),
            (Kind::Origin, 1)
        ]
    );
    // Only parents open: straight to the origins, no probing.
    let up = build(config(
        vec!["http://127.0.0.1:9".into()],
        vec!["http://127.0.0.3:9".into()],
    ));
    for _ in 0..3 {
        up.record_at(&up.parents[0], false, None, t0);
    }
    let plan = up.plan_at("/k", t0);
    assert!(!plan.probing);
    assert_eq!(plan.targets.len(), 1);
    assert_eq!(plan.targets[0].kind, Kind::Origin);
}

#[test]
fn report_feeds_the_breaker_and_status_lists_everything() {
    let up = build(config(
        vec!["http://127.0.0.1:9".into()],
        vec!["http://127.0.0.3:9/".into()],
    ));
    let st = up.status();
    assert_eq!(st.len(), 2);
    assert_eq!(st[0].kind, Kind::Parent);
    assert_eq!(st[0].base, "http://127.0.0.3:9");
    assert_eq!(st[0].healthy, None);
    let origin = up.plan("/k")[1].clone();
    assert_eq!(origin.kind, Kind::Origin);
    for _ in 0..3 {
        up.report(&origin, false);
    }
    assert_eq!(origin_status(&up, 0).breaker, BreakerState::Open);
    up.report(&origin, true);
    assert_eq!(origin_status(&up, 0).breaker, BreakerState::Closed);
    // A target from elsewhere is ignored.
    up.report(
        &Target {
            base: "http://other:1".into(),
            kind: Kind::Origin,
            index: 0,
        },
        false,
    );
    assert_eq!(origin_status(&up, 0).consecutive_failures, 0);
}

#[test]
fn config_is_validated() {
    let bad = |cfg: UpstreamConfig| Upstreams::new(cfg).err();
    assert!(matches!(
        bad(config(vec![], vec![])),
        Some(ConfigError::InvalidConfig(_))
    ));
    assert!(matches!(
        bad(config(vec!["https://o:443".into()], vec![])),
        Some(ConfigError::InvalidUrl(_))
    ));
    assert!(matches!(
        bad(config(vec!["http://o:1".into()], vec!["nope".into()])),
        Some(ConfigError::InvalidUrl(_))
    ));
    assert!(matches!(
        bad(config(
            vec!["http://o:1".into(), "http://O:1/".into()],
            vec![]
        )),
        Some(ConfigError::InvalidConfig(_))
    ));
    let mut c = config(vec!["http://o:1".into()], vec![]);
    c.first_byte_timeout = Duration::ZERO;
    assert!(matches!(bad(c), Some(ConfigError::InvalidConfig(_))));
    let mut c = config(vec!["http://o:1".into()], vec![]);
    c.health_path = "healthz".into();
    assert!(matches!(bad(c), Some(ConfigError::InvalidConfig(_))));
    let d = UpstreamConfig::default();
    assert_eq!(d.first_byte_timeout, Duration::from_secs(15));
    assert_eq!(d.breaker_failures, 3);
}

/// An origin that sends every request elsewhere with a stream-directory redirect to
/// `to` (same path), or to itself when `to` is `None`; counts what it saw.
async fn redirector(
    to: Option<String>,
    marked: bool,
) -> (String, Arc<Mutex<Vec<HeaderMap>>>, JoinHandle<()>) {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("local_addr: {e}"),
    };
    let me = format!("http://{addr}");
    let to = to.unwrap_or_else(|| me.clone());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let (to, seen) = (to.clone(), seen2.clone());
            conns.spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (to, seen) = (to.clone(), seen.clone());
                    async move {
                        if req.uri().path() != "/healthz" {
                            seen.lock().push(req.headers().clone());
                        }
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"moved")));
                        *resp.status_mut() = StatusCode::FOUND;
                        let loc = format!("{to}{}", req.uri().path());
                        if let Ok(v) = HeaderValue::from_str(&loc) {
                            resp.headers_mut().insert(http::header::LOCATION, v);
                        }
                        if marked {
                            resp.headers_mut().insert(
                                "mediamesh-redirect",
                                HeaderValue::from_static("directory"),
                            );
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (me, seen, task)
}

#[tokio::test]
async fn directory_redirects_are_followed_with_a_hop_count() {
    let b = TestServer::start("b").await;
    let (a, seen, task) = redirector(Some(b.url()), true).await;
    let mut c = config(vec![a], vec![]);
    c.redirect_allow = vec![b.url()];
    let up = build(c);
    let f = ok(get(&up, "/live/cam/src/index.m3u8").await);
    assert_eq!(f.response.status(), StatusCode::OK);
    let body = f.response.into_body().collect().await.map(|c| c.to_bytes());
    assert_eq!(body.ok().as_deref(), Some(&b"b"[..]));
    assert_eq!(seen.lock().len(), 1);
    let hops = b
        .state
        .last_headers
        .lock()
        .clone()
        .and_then(|h| h.get("mediamesh-hops").cloned());
    assert_eq!(hops, Some(HeaderValue::from_static("1")));
    task.abort();
}

#[tokio::test]
async fn a_redirect_loop_ends_at_the_hop_limit_and_other_redirects_pass_through() {
    // An origin that redirects to itself: followed MAX_DIRECTORY_HOPS times, then the
    // next origin (a plain one) answers.
    let (a, seen, task) = redirector(None, true).await;
    let b = TestServer::start("b").await;
    let up = build(config(vec![a, b.url()], vec![]));
    let f = ok(get(&up, "/live/cam/index.m3u8").await);
    assert_eq!(f.response.status(), StatusCode::OK);
    assert_eq!(seen.lock().len() as u32, 1 + MAX_DIRECTORY_HOPS);
    task.abort();
    // An ordinary 302 (not from the directory) is the viewer's business.
    let (c, _, task) = redirector(Some(b.url()), false).await;
    let up = build(config(vec![c], vec![]));
    let f = ok(get(&up, "/x").await);
    assert_eq!(f.response.status(), StatusCode::FOUND);
    task.abort();
}

#[test]
fn only_absolute_http_locations_are_followed() {
    assert_eq!(
        split_location("http://B:81/live/x?a=1"),
        Some(("http://b:81".to_string(), "/live/x?a=1".to_string()))
    );
    for bad in [
        "https://b/x",
        "/relative",
        "ftp://b/x",
        "http://u@b/x",
        "not a url",
    ] {
        assert_eq!(split_location(bad), None, "{bad}");
    }
}

/// Finding 10: a directory redirect to an upstream that is not configured was
/// followed, and its answer cached under the viewer's path. Now it is refused (the
/// fetch fails: 502 for the viewer) and the stranger sees no request.
#[tokio::test]
async fn directory_redirects_to_unconfigured_upstreams_are_refused() {
    let stranger = TestServer::start("stranger").await;
    let (a, seen, task) = redirector(Some(stranger.url()), true).await;
    let up = build(config(vec![a], vec![]));
    let r = get(&up, "/live/cam/index.m3u8").await;
    assert!(
        matches!(&r, Err(FetchError::AllFailed { last, .. }) if last.contains("not a configured upstream")),
        "{r:?}"
    );
    assert_eq!(seen.lock().len(), 1);
    assert!(stranger.state.last_headers.lock().is_none());
    task.abort();
}

/// Connections to one upstream are capped: with a cap of 1, a second request waits
/// for the first response (and its body) to be dropped.
#[tokio::test]
async fn connections_per_upstream_are_capped() {
    let o = TestServer::start("o").await;
    let mut c = config(vec![o.url()], vec![]);
    c.max_connections_per_upstream = 1;
    c.first_byte_timeout = Duration::from_millis(300);
    let up = build(c);
    let first = ok(get(&up, "/a").await);
    // The only slot is held by `first`: the next request gives up waiting.
    let r = get(&up, "/b").await;
    assert!(matches!(r, Err(FetchError::Timeout)), "{r:?}");
    drop(first);
    let again = ok(get(&up, "/c").await);
    assert_eq!(again.response.status(), StatusCode::OK);
}

fn callout<'a>(base: &'a str, method: &'a str, path: &'a str) -> compute::CalloutRequest<'a> {
    compute::CalloutRequest {
        upstream: "svc",
        base,
        method,
        path,
        headers: &[],
        body: b"{}",
    }
}

#[tokio::test]
async fn callouts_to_an_origin_fail_over_and_feed_its_breaker() {
    use compute::CalloutClient;
    let o1 = TestServer::start("o1").await;
    let o2 = TestServer::start("o2").await;
    o1.set_status(500);
    let mut cfg = config(vec![o1.url(), o2.url()], vec![]);
    cfg.breaker_failures = 1;
    let up = build(cfg);
    let base = o1.url();
    let callouts = Callouts::new(up.clone(), [base.as_str()]);
    let r = callouts.call(callout(&base, "POST", "/check")).await;
    let r = match r {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!((r.status, r.body.as_slice()), (200, &b"o2"[..]));
    assert_eq!((o1.requests(), o2.requests()), (1, 1));
    assert_eq!(origin_status(&up, 0).breaker, BreakerState::Open);
    // The origin's breaker is open: the next call goes straight to o2.
    assert!(callouts.call(callout(&base, "GET", "/check")).await.is_ok());
    assert_eq!((o1.requests(), o2.requests()), (1, 2));
}

#[tokio::test]
async fn callouts_to_other_hosts_have_their_own_breaker() {
    use compute::{CalloutClient, CalloutError};
    let origin = TestServer::start("origin").await;
    let svc = TestServer::start("svc").await;
    svc.set_status(503);
    let mut cfg = config(vec![origin.url()], vec![]);
    cfg.breaker_failures = 2;
    let up = build(cfg);
    let base = svc.url();
    let callouts = Callouts::new(up.clone(), [base.as_str()]);
    // A 5xx is still the answer the filter sees, and a failure for the breaker.
    for _ in 0..2 {
        match callouts.call(callout(&base, "GET", "/auth")).await {
            Ok(r) => assert_eq!(r.status, 503),
            Err(e) => panic!("{e}"),
        }
    }
    // Open: refused without a request; the origins are not asked instead.
    let r = callouts.call(callout(&base, "GET", "/auth")).await;
    assert!(
        matches!(r, Err(CalloutError::Failed(ref m)) if m.contains("breaker open")),
        "{r:?}"
    );
    assert_eq!(svc.requests(), 2);
    assert_eq!(origin.requests(), 0);
    // A request that cannot be made is the filter's error, not the upstream's.
    let r = callouts.call(callout(&base, "BAD METHOD", "/auth")).await;
    assert!(matches!(r, Err(CalloutError::BadRequest(_))), "{r:?}");
}
