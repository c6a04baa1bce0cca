//! The Proxy-Wasm host against real modules: the SDK-built example filter (committed
//! fixture) and hostile WAT filters, run through `Filters` as the edge runs them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use compute::{
    Buffered, CalloutClient, CalloutError, CalloutFuture, CalloutRequest, CalloutResponse,
    FilterSpec, Filters, LoadError, RequestInput, Verdict,
};

/// A plain HTTP/1.1 call-out client for these tests (the edge brings its own, over
/// its upstreams): one connection per call, `connection: close`, status line only.
struct TestCallouts;

impl CalloutClient for TestCallouts {
    fn call<'a>(&'a self, r: CalloutRequest<'a>) -> CalloutFuture<'a> {
        Box::pin(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let fail = |e: std::io::Error| CalloutError::Failed(e.to_string());
            let authority = r.base.trim_start_matches("http://").trim_end_matches('/');
            let mut s = tokio::net::TcpStream::connect(authority)
                .await
                .map_err(fail)?;
            let mut head = format!("{} {} HTTP/1.1\r\nhost: {authority}\r\n", r.method, r.path);
            for (n, v) in r.headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str(&format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                r.body.len()
            ));
            s.write_all(head.as_bytes()).await.map_err(fail)?;
            s.write_all(r.body).await.map_err(fail)?;
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).await.map_err(fail)?;
            let text = String::from_utf8_lossy(&answer);
            let status = text
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| CalloutError::Failed("no status line".into()))?;
            Ok(CalloutResponse {
                status,
                headers: Vec::new(),
                body: Vec::new(),
            })
        })
    }
}

fn load(specs: Vec<FilterSpec>) -> Result<Arc<Filters>, LoadError> {
    Filters::load(specs, Arc::new(TestCallouts))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn input(path: &str, headers: &[(&str, &str)]) -> RequestInput {
    RequestInput {
        method: "GET".into(),
        path: path.into(),
        authority: "edge.test".into(),
        scheme: "http".into(),
        client: SocketAddr::from(([127, 0, 0, 1], 40000)),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        has_body: false,
    }
}

fn token_spec(config: &str) -> FilterSpec {
    let mut s = FilterSpec::new(fixture("token_check.wasm"));
    s.configuration = config.as_bytes().to_vec();
    s.reload_poll = None;
    s
}

const CONFIG: &str = r#"{"blocked":["/private/"],"protected":["/paid/"],"token":"s3cret",
  "header_name":"x-edge-filter","header_value":"token-check","auth_prefix":"/"}"#;

/// Runs one request through `filters` with a 200 response of `body`.
async fn run(
    filters: &Filters,
    req: RequestInput,
) -> (Verdict, u16, Vec<(String, String)>, Vec<(String, String)>) {
    let mut run = filters.begin(&req.path).expect("filters apply");
    let mut headers = compute::chain::pseudo_and(&req);
    let v = run.request_headers(&req, &mut headers).await;
    if v != Verdict::Continue {
        run.finish();
        return (v, 0, headers, vec![]);
    }
    let mut status = 200u16;
    let mut rh = vec![
        ("content-type".to_string(), "video/mp4".to_string()),
        ("server".to_string(), "origin".to_string()),
    ];
    let v = run.response(&mut status, &mut rh, None).await;
    run.finish();
    (v, status, headers, rh)
}

fn get<'a>(h: &'a [(String, String)], n: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn sdk_filter_blocks_checks_tokens_and_rewrites_headers() {
    let filters = load(vec![token_spec(CONFIG)]).expect("load");
    // Blocked path: a local 403 from the filter.
    let (v, ..) = run(&filters, input("/private/a.m4s", &[])).await;
    match v {
        Verdict::Respond(r) => {
            assert_eq!(r.status, 403);
            assert_eq!(r.body, b"blocked at the edge\n");
            assert!(r
                .headers
                .contains(&("x-blocked-by".into(), "token-check".into())));
        }
        other => panic!("expected a local response, got {other:?}"),
    }
    // Protected without and with the token.
    let (v, ..) = run(&filters, input("/paid/seg1.m4s", &[("x-token", "nope")])).await;
    assert!(
        matches!(v, Verdict::Respond(ref r) if r.status == 401),
        "{v:?}"
    );
    let (v, _, req_headers, _) =
        run(&filters, input("/paid/seg1.m4s", &[("x-token", "s3cret")])).await;
    assert_eq!(v, Verdict::Continue);
    assert_eq!(
        get(&req_headers, "x-token"),
        None,
        "token stripped on the way in"
    );
    // Others: response header added, server removed, path property, counter in shared data.
    let (v, status, _, rh) = run(&filters, input("/live/cam/seg9.m4s?x=1", &[])).await;
    assert_eq!(v, Verdict::Continue);
    assert_eq!(status, 200);
    assert_eq!(get(&rh, "x-edge-filter"), Some("token-check"));
    assert_eq!(get(&rh, "x-filter-path"), Some("/live/cam/seg9.m4s"));
    assert_eq!(get(&rh, "server"), None);
    let n1: u64 = get(&rh, "x-filter-count")
        .expect("count")
        .parse()
        .expect("number");
    let (_, _, _, rh) = run(&filters, input("/live/cam/seg10.m4s", &[])).await;
    let n2: u64 = get(&rh, "x-filter-count")
        .expect("count")
        .parse()
        .expect("number");
    assert_eq!(n2, n1 + 1, "shared data counts across requests");
    // Instances are reused, not made per request.
    assert_eq!(filters.plugins[0].idle_instances(), 1);
}

/// A one-route HTTP server for call-outs: `/alice` answers 200, anything else 404.
async fn auth_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let ok = head.starts_with("GET /alice ");
                let status = if ok { "200 OK" } else { "404 Not Found" };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn sdk_filter_http_call_out() {
    let (addr, server) = auth_server().await;
    let mut spec = token_spec(CONFIG);
    spec.upstreams = HashMap::from([("auth".to_string(), format!("http://{addr}"))]);
    let filters = load(vec![spec]).expect("load");
    let (v, ..) = run(&filters, input("/live/a.m4s", &[("x-auth", "alice")])).await;
    assert_eq!(v, Verdict::Continue, "auth said 200");
    let (v, ..) = run(&filters, input("/live/a.m4s", &[("x-auth", "mallory")])).await;
    assert!(
        matches!(v, Verdict::Respond(ref r) if r.status == 403),
        "{v:?}"
    );
    server.abort();
    // Upstream not configured for the filter: the call is refused, filter answers 503.
    let filters = load(vec![token_spec(CONFIG)]).expect("load");
    let (v, ..) = run(&filters, input("/live/a.m4s", &[("x-auth", "alice")])).await;
    assert!(
        matches!(v, Verdict::Respond(ref r) if r.status == 503),
        "{v:?}"
    );
}

fn hostile(name: &str, prefix: &str, fail_open: bool) -> FilterSpec {
    let mut s = FilterSpec::new(fixture(&format!("{name}.wat")));
    s.path_prefix = Some(prefix.into());
    s.fail_open = fail_open;
    s.reload_poll = None;
    s.limits.memory_bytes = 4 << 20;
    s.limits.callback_deadline = Duration::from_millis(20);
    s
}

#[tokio::test]
async fn hostile_filters_fail_only_their_own_requests() {
    let filters = load(vec![
        hostile("loop", "/loop/", false),
        hostile("grow", "/grow/", false),
        hostile("badptr", "/bad/", false),
        hostile("trap", "/trap/", false),
        hostile("trap", "/open/", true),
        hostile("pass", "/", false),
    ])
    .expect("load");
    for (path, why) in [
        ("/loop/x", "deadline"),
        ("/grow/x", "memory"),
        ("/bad/x", "bad pointer"),
        ("/trap/x", "trapped"),
    ] {
        let (v, ..) = run(&filters, input(path, &[])).await;
        match v {
            Verdict::Respond(r) => {
                assert_eq!(r.status, 500, "{path}");
                let body = String::from_utf8_lossy(&r.body);
                assert!(body.contains(why), "{path}: {body}");
            }
            other => panic!("{path}: expected 500, got {other:?}"),
        }
        // The well-behaved filter still serves other paths.
        let (v, status, _, rh) = run(&filters, input("/fine/x", &[])).await;
        assert_eq!((v, status), (Verdict::Continue, 200));
        assert_eq!(get(&rh, "x-hostile"), Some("yes"));
    }
    // Fail-open: the trapping filter is skipped, the request goes on.
    let (v, status, _, rh) = run(&filters, input("/open/x", &[])).await;
    assert_eq!((v, status), (Verdict::Continue, 200));
    assert_eq!(get(&rh, "x-hostile"), Some("yes"));
}

#[tokio::test(start_paused = true)]
async fn crash_loop_quarantines_then_recovers() {
    let mut spec = hostile("trap", "/", false);
    spec.limits.crash_threshold = 3;
    spec.limits.crash_window = Duration::from_secs(30);
    let filters = load(vec![spec]).expect("load");
    for _ in 0..3 {
        let (v, ..) = run(&filters, input("/x", &[])).await;
        assert!(
            matches!(v, Verdict::Respond(ref r) if String::from_utf8_lossy(&r.body).contains("trapped"))
        );
    }
    let (v, ..) = run(&filters, input("/x", &[])).await;
    match v {
        Verdict::Respond(r) => assert!(
            String::from_utf8_lossy(&r.body).contains("quarantined"),
            "{r:?}"
        ),
        other => panic!("{other:?}"),
    }
    // After the 1 s back-off (on tokio's paused clock) the filter is tried again (and
    // traps again).
    tokio::time::advance(Duration::from_millis(999)).await;
    let (v, ..) = run(&filters, input("/x", &[])).await;
    assert!(
        matches!(v, Verdict::Respond(ref r) if String::from_utf8_lossy(&r.body).contains("quarantined")),
        "{v:?}"
    );
    tokio::time::advance(Duration::from_millis(2)).await;
    let (v, ..) = run(&filters, input("/x", &[])).await;
    assert!(
        matches!(v, Verdict::Respond(ref r) if String::from_utf8_lossy(&r.body).contains("trapped")),
        "{v:?}"
    );
}

#[tokio::test]
async fn hot_reload_swaps_generations_and_keeps_old_on_bad_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.wasm");
    std::fs::copy(fixture("pass.wat"), &path).expect("copy");
    let mut spec = FilterSpec::new(path.clone());
    spec.reload_poll = None;
    let filters = load(vec![spec]).expect("load");
    let p = filters.plugins[0].clone();
    // A request holds an instance across the reload.
    let req = input("/a", &[]);
    let mut inflight = filters.begin("/a").expect("run");
    let mut h = compute::chain::pseudo_and(&req);
    assert_eq!(
        inflight.request_headers(&req, &mut h).await,
        Verdict::Continue
    );
    // New file: the SDK filter.
    std::fs::copy(fixture("token_check.wasm"), &path).expect("copy");
    assert!(
        p.reload_if_changed().expect("reload"),
        "changed file reloads"
    );
    assert_eq!(p.generation(), 2);
    let (_, _, _, rh) = run(&filters, input("/b", &[])).await;
    assert!(
        get(&rh, "x-filter-path").is_some(),
        "new generation serves: {rh:?}"
    );
    // The in-flight request finishes on its old instance.
    let (mut st, mut rh) = (200, vec![]);
    assert_eq!(
        inflight.response(&mut st, &mut rh, None).await,
        Verdict::Continue
    );
    assert_eq!(get(&rh, "x-hostile"), Some("yes"));
    inflight.finish();
    // A broken file is refused; generation 2 keeps serving.
    std::fs::write(&path, b"not wasm at all").expect("write");
    assert!(p.reload_if_changed().is_err());
    assert!(!p
        .reload_if_changed()
        .expect("same broken file is not retried"));
    assert_eq!(p.generation(), 2);
    let (v, ..) = run(&filters, input("/c", &[])).await;
    assert_eq!(v, Verdict::Continue);
}

#[tokio::test]
async fn response_body_rewrite_when_enabled() {
    // The pass filter never touches bodies: body stays as is, callbacks run.
    let mut spec = hostile("pass", "/", false);
    spec.body = true;
    let filters = load(vec![spec]).expect("load");
    let req = input("/a", &[]);
    let mut run = filters.begin("/a").expect("run");
    let mut h = compute::chain::pseudo_and(&req);
    assert_eq!(run.request_headers(&req, &mut h).await, Verdict::Continue);
    assert!(run.wants_body());
    let mut body = Buffered {
        body: b"hello".to_vec(),
        trailers: vec![],
    };
    let (mut st, mut rh) = (200, vec![]);
    assert_eq!(
        run.response(&mut st, &mut rh, Some(&mut body)).await,
        Verdict::Continue
    );
    assert_eq!(body.body, b"hello");
    run.finish();
}

fn pairs(h: &[(&str, &str)]) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// A POST to the SDK filter's beacon path: request body, then request trailers,
/// read by the filter, which answers itself.
async fn beacon(body_spec: bool, msg: Buffered) -> Verdict {
    let mut spec = token_spec(r#"{"beacon":"/beacon"}"#);
    spec.body = body_spec;
    let filters = load(vec![spec]).expect("load");
    let mut req = input("/beacon", &[("content-type", "application/json")]);
    req.method = "POST".into();
    req.has_body = true;
    let mut run = filters.begin("/beacon").expect("run");
    let mut h = compute::chain::pseudo_and(&req);
    let mut v = run.request_headers(&req, &mut h).await;
    if v == Verdict::Continue {
        let mut msg = msg;
        v = run.request_body(&mut msg).await;
    }
    run.finish();
    v
}

fn body_of(v: &Verdict) -> String {
    match v {
        Verdict::Respond(l) => String::from_utf8_lossy(&l.body).into_owned(),
        Verdict::Continue => "(continue)".into(),
    }
}

#[tokio::test]
async fn sdk_filter_reads_request_bodies_and_trailers() {
    let with_trailers = Buffered {
        body: vec![7u8; 1000],
        trailers: pairs(&[("x-checksum", "abc123"), ("x-count", "2")]),
    };
    let v = beacon(true, with_trailers).await;
    assert_eq!(
        body_of(&v),
        "{\"bytes\":1000,\"trailers\":2,\"checksum\":\"abc123\"}\n"
    );
    // No trailers: the body callback ends the stream and the filter answers there.
    let plain = Buffered {
        body: b"hello".to_vec(),
        trailers: vec![],
    };
    let v = beacon(true, plain).await;
    assert_eq!(
        body_of(&v),
        "{\"bytes\":5,\"trailers\":0,\"checksum\":\"\"}\n"
    );
    // A filter that does not take bodies sees end_of_stream on the headers.
    let v = beacon(false, Buffered::default()).await;
    assert_eq!(
        body_of(&v),
        "{\"bytes\":0,\"trailers\":0,\"checksum\":\"\"}\n"
    );
}

#[tokio::test]
async fn sdk_filter_adds_response_trailers() {
    let mut spec = token_spec(r#"{"trailer_tag":"seen"}"#);
    spec.body = true;
    let filters = load(vec![spec]).expect("load");
    let req = input("/vod/a.mp4", &[]);
    let mut run = filters.begin(&req.path).expect("run");
    let mut h = compute::chain::pseudo_and(&req);
    assert_eq!(run.request_headers(&req, &mut h).await, Verdict::Continue);
    let mut msg = Buffered {
        body: b"payload".to_vec(),
        trailers: pairs(&[("grpc-status", "0")]),
    };
    let (mut st, mut rh) = (200, vec![]);
    assert_eq!(
        run.response(&mut st, &mut rh, Some(&mut msg)).await,
        Verdict::Continue
    );
    run.finish();
    assert_eq!(msg.body, b"payload");
    assert_eq!(
        msg.trailers,
        pairs(&[("grpc-status", "0"), ("x-filter-trailer", "seen")])
    );
    // Without trailers the trailer callback is not run and none appear.
    let mut run = filters.begin(&req.path).expect("run");
    let mut h = compute::chain::pseudo_and(&req);
    assert_eq!(run.request_headers(&req, &mut h).await, Verdict::Continue);
    let mut msg = Buffered {
        body: b"payload".to_vec(),
        trailers: vec![],
    };
    run.response(&mut st, &mut rh, Some(&mut msg)).await;
    run.finish();
    assert!(msg.trailers.is_empty());
}

#[test]
fn non_proxy_wasm_modules_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plain.wat");
    std::fs::write(&path, "(module (func (export \"f\")))").expect("write");
    let err = load(vec![FilterSpec::new(path)]).expect_err("refused");
    assert!(err.to_string().contains("proxy_on_context_create"), "{err}");
    let err = load(vec![FilterSpec::new(dir.path().join("missing.wasm"))]).expect_err("refused");
    assert!(err.to_string().contains("cannot read"), "{err}");
}
