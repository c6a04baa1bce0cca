//! Webhooks: HTTP POSTs with JSON bodies shaped like SRS's HTTP callbacks, so backends
//! written for SRS work unchanged. `on_publish` decides whether a publish (RTMP or
//! SRT: every ingest protocol goes through [`Hooks::on_publish`]) may start;
//! `on_unpublish` tells that it ended (only after an `on_publish` that allowed it).
//!
//! The decision part is sans-IO: [`body`] builds an event's JSON and [`judge`] reads
//! an answer; [`Hooks`] is the thin async caller around them. A call runs on the task
//! of the connection it concerns, under a strict timeout, so a hanging hook delays
//! only its own publish or viewer; notifications (`on_unpublish`, `on_stop`) run on
//! tasks of their own and are retried.
//!
//! Answers: a 2xx status whose body is empty, `0`, or a JSON object without `code` or
//! with `"code": 0` allows; a 2xx with another code, or a 3xx/4xx status, refuses (3xx
//! redirects are not followed). A 5xx status, a timeout, a refused connection, a body
//! over [`MAX_ANSWER_BYTES`] or one that is not JSON means the hook is down: the
//! publish is then refused (fail-closed, the default: a hook that authorizes must not
//! let everybody in while it is down) or allowed (`--hook-fail-open`).
//!
//! `param` is sent as the publisher gave it (`?key=…`), as SRS does: backends check
//! keys with it. It is never logged; hook URLs are logged without their query.
//!
//! Viewers: `on_play` is per viewer session, not per request. A request for a live
//! stream's multivariant playlist (`index.m3u8`) or MPD (`index.mpd`) without a known
//! `session` query parameter opens a session: `on_play` is asked (a refusal answers
//! 403), and the viewer gets the session id in its URLs: the multivariant playlist's
//! variant URIs carry `?session=ID`, and an MPD request is redirected (302) to
//! `index.mpd?session=ID` (players reload the MPD from there). Every request that
//! carries the id keeps the session alive; after `--hook-play-idle` seconds without
//! one, the session ends and `on_stop` is sent. The id is 128 random bits (it is the
//! viewer's pass past `on_play`), sent to the hooks as `client_id`, never logged.
//! Sessions are counted at the origin: viewers behind an edge cache share the edge's
//! playlist fetches, so per-viewer sessions there need the edge (not built yet).
//!
//! `on_record_done` tells that a recording finished and plays as VOD (see the README's
//! "Recording"); it is a notification, retried like `on_unpublish`. What is recorded
//! and when is `record`'s business, not this module's.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

/// Largest hook answer read; a larger one counts as the hook being down.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// SRS's name of the only virtual host.
pub const DEFAULT_VHOST: &str = "__defaultVhost__";

/// Which hooks to call and how.
#[derive(Clone, Debug)]
pub struct HookConfig {
    /// URL POSTed when a publish starts; its answer decides.
    pub on_publish: Option<String>,
    /// URL POSTed when an allowed publish ends.
    pub on_unpublish: Option<String>,
    /// Time for one call: connect, request, answer.
    pub timeout: Duration,
    /// Further attempts of a failed notification (`on_unpublish`), a second apart.
    pub retries: u32,
    /// Allow publishes (and plays) while the `on_publish` (`on_play`) hook is down.
    pub fail_open: bool,
    /// URL POSTed when a viewer session starts; its answer decides.
    pub on_play: Option<String>,
    /// URL POSTed when a viewer session ends.
    pub on_stop: Option<String>,
    /// URL POSTed when a recording finished (it plays as VOD from then on).
    pub on_record_done: Option<String>,
    /// A viewer session without a request for this long has ended.
    pub play_idle: Duration,
    /// Viewer sessions at once; more are answered 503.
    pub max_sessions: usize,
}

impl Default for HookConfig {
    fn default() -> Self {
        Self {
            on_publish: None,
            on_unpublish: None,
            timeout: Duration::from_secs(3),
            retries: 2,
            fail_open: false,
            on_play: None,
            on_stop: None,
            on_record_done: None,
            play_idle: Duration::from_secs(30),
            max_sessions: 100_000,
        }
    }
}

/// The events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    OnPublish,
    OnUnpublish,
    OnPlay,
    OnStop,
    OnRecordDone,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::OnPublish => "on_publish",
            Action::OnUnpublish => "on_unpublish",
            Action::OnPlay => "on_play",
            Action::OnStop => "on_stop",
            Action::OnRecordDone => "on_record_done",
        }
    }
}

/// One publish as the hooks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishInfo {
    /// Id of the ingest connection (random, 8 hex digits).
    pub client_id: String,
    /// Publisher's address.
    pub ip: String,
    /// Application: always `live`.
    pub app: String,
    /// `rtmp://HOST:PORT/live` as the publisher sent it, `srt://HOST:PORT/live`, or
    /// `http://HOST:PORT/whip` (the request's `Host`) for WHIP.
    pub tc_url: String,
    /// Stream name (after an OBS-style key is mapped to its stream).
    pub stream: String,
    /// Query of the publish as given (`?key=…`), or empty.
    pub param: String,
    /// `rtmp`, `srt` or `whip`.
    pub protocol: &'static str,
}

impl PublishInfo {
    /// A random client id.
    pub fn new_client_id() -> String {
        format!("{:08x}", rand::random::<u32>())
    }
}

/// Identity of this server in every body.
#[derive(Debug, Clone)]
pub struct ServerIds {
    /// Stable for the process: `server_id`.
    pub server_id: String,
    /// Random per start: `service_id`.
    pub service_id: String,
}

impl ServerIds {
    pub fn random() -> Self {
        Self {
            server_id: format!("mediamesh-{:08x}", rand::random::<u32>()),
            service_id: format!("{:08x}", rand::random::<u32>()),
        }
    }
}

/// The JSON body of a publish event (see the README's "Webhooks" for each field).
pub fn body(ids: &ServerIds, action: Action, p: &PublishInfo) -> Value {
    json!({
        "server_id": ids.server_id,
        "service_id": ids.service_id,
        "action": action.as_str(),
        "client_id": p.client_id,
        "ip": p.ip,
        "vhost": DEFAULT_VHOST,
        "app": p.app,
        "tcUrl": p.tc_url,
        "stream": p.stream,
        "param": p.param,
        "stream_url": format!("/{}/{}", p.app, p.stream),
        "stream_id": stream_id(ids, &p.stream),
        "protocol": p.protocol,
    })
}

/// One viewer session as the hooks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayInfo {
    /// The session id (32 hex digits).
    pub client_id: String,
    /// Viewer's address.
    pub ip: String,
    /// `http://HOST/live` (HOST as the viewer asked).
    pub tc_url: String,
    pub stream: String,
    /// Query of the first request, `session` left out (`?token=…`), or empty.
    pub param: String,
    /// The `Referer` of the first request, or empty.
    pub page_url: String,
    /// `hls` or `dash`.
    pub protocol: &'static str,
}

impl PlayInfo {
    /// A new random session id.
    pub fn new_session_id() -> String {
        format!("{:032x}", rand::random::<u128>())
    }
}

/// The JSON body of a viewer event (see the README's "Webhooks" for each field).
pub fn play_body(ids: &ServerIds, action: Action, p: &PlayInfo) -> Value {
    json!({
        "server_id": ids.server_id,
        "service_id": ids.service_id,
        "action": action.as_str(),
        "client_id": p.client_id,
        "ip": p.ip,
        "vhost": DEFAULT_VHOST,
        "app": "live",
        "tcUrl": p.tc_url,
        "stream": p.stream,
        "param": p.param,
        "pageUrl": p.page_url,
        "stream_url": format!("/live/{}", p.stream),
        "stream_id": stream_id(ids, &p.stream),
        "protocol": p.protocol,
    })
}

/// The JSON body of `on_record_done`: the fields every event has that a recording
/// knows (a recording can span several publisher connections, so it names none:
/// no `client_id`, `ip`, `tcUrl` or `param`), then the recording's own fields
/// (`recording` is its listing in `GET /api/v1/recordings` plus `dir`).
pub fn record_body(ids: &ServerIds, stream: &str, recording: Value) -> Value {
    let mut body = json!({
        "server_id": ids.server_id,
        "service_id": ids.service_id,
        "action": Action::OnRecordDone.as_str(),
        "vhost": DEFAULT_VHOST,
        "app": "live",
        "stream": stream,
        "stream_url": format!("/live/{stream}"),
        "stream_id": stream_id(ids, stream),
    });
    if let (Some(b), Value::Object(r)) = (body.as_object_mut(), recording) {
        for (k, v) in r {
            if k != "stream" {
                b.insert(k, v);
            }
        }
    }
    body
}

/// Adds `session=ID` to every URI of a multivariant playlist (variant lines and
/// `URI="…"` attributes).
pub fn with_session(playlist: &str, id: &str) -> String {
    let add = |uri: &str| {
        let sep = if uri.contains('?') { '&' } else { '?' };
        format!("{uri}{sep}session={id}")
    };
    let mut out = String::with_capacity(playlist.len() + 64);
    for line in playlist.lines() {
        if line.is_empty() {
        } else if !line.starts_with('#') {
            out.push_str(&add(line));
        } else if let Some(start) = line.find("URI=\"") {
            let from = start + 5;
            match line[from..].find('"') {
                Some(len) => {
                    out.push_str(&line[..from]);
                    out.push_str(&add(&line[from..from + len]));
                    out.push_str(&line[from + len..]);
                }
                None => out.push_str(line),
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Open viewer sessions; time is an input (sans-IO).
#[derive(Debug, Default)]
pub struct Sessions {
    open: std::collections::HashMap<String, (PlayInfo, std::time::Instant)>,
}

impl Sessions {
    /// Opens a session; false when `max` are open already.
    pub fn open(&mut self, info: PlayInfo, now: std::time::Instant, max: usize) -> bool {
        if self.open.len() >= max {
            return false;
        }
        self.open.insert(info.client_id.clone(), (info, now));
        true
    }

    /// Notes a request of session `id` for `stream`; false if no such session.
    pub fn touch(&mut self, id: &str, stream: &str, now: std::time::Instant) -> bool {
        match self.open.get_mut(id) {
            Some((info, last)) if info.stream == stream => {
                *last = now;
                true
            }
            _ => false,
        }
    }

    /// Ends the sessions idle for `idle` or longer.
    pub fn expire(&mut self, now: std::time::Instant, idle: Duration) -> Vec<PlayInfo> {
        let mut ended = Vec::new();
        self.open.retain(|_, (info, last)| {
            if now.duration_since(*last) >= idle {
                ended.push(info.clone());
                false
            } else {
                true
            }
        });
        ended
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// SRS's `stream_id`: an id of the stream on this server, the same in every event of
/// the stream while the process runs.
fn stream_id(ids: &ServerIds, stream: &str) -> String {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let h = BuildHasherDefault::<DefaultHasher>::default().hash_one((&ids.service_id, stream));
    format!("vid-{:08x}", h as u32)
}

/// What an answer (or its absence) means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// The hook answered no; why, for the log.
    Refuse(String),
    /// The hook is down or broken; why, for the log.
    Down(String),
}

/// Reads a hook's answer: HTTP status and body (at most [`MAX_ANSWER_BYTES`]).
pub fn judge(status: u16, body: &[u8]) -> Verdict {
    match status {
        200..=299 => {}
        500..=599 => return Verdict::Down(format!("HTTP status {status}")),
        _ => return Verdict::Refuse(format!("HTTP status {status}")),
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t.trim(),
        Err(_) => return Verdict::Down("answer is not UTF-8".into()),
    };
    if text.is_empty() {
        return Verdict::Allow;
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return Verdict::Down("answer is neither a number nor JSON".into()),
    };
    let code = match &value {
        Value::Number(n) => Some(n.clone()),
        Value::Object(o) => match o.get("code") {
            None => return Verdict::Allow,
            Some(Value::Number(n)) => Some(n.clone()),
            Some(_) => None,
        },
        _ => None,
    };
    match code {
        Some(n) if n.as_i64() == Some(0) => Verdict::Allow,
        Some(n) => Verdict::Refuse(format!("code {n}")),
        None => Verdict::Down("answer has no numeric code".into()),
    }
}

/// A hook URL for the log: scheme, host and path, no query (it may hold a token).
pub fn loggable(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

/// Why a hook URL is not usable.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(
            "only http:// hooks are supported (put a TLS proxy on the backend side for https)"
                .into(),
        );
    }
    if parsed.host_str().is_none() {
        return Err("no host".into());
    }
    Ok(())
}

/// Why a publish was refused by its hook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookRefusal {
    #[error("the {0} hook refused ({1})")]
    Refused(&'static str, String),
    #[error("the {0} hook is down ({1}) and hooks fail closed")]
    Down(&'static str, String),
    #[error("too many viewer sessions (limit {0})")]
    TooManySessions(usize),
}

/// The hook caller. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Hooks {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: HookConfig,
    ids: ServerIds,
    client: Option<reqwest::Client>,
    sessions: parking_lot::Mutex<Sessions>,
}

impl Hooks {
    pub fn new(config: HookConfig) -> Self {
        let any = config.on_publish.is_some()
            || config.on_unpublish.is_some()
            || config.on_play.is_some()
            || config.on_stop.is_some()
            || config.on_record_done.is_some();
        let client = any
            .then(|| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout)
                    // Calls are rare and come from two runtimes (ingest and HTTP):
                    // keep no connection that one runtime's driver owns.
                    .pool_max_idle_per_host(0)
                    .build()
            })
            .and_then(|r| match r {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the webhook HTTP client");
                    None
                }
            });
        Self {
            inner: Arc::new(Inner {
                config,
                ids: ServerIds::random(),
                client,
                sessions: parking_lot::Mutex::new(Sessions::default()),
            }),
        }
    }

    /// No hooks at all.
    pub fn none() -> Self {
        Self::new(HookConfig::default())
    }

    pub fn ids(&self) -> &ServerIds {
        &self.inner.ids
    }

    /// Asks `on_publish` (if configured) whether `p` may publish. Takes at most the
    /// hook timeout.
    pub async fn on_publish(&self, p: &PublishInfo) -> Result<(), HookRefusal> {
        let Some(url) = self.inner.config.on_publish.as_deref() else {
            return Ok(());
        };
        let body = body(&self.inner.ids, Action::OnPublish, p);
        self.decide(Action::OnPublish, url, &body, &p.stream).await
    }

    async fn decide(
        &self,
        action: Action,
        url: &str,
        body: &Value,
        stream: &str,
    ) -> Result<(), HookRefusal> {
        let event = action.as_str();
        match self.call(action, url, body).await {
            Verdict::Allow => Ok(()),
            Verdict::Refuse(why) => Err(HookRefusal::Refused(event, why)),
            Verdict::Down(why) => {
                if self.inner.config.fail_open {
                    tracing::warn!(hook = event, stream = %stream, "webhook down: allowed anyway (--hook-fail-open)");
                    Ok(())
                } else {
                    Err(HookRefusal::Down(event, why))
                }
            }
        }
    }

    /// Whether viewer sessions are kept (`on_play` or `on_stop` configured).
    pub fn plays(&self) -> bool {
        self.inner.config.on_play.is_some() || self.inner.config.on_stop.is_some()
    }

    /// Notes a request of session `id` for `stream`; false if it is not open.
    pub fn touch_session(&self, id: &str, stream: &str) -> bool {
        self.inner
            .sessions
            .lock()
            .touch(id, stream, std::time::Instant::now())
    }

    /// Asks `on_play` (if configured) about a new viewer session and opens it.
    pub async fn start_session(&self, p: PlayInfo) -> Result<(), HookRefusal> {
        let max = self.inner.config.max_sessions;
        if self.inner.sessions.lock().len() >= max {
            return Err(HookRefusal::TooManySessions(max));
        }
        if let Some(url) = self.inner.config.on_play.as_deref() {
            let body = play_body(&self.inner.ids, Action::OnPlay, &p);
            self.decide(Action::OnPlay, url, &body, &p.stream).await?;
        }
        let opened = self
            .inner
            .sessions
            .lock()
            .open(p.clone(), std::time::Instant::now(), max);
        if !opened {
            // Allowed by on_play, so the backend hears that it is over.
            self.on_stop(&p);
            return Err(HookRefusal::TooManySessions(max));
        }
        metrics::gauge!("mediamesh_hook_play_sessions")
            .set(self.inner.sessions.lock().len() as f64);
        Ok(())
    }

    /// Ends idle viewer sessions (`on_stop` for each). Call about once a second.
    pub fn reap_sessions(&self) {
        if !self.plays() {
            return;
        }
        let ended = {
            let mut s = self.inner.sessions.lock();
            let ended = s.expire(std::time::Instant::now(), self.inner.config.play_idle);
            metrics::gauge!("mediamesh_hook_play_sessions").set(s.len() as f64);
            ended
        };
        for p in &ended {
            self.on_stop(p);
        }
    }

    fn on_stop(&self, p: &PlayInfo) {
        let Some(url) = self.inner.config.on_stop.clone() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let body = play_body(&self.inner.ids, Action::OnStop, p);
        let this = self.clone();
        rt.spawn(async move {
            this.notify(Action::OnStop, &url, &body).await;
        });
    }

    /// Tells `on_unpublish` (if configured) that `p` stopped publishing, on a task of
    /// its own (retried); returns at once.
    pub fn on_unpublish(&self, p: &PublishInfo) {
        let Some(url) = self.inner.config.on_unpublish.clone() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let body = body(&self.inner.ids, Action::OnUnpublish, p);
        let this = self.clone();
        rt.spawn(async move {
            this.notify(Action::OnUnpublish, &url, &body).await;
        });
    }

    /// Tells `on_record_done` (if configured) that a recording of `stream` finished,
    /// on a task of its own (retried); returns at once. `recording`: see
    /// [`record_body`].
    pub fn on_record_done(&self, stream: &str, recording: Value) {
        let Some(url) = self.inner.config.on_record_done.clone() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let body = record_body(&self.inner.ids, stream, recording);
        let this = self.clone();
        rt.spawn(async move {
            this.notify(Action::OnRecordDone, &url, &body).await;
        });
    }

    /// Whether publishes are asked first.
    pub fn asks_on_publish(&self) -> bool {
        self.inner.config.on_publish.is_some()
    }

    /// A guard that sends `on_unpublish` for `p` when dropped (the publish ended,
    /// however it ended).
    pub fn published(&self, p: PublishInfo) -> PublishGuard {
        PublishGuard {
            hooks: self.clone(),
            info: p,
        }
    }

    async fn notify(&self, action: Action, url: &str, body: &Value) {
        let attempts = self.inner.config.retries.saturating_add(1);
        for attempt in 1..=attempts {
            match self.call(action, url, body).await {
                Verdict::Down(_) if attempt < attempts => {
                    metrics::counter!("mediamesh_hook_retries_total", "event" => action.as_str())
                        .increment(1);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ => return,
            }
        }
    }

    /// One call: POST, bounded answer, verdict; counts and logs a hook that is down.
    async fn call(&self, action: Action, url: &str, body: &Value) -> Verdict {
        let event = action.as_str();
        let verdict = match &self.inner.client {
            None => Verdict::Down("no HTTP client".into()),
            Some(client) => {
                let limit = self.inner.config.timeout;
                match tokio::time::timeout(limit, post(client, url, body)).await {
                    Ok(v) => v,
                    Err(_) => Verdict::Down(format!("no answer within {limit:?} (--hook-timeout)")),
                }
            }
        };
        let result = match &verdict {
            Verdict::Allow => "allow",
            Verdict::Refuse(_) => "refuse",
            Verdict::Down(_) => "down",
        };
        metrics::counter!("mediamesh_hook_calls_total", "event" => event, "result" => result)
            .increment(1);
        match &verdict {
            Verdict::Down(why) => {
                metrics::gauge!("mediamesh_hook_up", "event" => event).set(0.0);
                tracing::warn!(
                    hook = event,
                    url = loggable(url),
                    error = %why,
                    "webhook down: check the hook's backend"
                );
            }
            _ => {
                metrics::gauge!("mediamesh_hook_up", "event" => event).set(1.0);
            }
        }
        verdict
    }
}

/// Held while a publish runs; sends `on_unpublish` when dropped.
#[derive(Debug)]
pub struct PublishGuard {
    hooks: Hooks,
    info: PublishInfo,
}

impl Drop for PublishGuard {
    fn drop(&mut self) {
        self.hooks.on_unpublish(&self.info);
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Verdict {
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(e) => return Verdict::Down(format!("cannot encode the body: {e}")),
    };
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => return Verdict::Down(describe(&e)),
    };
    let status = response.status().as_u16();
    let mut answer: Vec<u8> = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Verdict::Down(format!("answer larger than {MAX_ANSWER_BYTES} bytes"));
                }
                answer.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Verdict::Down(describe(&e)),
        }
    }
    judge(status, &answer)
}

/// A reqwest error without the URL (its query may hold a token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "bad answer body"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(s) => format!("{kind}: {s}"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> PublishInfo {
        PublishInfo {
            client_id: "0000abcd".into(),
            ip: "127.0.0.1".into(),
            app: "live".into(),
            tc_url: "rtmp://127.0.0.1:1935/live".into(),
            stream: "cam".into(),
            param: "?key=s3cret".into(),
            protocol: "rtmp",
        }
    }

    #[test]
    fn record_body_has_the_srs_fields_a_recording_knows_then_its_own() {
        let ids = ServerIds {
            server_id: "mediamesh-1".into(),
            service_id: "abc".into(),
        };
        let b = record_body(
            &ids,
            "cam",
            json!({"name": "cam-1", "stream": "other", "bytes": 10, "url": "/vod/recordings/cam-1/index.m3u8"}),
        );
        assert_eq!(b["action"], "on_record_done");
        assert_eq!(b["stream"], "cam", "the event's stream wins");
        assert_eq!(b["vhost"], DEFAULT_VHOST);
        assert_eq!(b["app"], "live");
        assert_eq!(b["stream_url"], "/live/cam");
        assert_eq!(
            b["stream_id"],
            body(&ids, Action::OnPublish, &info())["stream_id"]
        );
        assert_eq!(b["name"], "cam-1");
        assert_eq!(b["bytes"], 10);
        assert!(b.get("client_id").is_none() && b.get("param").is_none());
    }

    #[test]
    fn publish_body_has_every_srs_field() {
        let ids = ServerIds {
            server_id: "mediamesh-1".into(),
            service_id: "abc".into(),
        };
        let b = body(&ids, Action::OnPublish, &info());
        let sid = b["stream_id"].as_str().unwrap_or_default().to_string();
        assert!(sid.starts_with("vid-"));
        assert_eq!(
            b,
            json!({
                "server_id": "mediamesh-1",
                "service_id": "abc",
                "action": "on_publish",
                "client_id": "0000abcd",
                "ip": "127.0.0.1",
                "vhost": "__defaultVhost__",
                "app": "live",
                "tcUrl": "rtmp://127.0.0.1:1935/live",
                "stream": "cam",
                "param": "?key=s3cret",
                "stream_url": "/live/cam",
                "stream_id": sid,
                "protocol": "rtmp",
            })
        );
        let u = body(&ids, Action::OnUnpublish, &info());
        assert_eq!(u["action"], "on_unpublish");
        assert_eq!(u["stream_id"], b["stream_id"]);
    }

    #[test]
    fn answers_are_judged_as_srs_does() {
        assert_eq!(judge(200, b"0"), Verdict::Allow);
        assert_eq!(judge(200, b" 0\n"), Verdict::Allow);
        assert_eq!(judge(200, br#"{"code":0}"#), Verdict::Allow);
        assert_eq!(judge(200, br#"{"code":0,"data":null}"#), Verdict::Allow);
        assert_eq!(judge(204, b""), Verdict::Allow);
        assert_eq!(judge(200, br#"{"ok":true}"#), Verdict::Allow);
        assert!(matches!(judge(200, br#"{"code":1}"#), Verdict::Refuse(_)));
        assert!(matches!(judge(200, b"403"), Verdict::Refuse(_)));
        assert!(matches!(judge(200, br#"{"code":0.5}"#), Verdict::Refuse(_)));
        assert!(matches!(judge(403, b"0"), Verdict::Refuse(_)));
        assert!(matches!(judge(302, b""), Verdict::Refuse(_)));
        assert!(matches!(judge(404, b""), Verdict::Refuse(_)));
        assert!(matches!(judge(502, b"0"), Verdict::Down(_)));
        assert!(matches!(judge(200, b"<html>"), Verdict::Down(_)));
        assert!(matches!(judge(200, &[0xff, 0xfe]), Verdict::Down(_)));
        assert!(matches!(judge(200, br#"{"code":"0"}"#), Verdict::Down(_)));
        assert!(matches!(judge(200, b"[0]"), Verdict::Down(_)));
    }

    #[test]
    fn play_bodies_sessions_and_session_urls() {
        let ids = ServerIds {
            server_id: "mediamesh-1".into(),
            service_id: "abc".into(),
        };
        let p = PlayInfo {
            client_id: "00ff".into(),
            ip: "10.0.0.9".into(),
            tc_url: "http://example.org/live".into(),
            stream: "cam".into(),
            param: "?token=t".into(),
            page_url: "https://site/page".into(),
            protocol: "hls",
        };
        let b = play_body(&ids, Action::OnPlay, &p);
        assert_eq!(
            b,
            json!({
                "server_id": "mediamesh-1",
                "service_id": "abc",
                "action": "on_play",
                "client_id": "00ff",
                "ip": "10.0.0.9",
                "vhost": "__defaultVhost__",
                "app": "live",
                "tcUrl": "http://example.org/live",
                "stream": "cam",
                "param": "?token=t",
                "pageUrl": "https://site/page",
                "stream_url": "/live/cam",
                "stream_id": b["stream_id"].clone(),
                "protocol": "hls",
            })
        );
        assert_eq!(play_body(&ids, Action::OnStop, &p)["action"], "on_stop");

        let t0 = std::time::Instant::now();
        let s = Duration::from_secs;
        let mut sessions = Sessions::default();
        assert!(sessions.open(p.clone(), t0, 1));
        assert!(!sessions.open(
            PlayInfo {
                client_id: "x".into(),
                ..p.clone()
            },
            t0,
            1
        ));
        assert!(sessions.touch("00ff", "cam", t0 + s(20)));
        assert!(!sessions.touch("00ff", "other", t0 + s(20)));
        assert!(!sessions.touch("nope", "cam", t0 + s(20)));
        assert!(sessions.expire(t0 + s(49), s(30)).is_empty());
        assert_eq!(sessions.expire(t0 + s(50), s(30)), vec![p]);
        assert!(sessions.is_empty());

        let mv = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,URI=\"a/index.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\nsrc/index.m3u8\nx.m3u8?a=1\n";
        assert_eq!(
            with_session(mv, "42"),
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,URI=\"a/index.m3u8?session=42\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\nsrc/index.m3u8?session=42\nx.m3u8?a=1&session=42\n"
        );
    }

    #[test]
    fn urls_are_checked_and_logged_without_query() {
        assert!(check_url("http://127.0.0.1:8085/api/v1/streams").is_ok());
        assert!(check_url("https://hooks.example/x").is_err());
        assert!(check_url("ftp://x/").is_err());
        assert!(check_url("not a url").is_err());
        assert_eq!(
            loggable("http://h/p?token=secret#f"),
            "http://h/p",
            "no query in logs"
        );
    }
}
