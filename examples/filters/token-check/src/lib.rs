//! Example Proxy-Wasm HTTP filter for the mediamesh edge, written against the upstream
//! `proxy-wasm` Rust SDK only (it runs unmodified in Envoy, nginx (ngx_wasm_module) or
//! any other ABI 0.2.1 host). It is what the edge's tests load; it is not a product.
//!
//! What it does, from its plugin configuration (JSON):
//! - `blocked`: path prefixes answered locally with 403 (the origin never sees them);
//! - `protected` + `token`: path prefixes that need `x-token: <token>`, else 401;
//! - `auth_prefix`: when a request carries `x-auth: NAME`, the filter asks the `auth`
//!   upstream for `{auth_prefix}NAME` with `proxy_http_call` and lets the request on only
//!   if that answers 200 (else 403);
//! - `header_name`/`header_value`: response header added to every other answer, plus
//!   `x-filter-path` (the request path read through a property), `x-filter-count` (a
//!   per-plugin request counter kept in shared data with compare-and-swap), and the
//!   `server` response header is removed.
//! - `beacon`: path prefix of a collector the filter answers itself: a POST there is
//!   read whole (body, then trailers when the client sent some) and answered 200 with
//!   `{"bytes":N,"trailers":K,"checksum":"…"}` (`checksum` = the `x-checksum` trailer);
//! - `trailer_tag`: when an answer carries trailers, the filter adds `x-filter-trailer`
//!   with this value to them.
//! The root context also sets a tick and counts ticks in shared data (`ticks`).

use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;

#[derive(Deserialize, Clone, Default)]
#[serde(default)]
struct Config {
    blocked: Vec<String>,
    protected: Vec<String>,
    token: String,
    auth_prefix: String,
    header_name: String,
    header_value: String,
    tick_ms: u64,
    beacon: String,
    trailer_tag: String,
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { config: Config::default() })
    });
}}

struct Root {
    config: Config,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(raw) = self.get_plugin_configuration() else {
            return true;
        };
        match serde_json::from_slice::<Config>(&raw) {
            Ok(c) => {
                if c.tick_ms > 0 {
                    self.set_tick_period(Duration::from_millis(c.tick_ms));
                }
                self.config = c;
                proxy_wasm::hostcalls::log(LogLevel::Info, "token-check configured").ok();
                true
            }
            Err(e) => {
                proxy_wasm::hostcalls::log(LogLevel::Error, &format!("bad configuration: {e}"))
                    .ok();
                false
            }
        }
    }

    fn on_tick(&mut self) {
        bump(self, "ticks");
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter {
            config: self.config.clone(),
            path: String::new(),
            beacon_bytes: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Adds one to a counter in shared data (compare-and-swap, retried); returns the new value.
fn bump(ctx: &dyn Context, key: &str) -> u64 {
    for _ in 0..8 {
        let (value, cas) = ctx.get_shared_data(key);
        let n = value
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        if ctx
            .set_shared_data(key, Some(n.to_string().as_bytes()), cas)
            .is_ok()
        {
            return n;
        }
    }
    0
}

struct Filter {
    config: Config,
    path: String,
    /// Set while a beacon POST is being read: its body length so far.
    beacon_bytes: Option<usize>,
}

impl Filter {
    fn answer_beacon(&mut self, trailers: usize, checksum: &str) {
        let body = format!(
            "{{\"bytes\":{},\"trailers\":{trailers},\"checksum\":\"{checksum}\"}}\n",
            self.beacon_bytes.unwrap_or(0)
        );
        self.send_http_response(
            200,
            vec![("content-type", "application/json"), ("x-answered-by", "token-check")],
            Some(body.as_bytes()),
        );
    }
}

impl Context for Filter {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, _body: usize, _trailers: usize) {
        let status = self.get_http_call_response_header(":status");
        if status.as_deref() == Some("200") {
            self.resume_http_request();
        } else {
            self.send_http_response(
                403,
                vec![("x-blocked-by", "token-check")],
                Some(b"auth service said no\n"),
            );
        }
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let path = self
            .get_property(vec!["request", "path"])
            .and_then(|p| String::from_utf8(p).ok())
            .or_else(|| self.get_http_request_header(":path"))
            .unwrap_or_default();
        self.path = path.split('?').next().unwrap_or("").to_string();
        let method = self.get_http_request_header(":method").unwrap_or_default();
        if !self.config.beacon.is_empty()
            && method == "POST"
            && self.path.starts_with(self.config.beacon.as_str())
        {
            self.beacon_bytes = Some(0);
            if end_of_stream {
                self.answer_beacon(0, "");
            }
            return Action::Pause;
        }
        if self.config.blocked.iter().any(|p| self.path.starts_with(p.as_str())) {
            self.send_http_response(
                403,
                vec![("x-blocked-by", "token-check")],
                Some(b"blocked at the edge\n"),
            );
            return Action::Pause;
        }
        if self.config.protected.iter().any(|p| self.path.starts_with(p.as_str())) {
            let token = self.get_http_request_header("x-token").unwrap_or_default();
            if token.is_empty() || token != self.config.token {
                self.send_http_response(
                    401,
                    vec![("x-blocked-by", "token-check"), ("www-authenticate", "Token")],
                    Some(b"token missing or wrong\n"),
                );
                return Action::Pause;
            }
        }
        // Header rewrite on the way in: the token never travels further.
        self.set_http_request_header("x-token", None);
        if let Some(name) = self.get_http_request_header("x-auth") {
            if !self.config.auth_prefix.is_empty() {
                let path = format!("{}{}", self.config.auth_prefix, name);
                let called = self.dispatch_http_call(
                    "auth",
                    vec![(":method", "GET"), (":path", &path), (":authority", "auth")],
                    None,
                    vec![],
                    Duration::from_secs(5),
                );
                if called.is_ok() {
                    return Action::Pause;
                }
                self.send_http_response(503, vec![], Some(b"auth service unreachable\n"));
                return Action::Pause;
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if !self.config.header_name.is_empty() {
            self.add_http_response_header(&self.config.header_name, &self.config.header_value);
        }
        self.set_http_response_header("x-filter-path", Some(&self.path));
        let n = bump(self, "requests");
        self.set_http_response_header("x-filter-count", Some(&n.to_string()));
        self.set_http_response_header("server", None);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.beacon_bytes.is_none() {
            return Action::Continue;
        }
        let got = self.get_http_request_body(0, body_size).map_or(0, |b| b.len());
        self.beacon_bytes = Some(got);
        if end_of_stream {
            self.answer_beacon(0, "");
        }
        Action::Pause
    }

    fn on_http_request_trailers(&mut self, num_trailers: usize) -> Action {
        if self.beacon_bytes.is_none() {
            return Action::Continue;
        }
        let checksum = self.get_http_request_trailer("x-checksum").unwrap_or_default();
        self.answer_beacon(num_trailers, &checksum);
        Action::Pause
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if !self.config.trailer_tag.is_empty() {
            self.add_http_response_trailer("x-filter-trailer", &self.config.trailer_tag);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        proxy_wasm::hostcalls::log(LogLevel::Debug, &format!("done {}", self.path)).ok();
    }
}
