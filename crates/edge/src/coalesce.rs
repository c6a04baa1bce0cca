//! Request coalescing: N concurrent misses for one object make exactly one upstream
//! request, and every waiting client receives the body *as it arrives* — a part or a
//! preload-hinted object streams to all waiters while the origin is still producing it.
//!
//! A [`Flight`] is the shared, growing response of one upstream fetch: the fetching
//! task appends chunks, readers follow with their own cursor. It does not know about
//! HTTP clients, caches or upstream selection.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

/// Status and headers of the upstream answer.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

/// How a flight ended badly.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FlightError {
    /// Every upstream failed (not a time-out).
    #[error("no upstream answered: {0}")]
    Upstream(crate::upstream::FetchError),
    /// The hook that led the fill (the ladder) could not make the object.
    #[error("no upstream answered: {0}")]
    Made(Arc<dyn std::error::Error + Send + Sync>),
    /// The leader went away without an outcome.
    #[error("no upstream answered: fetch abandoned")]
    Abandoned,
    #[error("upstream timed out")]
    Timeout,
    /// The upstream body broke off after the head.
    #[error("the upstream body broke off: {0}")]
    Body(Arc<dyn std::error::Error + Send + Sync>),
    #[error("object larger than the limit of {0} bytes")]
    TooLarge(usize),
}

impl FlightError {
    /// The status a waiter without a head answers with: 504 for a time-out, else 502.
    pub fn status(&self) -> u16 {
        match self {
            FlightError::Timeout => 504,
            _ => 502,
        }
    }

    /// Whether asking again may succeed (all but an object over the size limit).
    pub fn retryable(&self) -> bool {
        match self {
            FlightError::TooLarge(_) => false,
            FlightError::Upstream(e) => e.retryable(),
            _ => true,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    head: Option<Head>,
    chunks: Vec<Bytes>,
    len: usize,
    done: bool,
    error: Option<FlightError>,
}

/// One upstream fetch in progress, shared by every client that wants the object.
#[derive(Debug)]
pub struct Flight {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Default for Flight {
    fn default() -> Self {
        Self::new()
    }
}

impl Flight {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Writer: the upstream answered.
    pub fn set_head(&self, head: Head) {
        self.state.lock().head = Some(head);
        self.bump();
    }

    /// Writer: more body bytes.
    pub fn push(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        {
            let mut s = self.state.lock();
            s.len += chunk.len();
            s.chunks.push(chunk);
        }
        self.bump();
    }

    /// Bytes received so far.
    pub fn len(&self) -> usize {
        self.state.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writer: the body is complete.
    pub fn finish(&self) {
        self.state.lock().done = true;
        self.bump();
    }

    /// Writer: the fetch failed; readers get the error.
    pub fn fail(&self, error: FlightError) {
        {
            let mut s = self.state.lock();
            s.error = Some(error);
            s.done = true;
        }
        self.bump();
    }

    /// The bytes received so far followed by `last` (the writer's view of the whole
    /// body before it tells readers the body is complete).
    pub fn collected_with(&self, last: &[u8]) -> Bytes {
        let s = self.state.lock();
        if last.is_empty() {
            return concat(&s.chunks, s.len);
        }
        let mut v = Vec::with_capacity(s.len + last.len());
        for c in &s.chunks {
            v.extend_from_slice(c);
        }
        v.extend_from_slice(last);
        Bytes::from(v)
    }

    /// Reader: waits for the head (or the error).
    pub async fn head(&self) -> Result<Head, FlightError> {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let s = self.state.lock();
                if let Some(e) = &s.error {
                    if s.head.is_none() {
                        return Err(e.clone());
                    }
                }
                if let Some(h) = &s.head {
                    return Ok(h.clone());
                }
            }
            if rx.changed().await.is_err() {
                return Err(FlightError::Abandoned);
            }
        }
    }

    /// Reader: waits for the full body.
    pub async fn complete(&self) -> Result<Bytes, FlightError> {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let s = self.state.lock();
                if let Some(e) = &s.error {
                    return Err(e.clone());
                }
                if s.done {
                    return Ok(concat(&s.chunks, s.len));
                }
            }
            if rx.changed().await.is_err() {
                return Err(FlightError::Abandoned);
            }
        }
    }

    /// Reader: the chunk at `index`, waiting for it; `None` at the end of the body.
    pub async fn chunk(&self, index: usize) -> Option<Result<Bytes, FlightError>> {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let s = self.state.lock();
                if let Some(c) = s.chunks.get(index) {
                    return Some(Ok(c.clone()));
                }
                if let Some(e) = &s.error {
                    return Some(Err(e.clone()));
                }
                if s.done {
                    return None;
                }
            }
            if rx.changed().await.is_err() {
                return Some(Err(FlightError::Abandoned));
            }
        }
    }
}

fn concat(chunks: &[Bytes], len: usize) -> Bytes {
    match chunks {
        [] => Bytes::new(),
        [one] => one.clone(),
        many => {
            let mut v = Vec::with_capacity(len);
            for c in many {
                v.extend_from_slice(c);
            }
            Bytes::from(v)
        }
    }
}

/// The flights in progress, by cache key.
#[derive(Debug, Default)]
pub struct Flights {
    map: Mutex<HashMap<String, Arc<Flight>>>,
}

/// Whether the caller leads the fetch or follows one.
pub enum Joined {
    /// Start the upstream fetch and call [`Flights::land`] when it is over.
    Lead(Arc<Flight>),
    /// Someone else fetches; read from the flight.
    Follow(Arc<Flight>),
}

impl Flights {
    pub fn join(&self, key: &str) -> Joined {
        let mut map = self.map.lock();
        if let Some(f) = map.get(key) {
            return Joined::Follow(f.clone());
        }
        let f = Arc::new(Flight::new());
        map.insert(key.to_string(), f.clone());
        Joined::Lead(f)
    }

    /// The fetch for `key` is over: later requests start a new one (or hit the cache).
    pub fn land(&self, key: &str) {
        self.map.lock().remove(key);
    }

    pub fn in_flight(&self) -> usize {
        self.map.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_follow_chunks_as_they_arrive() {
        let f = Arc::new(Flight::new());
        let reader = {
            let f = f.clone();
            tokio::spawn(async move {
                let head = f.head().await.expect("head");
                let mut got = Vec::new();
                let mut i = 0;
                while let Some(c) = f.chunk(i).await {
                    got.extend_from_slice(&c.expect("chunk"));
                    i += 1;
                }
                (head.status, got)
            })
        };
        f.set_head(Head {
            status: 200,
            headers: vec![],
        });
        for part in [&b"ab"[..], b"cd", b"e"] {
            tokio::task::yield_now().await;
            f.push(Bytes::copy_from_slice(part));
        }
        f.finish();
        let (status, body) = reader.await.expect("join");
        assert_eq!(status, 200);
        assert_eq!(body, b"abcde");
        assert_eq!(f.complete().await.ok().as_deref(), Some(&b"abcde"[..]));
    }

    #[tokio::test]
    async fn errors_reach_every_reader() {
        let f = Arc::new(Flight::new());
        let f2 = f.clone();
        let r = tokio::spawn(async move { f2.head().await });
        f.fail(FlightError::Timeout);
        assert!(matches!(
            r.await.expect("join").err(),
            Some(FlightError::Timeout)
        ));
        assert!(f.complete().await.is_err());
    }

    #[test]
    fn first_joiner_leads_the_rest_follow() {
        let flights = Flights::default();
        assert!(matches!(flights.join("a"), Joined::Lead(_)));
        assert!(matches!(flights.join("a"), Joined::Follow(_)));
        assert!(matches!(flights.join("b"), Joined::Lead(_)));
        flights.land("a");
        assert!(matches!(flights.join("a"), Joined::Lead(_)));
    }
}
