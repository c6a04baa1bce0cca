//! The write API without sockets: every route behind the token, each action's effect on
//! the streams, strict and bounded JSON, and a randomized property check of the body
//! parser.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use rand::{Rng, SeedableRng};
use tower::ServiceExt;

use super::*;
use crate::config::{Limits, PackagingConfig};
use crate::live::{PublishError, StreamState, Streams};

const TOKEN: &str = "correct-horse-battery-staple";

struct Api {
    app: Router,
    streams: Arc<Streams>,
    _dir: tempfile::TempDir,
}

fn api() -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let streams = Arc::new(Streams::new(
        PackagingConfig::default(),
        Limits::default(),
        HashMap::from([("cam".to_string(), "configured-secret".to_string())]),
        false,
    ));
    let state = AppState {
        streams: streams.clone(),
        vod: None,
        signer: Arc::new(integrity::Signer::load_or_create(dir.path()).expect("signer")),
        hooks: crate::hooks::Hooks::new(crate::hooks::HookConfig::default()),
        recordings: Arc::new(crate::record::Recordings::open(
            crate::record::RecordConfig::default(),
            dir.path(),
            crate::hooks::Hooks::none(),
            None,
        )),
    };
    let app = routes(
        state,
        AdminToken::new(TOKEN).expect("token"),
        Features { p2p: true },
    );
    Api {
        app,
        streams,
        _dir: dir,
    }
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Body::from(body.unwrap_or_default().to_string()))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .expect("body");
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, v)
}

/// Every route of the write API, with a body it would accept.
const ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("POST", "/api/v1/streams/cam/kick", None),
    ("GET", "/api/v1/publish-keys", None),
    ("POST", "/api/v1/publish-keys", Some(r#"{"stream":"cam"}"#)),
    ("DELETE", "/api/v1/publish-keys/cam", None),
    ("DELETE", "/api/v1/publish-keys/cam/0123456789ab", None),
    ("GET", "/api/v1/streams/cam/p2p", None),
    (
        "PUT",
        "/api/v1/streams/cam/p2p",
        Some(r#"{"enabled":false}"#),
    ),
];

#[tokio::test]
async fn every_route_needs_the_token() {
    let a = api();
    for (method, path, body) in ROUTES {
        let m: Method = method.parse().expect("method");
        let (s, v) = call(&a.app, m.clone(), path, None, *body).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], "unauthorized", "{v}");
        let (s, v) = call(&a.app, m.clone(), path, Some("not-the-token-at-all"), *body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], "forbidden", "{v}");
        // A prefix of the token, and the token with a byte more, are wrong too.
        let (s, _) = call(&a.app, m.clone(), path, Some(&TOKEN[..10]), *body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}");
        let longer = format!("{TOKEN}x");
        let (s, _) = call(&a.app, m.clone(), path, Some(&longer), *body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}");
        let (s, v) = call(&a.app, m, path, Some(TOKEN), *body).await;
        assert!(
            s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN,
            "{method} {path}: {s} {v}"
        );
    }
    // Other schemes are no token.
    let req = Request::builder()
        .uri("/api/v1/publish-keys")
        .header(header::AUTHORIZATION, format!("Basic {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let res = a.app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
}

#[test]
fn weak_tokens_are_refused() {
    assert!(AdminToken::new("short").is_err());
    assert!(AdminToken::new("has a space in it, long enough").is_err());
    assert!(AdminToken::new(TOKEN).is_ok());
    assert!(!format!("{:?}", AdminToken::new(TOKEN).expect("token")).contains(TOKEN));
}

#[tokio::test]
async fn keys_are_added_listed_and_revoked() {
    let a = api();
    let t = Some(TOKEN);
    let (s, v) = call(
        &a.app,
        Method::POST,
        "/api/v1/publish-keys",
        t,
        Some(r#"{"stream":"news","key":"news-secret-0123456789"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    assert_eq!(v["key"], "news-secret-0123456789");
    // Generated when left out.
    let (s, v) = call(
        &a.app,
        Method::POST,
        "/api/v1/publish-keys",
        t,
        Some(r#"{"stream":"news"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let generated = v["key"].as_str().expect("key").to_string();
    assert!(a.streams.publish("news", Some(&generated)).is_ok());
    let (s, v) = call(&a.app, Method::GET, "/api/v1/publish-keys", t, None).await;
    assert_eq!(s, StatusCode::OK);
    let text = v.to_string();
    assert!(
        !text.contains("news-secret") && !text.contains(&generated),
        "{text}"
    );
    assert!(!text.contains("configured-secret"), "{text}");
    assert!(text.contains(&id), "{text}");
    // Revoke one, then the rest: the stream is locked, not opened.
    let (s, v) = call(
        &a.app,
        Method::DELETE,
        &format!("/api/v1/publish-keys/news/{id}"),
        t,
        None,
    )
    .await;
    assert_eq!((s, v["revoked"].as_u64()), (StatusCode::OK, Some(1)));
    assert!(!a
        .streams
        .keys()
        .allows("news", Some("news-secret-0123456789")));
    let (s, _) = call(&a.app, Method::DELETE, "/api/v1/publish-keys/cam", t, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        a.streams.publish("cam", Some("configured-secret")).err(),
        Some(PublishError::BadKey("cam".into()))
    );
    let (s, v) = call(&a.app, Method::DELETE, "/api/v1/publish-keys/cam", t, None).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_such_key"))
    );
    // Bad input answers with what was wrong.
    let (s, v) = call(
        &a.app,
        Method::POST,
        "/api/v1/publish-keys",
        t,
        Some(r#"{"stream":"../x"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("stream name"),
        "{v}"
    );
}

#[tokio::test]
async fn bodies_are_strict_and_bounded() {
    let a = api();
    let t = Some(TOKEN);
    let post =
        |body: &'static str| call(&a.app, Method::POST, "/api/v1/publish-keys", t, Some(body));
    let (s, v) = post(r#"{"stream":"cam","admin":true}"#).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown field"),
        "{v}"
    );
    for bad in ["", "{", "[]", r#"{"stream":1}"#, r#"{"key":"x"}"#, "null"] {
        let (s, v) = post(bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "bad_json", "{v}");
    }
    let big = format!(
        r#"{{"stream":"cam","key":"{}"}}"#,
        "a".repeat(MAX_BODY_BYTES)
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/publish-keys")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(big))
        .expect("request");
    let res = a.app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let req = Request::builder()
        .method(Method::PUT)
        .uri("/api/v1/streams/cam/p2p")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"enabled":false}"#))
        .expect("request");
    let res = a.app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn kick_ends_the_publish_and_p2p_switches() {
    let a = api();
    let t = Some(TOKEN);
    let (s, v) = call(&a.app, Method::POST, "/api/v1/streams/none/kick", t, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let p = a
        .streams
        .publish("cam", Some("configured-secret"))
        .expect("publish");
    let wake = Arc::new(tokio::sync::Notify::new());
    p.on_kick(wake.clone());
    let (s, v) = call(&a.app, Method::POST, "/api/v1/streams/cam/kick", t, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .expect("the connection is woken");
    assert!(p.kicked());
    drop(p);
    assert!(matches!(
        a.streams.get("cam").map(|c| c.state()),
        Some(StreamState::Ended(_))
    ));
    let (s, v) = call(&a.app, Method::POST, "/api/v1/streams/cam/kick", t, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    assert!(a.streams.p2p_enabled("cam"));
    let (s, v) = call(
        &a.app,
        Method::PUT,
        "/api/v1/streams/cam/p2p",
        t,
        Some(r#"{"enabled":false}"#),
    )
    .await;
    assert_eq!((s, &v["p2p"]), (StatusCode::OK, &serde_json::json!(false)));
    assert_eq!(a.streams.p2p_off(), vec!["cam".to_string()]);
    let (_, v) = call(&a.app, Method::GET, "/api/v1/streams/cam/p2p", t, None).await;
    assert_eq!(v["p2p"], false);
    let (s, _) = call(
        &a.app,
        Method::PUT,
        "/api/v1/streams/cam/p2p",
        t,
        Some(r#"{"enabled":true}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(a.streams.p2p_off().is_empty());
}

/// Property: for any JSON object over a few field names and value types, the parser
/// accepts it exactly when its fields are the known ones with the right types, and
/// then reads back what was sent; any byte string is answered without a panic.
#[test]
fn body_parsing_property() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let names = ["stream", "key", "enabled", "extra", "Stream"];
    for _ in 0..20_000 {
        let mut obj = serde_json::Map::new();
        for name in names {
            if rng.gen_bool(0.5) {
                let v = match rng.gen_range(0..5) {
                    0 => serde_json::json!(null),
                    1 => serde_json::json!(rng.gen_bool(0.5)),
                    2 => serde_json::json!(rng.gen_range(-5i64..5)),
                    3 => serde_json::json!(["a"]),
                    _ => serde_json::json!(format!("s{}", rng.gen_range(0..1000))),
                };
                obj.insert(name.to_string(), v);
            }
        }
        let text = serde_json::Value::Object(obj.clone()).to_string();
        let is_str = |k: &str| obj.get(k).is_some_and(|v| v.is_string());
        let only = |allowed: &[&str]| obj.keys().all(|k| allowed.contains(&k.as_str()));

        let add = parse_json::<AddKey>(text.as_bytes());
        let want_add = only(&["stream", "key"])
            && is_str("stream")
            && obj.get("key").is_none_or(|v| v.is_string() || v.is_null());
        assert_eq!(add.is_ok(), want_add, "{text}");
        if let Ok(a) = add {
            assert_eq!(Some(a.stream.as_str()), obj["stream"].as_str());
            assert_eq!(a.key.as_deref(), obj.get("key").and_then(|v| v.as_str()));
        }
        let p2p = parse_json::<SetP2p>(text.as_bytes());
        let want_p2p = only(&["enabled"]) && obj.get("enabled").is_some_and(|v| v.is_boolean());
        assert_eq!(p2p.is_ok(), want_p2p, "{text}");

        // Mangled bytes: an answer, never a panic.
        let mut bytes = text.into_bytes();
        if !bytes.is_empty() {
            let i = rng.gen_range(0..bytes.len());
            bytes[i] = rng.gen();
        }
        let _ = parse_json::<AddKey>(&bytes);
        let _ = parse_json::<SetP2p>(&bytes);
    }
}
