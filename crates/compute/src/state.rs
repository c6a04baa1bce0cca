//! What a filter instance can see and change through host calls: the data of one
//! Store. Per instance: its plugin's identity and configuration, memory limits, the
//! tick period, and the HTTP context in progress (headers, bodies, properties, a local
//! response, pending call-outs). Plain data; `hostcalls` reads and writes it.
//!
//! Not here: wasm memory access (see `hostcalls`) or request sequencing (see `chain`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use wasmtime::{Memory, StoreLimits, TypedFunc};

/// Header pairs in order, names lowercase for HTTP headers (pseudo-headers start with `:`).
pub type Headers = Vec<(String, String)>;

/// Identity and configuration of one plugin, shared by all its instances.
#[derive(Debug)]
pub struct PluginInfo {
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub configuration: Vec<u8>,
    pub vm_configuration: Vec<u8>,
    /// Upstream names a filter may `proxy_http_call`, with their base URLs.
    pub upstreams: HashMap<String, String>,
    pub shared: Arc<SharedData>,
}

/// Key/value store shared by every instance of the plugins with one `vm_id`, with the
/// compare-and-swap tokens of the ABI.
#[derive(Debug, Default)]
pub struct SharedData {
    entries: Mutex<HashMap<String, (Vec<u8>, u32)>>,
    max_entries: usize,
}

impl SharedData {
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_entries,
        }
    }

    pub fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.entries.lock().get(key).cloned()
    }

    /// Stores `value` when `cas` is 0 or matches the current token.
    pub fn set(&self, key: &str, value: Vec<u8>, cas: u32) -> Result<(), crate::abi::Status> {
        let mut e = self.entries.lock();
        let current = e.get(key).map(|(_, c)| *c);
        if cas != 0 && current.is_some_and(|c| c != cas) {
            return Err(crate::abi::Status::CasMismatch);
        }
        if current.is_none() && e.len() >= self.max_entries {
            return Err(crate::abi::Status::InternalFailure);
        }
        let next = current.unwrap_or(0).wrapping_add(1).max(1);
        e.insert(key.to_string(), (value, next));
        Ok(())
    }
}

/// A response a filter made itself (`proxy_send_local_response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// An HTTP call-out a filter asked for, waiting for the shell to make it.
#[derive(Debug, Clone)]
pub struct PendingCall {
    pub token: u32,
    pub upstream: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// The answer to a call-out while `proxy_on_http_call_response` runs.
#[derive(Debug, Clone, Default)]
pub struct CallResponse {
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// Exports of the guest the host calls use (its memory and allocator), looked up
/// once per instance by `hostcalls`.
#[derive(Clone)]
pub struct GuestExports {
    pub memory: Memory,
    pub alloc: Option<TypedFunc<i32, i32>>,
}

/// Facts about the request exposed as properties.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub method: String,
    /// Path with query, as sent.
    pub path: String,
    pub authority: String,
    pub scheme: String,
    pub client: SocketAddr,
    pub id: String,
}

/// The HTTP context in progress on this instance.
#[derive(Debug, Default)]
pub struct HttpState {
    pub context_id: u32,
    pub facts: Option<RequestFacts>,
    pub request_headers: Headers,
    pub request_body: Vec<u8>,
    pub request_trailers: Headers,
    pub response_status: u16,
    pub response_headers: Headers,
    pub response_body: Vec<u8>,
    pub response_trailers: Headers,
    pub local_response: Option<LocalResponse>,
    pub custom_properties: HashMap<String, Vec<u8>>,
    pub pending_calls: Vec<PendingCall>,
    pub call_response: Option<CallResponse>,
    /// `proxy_continue_stream` was called.
    pub resumed: bool,
}

/// Store data of one filter instance.
pub struct HostState {
    pub limits: StoreLimits,
    pub plugin: Arc<PluginInfo>,
    pub root_context_id: u32,
    pub tick_period: Option<Duration>,
    pub http: HttpState,
    pub next_token: u32,
    /// Largest number of call-outs one request may make.
    pub max_calls: usize,
    /// Largest buffer or map a filter may hand the host, in bytes.
    pub max_host_bytes: usize,
    /// Memory and allocator exports, found on first use.
    pub guest: Option<GuestExports>,
    /// Names given to `proxy_define_metric`, id = index + 1.
    pub metric_names: Vec<String>,
}

impl HostState {
    pub fn new(plugin: Arc<PluginInfo>, limits: StoreLimits) -> Self {
        Self {
            limits,
            plugin,
            root_context_id: 1,
            tick_period: None,
            http: HttpState::default(),
            next_token: 1,
            max_calls: 8,
            max_host_bytes: 16 << 20,
            guest: None,
            metric_names: Vec::new(),
        }
    }

    /// The map a filter addresses, if it exists in this phase.
    pub fn map(&self, t: crate::abi::MapType) -> Option<&Headers> {
        use crate::abi::MapType as M;
        match t {
            M::RequestHeaders => Some(&self.http.request_headers),
            M::ResponseHeaders => Some(&self.http.response_headers),
            M::HttpCallResponseHeaders => self.http.call_response.as_ref().map(|c| &c.headers),
            M::RequestTrailers => Some(&self.http.request_trailers),
            M::ResponseTrailers => Some(&self.http.response_trailers),
            M::HttpCallResponseTrailers => None,
        }
    }

    pub fn map_mut(&mut self, t: crate::abi::MapType) -> Option<&mut Headers> {
        use crate::abi::MapType as M;
        match t {
            M::RequestHeaders => Some(&mut self.http.request_headers),
            M::ResponseHeaders => Some(&mut self.http.response_headers),
            M::RequestTrailers => Some(&mut self.http.request_trailers),
            M::ResponseTrailers => Some(&mut self.http.response_trailers),
            _ => None,
        }
    }

    /// The value of a property (dotted path), as the bytes a filter gets.
    pub fn property(&self, path: &str) -> Option<Vec<u8>> {
        if let Some(v) = self.http.custom_properties.get(path) {
            return Some(v.clone());
        }
        let p = &self.plugin;
        let facts = self.http.facts.as_ref();
        let s = |v: &str| Some(v.as_bytes().to_vec());
        match path {
            "plugin_name" => s(&p.name),
            "plugin_root_id" => s(&p.root_id),
            "plugin_vm_id" => s(&p.vm_id),
            "plugin_configuration" => Some(p.configuration.clone()),
            "node.id" | "xds.node.id" => s("mediamesh-edge"),
            "request.path" => s(&facts?.path),
            "request.url_path" => s(facts?.path.split('?').next().unwrap_or("")),
            "request.query" => s(facts?.path.split_once('?').map_or("", |(_, q)| q)),
            "request.method" => s(&facts?.method),
            "request.host" => s(&facts?.authority),
            "request.scheme" => s(&facts?.scheme),
            "request.id" => s(&facts?.id),
            "request.protocol" => s("HTTP/1.1"),
            "source.address" => s(&facts?.client.to_string()),
            "source.port" => Some(i64::from(facts?.client.port()).to_le_bytes().to_vec()),
            "response.code" if self.http.response_status != 0 => {
                Some(i64::from(self.http.response_status).to_le_bytes().to_vec())
            }
            _ => None,
        }
    }
}

/// Reads a header (case-insensitive name) from pairs.
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_cas() {
        let d = SharedData::new(2);
        assert!(d.get("a").is_none());
        d.set("a", b"1".to_vec(), 0).expect("first set");
        let (v, cas) = d.get("a").expect("stored");
        assert_eq!(v, b"1");
        d.set("a", b"2".to_vec(), cas).expect("matching cas");
        assert_eq!(
            d.set("a", b"3".to_vec(), cas),
            Err(crate::abi::Status::CasMismatch)
        );
        d.set("b", b"x".to_vec(), 0).expect("second key");
        assert_eq!(
            d.set("c", b"x".to_vec(), 0),
            Err(crate::abi::Status::InternalFailure)
        );
    }
}
