//! One configured filter: its compiled module, a pool of ready instances, crash
//! accounting with back-off, hot reload when its file changes, and its tick.
//!
//! Pooling: a request borrows an instance that was instantiated and configured before
//! (the Proxy-Wasm model: one VM serves many HTTP contexts in turn), so it pays a few
//! callbacks, not an instantiation. Instances are made on demand up to
//! `max_instances`; a request that finds them all busy waits for one, bounded.
//!
//! Crashes: an instance whose callback trapped, overran its deadline, ran out of memory
//! or passed a bad pointer is dropped, never reused; the next request gets a fresh one.
//! When `crash_threshold` crashes fall within `crash_window`, the filter is quarantined
//! for a back-off that doubles (1 s … 60 s) while the crashes go on and resets after a
//! quiet window; quarantined, its requests fail (500) or skip it (`fail_open`).
//!
//! Hot reload: a task polls the file's size and modification time (polling rather than
//! inotify: it works the same on every file system, including bind mounts, and half a
//! second is fast enough); a changed file is compiled and one instance is configured
//! before the new generation replaces the old. In-flight requests finish on the
//! instance they hold; the listener is never touched, so no connection drops. A file
//! that fails to compile or configure leaves the old generation running.
//!
//! Not here: the request sequence (see `chain`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

// tokio's clock (the system clock unless a test pauses it), so crash windows and
// back-offs are tested with `tokio::time::advance` instead of sleeping.
use tokio::time::Instant;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::state::{PluginInfo, SharedData};
use crate::vm::{self, Compiled, FilterFault, Vm, VmLimits};

/// Sandbox bounds of one filter.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Linear memory cap per instance.
    pub memory_bytes: usize,
    /// CPU time one callback may take.
    pub callback_deadline: Duration,
    /// Instances alive at once (= requests inside this filter at once).
    pub max_instances: usize,
    /// How long a request waits for a free instance before failing.
    pub acquire_timeout: Duration,
    /// Crashes within `crash_window` that quarantine the filter.
    pub crash_threshold: usize,
    pub crash_window: Duration,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            callback_deadline: Duration::from_millis(50),
            max_instances: 64,
            acquire_timeout: Duration::from_secs(5),
            crash_threshold: 5,
            crash_window: Duration::from_secs(10),
        }
    }
}

/// How a filter is configured.
#[derive(Debug, Clone)]
pub struct FilterSpec {
    /// Name in logs, metrics and the `plugin_name` property (default: file stem).
    pub name: String,
    pub file: PathBuf,
    /// Only requests whose path starts with this run the filter; `None` = all.
    pub path_prefix: Option<String>,
    /// Bytes the filter reads as its plugin configuration.
    pub configuration: Vec<u8>,
    pub vm_configuration: Vec<u8>,
    /// Shared-data scope; filters with one `vm_id` share data (default: the name).
    pub vm_id: Option<String>,
    /// When the filter fails, let the request through untouched instead of 500.
    pub fail_open: bool,
    /// Hand bodies and trailers to the filter: `proxy_on_request_body` and
    /// `proxy_on_request_trailers`, `proxy_on_response_body` and
    /// `proxy_on_response_trailers` (the host buffers each whole body).
    pub body: bool,
    /// Upstream names → base URLs the filter may `proxy_http_call`.
    pub upstreams: HashMap<String, String>,
    pub limits: SandboxLimits,
    /// How often the file is checked for changes; `None` = never reload.
    pub reload_poll: Option<Duration>,
}

impl FilterSpec {
    /// A spec with defaults for `file`.
    pub fn new(file: PathBuf) -> Self {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "filter".into());
        Self {
            name,
            file,
            path_prefix: None,
            configuration: Vec::new(),
            vm_configuration: Vec::new(),
            vm_id: None,
            fail_open: false,
            body: false,
            upstreams: HashMap::new(),
            limits: SandboxLimits::default(),
            reload_poll: Some(Duration::from_millis(500)),
        }
    }
}

/// Why a filter could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read filter {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Compile(#[from] vm::CompileError),
    #[error("filter {name} failed to start: {fault}")]
    Start { name: String, fault: FilterFault },
}

struct Generation {
    number: u64,
    compiled: Compiled,
    /// File identity it was built from.
    stamp: Option<(SystemTime, u64)>,
}

#[derive(Default)]
struct Health {
    crashes: Vec<Instant>,
    quarantined_until: Option<Instant>,
    backoff: Duration,
    last_quarantine: Option<Instant>,
}

/// A loaded filter.
pub struct Plugin {
    pub spec: FilterSpec,
    pub info: Arc<PluginInfo>,
    current: RwLock<Arc<Generation>>,
    idle: Mutex<Vec<Vm>>,
    permits: Arc<Semaphore>,
    health: Mutex<Health>,
    generations: AtomicU64,
    /// Tick period the filter asked for (last instance configured wins).
    tick: Mutex<Option<Duration>>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.spec.name)
            .finish()
    }
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Shared-data stores by vm id, process-wide (they outlive reloads and restarts).
fn shared_for(vm_id: &str) -> Arc<SharedData> {
    static ALL: std::sync::OnceLock<Mutex<HashMap<String, Arc<SharedData>>>> =
        std::sync::OnceLock::new();
    ALL.get_or_init(Default::default)
        .lock()
        .entry(vm_id.to_string())
        .or_insert_with(|| Arc::new(SharedData::new(10_000)))
        .clone()
}

/// An instance on loan to one request; returned to the pool when dropped unless
/// poisoned.
pub struct Lease {
    vm: Option<Vm>,
    plugin: Arc<Plugin>,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    pub fn vm(&mut self) -> Option<&mut Vm> {
        self.vm.as_mut()
    }

    /// Throws the instance away after a fault and counts the crash.
    pub fn poison(&mut self, fault: &FilterFault) {
        self.vm = None;
        self.plugin.record_crash(fault);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(vm) = self.vm.take() {
            self.plugin.give_back(vm);
        }
    }
}

/// Why no instance could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AcquireError {
    #[error("quarantined after repeated crashes (retry in {0:?})")]
    Quarantined(Duration),
    #[error("no free instance within {0:?}")]
    Busy(Duration),
    #[error("{0}")]
    Start(FilterFault),
}

impl Plugin {
    /// Reads, compiles and starts one instance (so a broken filter fails at start-up).
    pub fn load(spec: FilterSpec) -> Result<Arc<Self>, LoadError> {
        let bytes = std::fs::read(&spec.file).map_err(|source| LoadError::Read {
            path: spec.file.display().to_string(),
            source,
        })?;
        let st = stamp(&spec.file);
        let compiled = vm::compile(&spec.file.display().to_string(), &bytes)?;
        let vm_id = spec.vm_id.clone().unwrap_or_else(|| spec.name.clone());
        let info = Arc::new(PluginInfo {
            name: spec.name.clone(),
            root_id: spec.name.clone(),
            vm_id: vm_id.clone(),
            configuration: spec.configuration.clone(),
            vm_configuration: spec.vm_configuration.clone(),
            upstreams: spec.upstreams.clone(),
            shared: shared_for(&vm_id),
        });
        let plugin = Arc::new(Self {
            permits: Arc::new(Semaphore::new(spec.limits.max_instances.max(1))),
            info,
            current: RwLock::new(Arc::new(Generation {
                number: 1,
                compiled,
                stamp: st,
            })),
            idle: Mutex::new(Vec::new()),
            health: Mutex::new(Health::default()),
            generations: AtomicU64::new(1),
            tick: Mutex::new(None),
            spec,
        });
        let vm = plugin.instantiate().map_err(|fault| LoadError::Start {
            name: plugin.spec.name.clone(),
            fault,
        })?;
        plugin.idle.lock().push(vm);
        Ok(plugin)
    }

    fn vm_limits(&self) -> VmLimits {
        VmLimits {
            memory_bytes: self.spec.limits.memory_bytes,
            deadline: self.spec.limits.callback_deadline,
        }
    }

    fn instantiate(&self) -> Result<Vm, FilterFault> {
        let generation = self.current.read().clone();
        let vm = Vm::start(
            &generation.compiled,
            self.info.clone(),
            self.vm_limits(),
            generation.number,
        )?;
        if vm.state().tick_period.is_some() {
            *self.tick.lock() = vm.state().tick_period;
        }
        ::metrics::counter!("mediamesh_compute_filter_instances_started_total", "filter" => self.spec.name.clone())
            .increment(1);
        Ok(vm)
    }

    /// Whether the path runs this filter.
    pub fn applies_to(&self, path: &str) -> bool {
        self.spec
            .path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p))
    }

    /// Borrows a ready instance (or makes one).
    pub async fn acquire(self: &Arc<Self>) -> Result<Lease, AcquireError> {
        if let Some(left) = self.quarantine_left() {
            return Err(AcquireError::Quarantined(left));
        }
        let wait = self.spec.limits.acquire_timeout;
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(wait, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| AcquireError::Busy(wait))?
                .map_err(|_| AcquireError::Busy(wait))?,
        };
        let current = self.current.read().number;
        let pooled = {
            let mut idle = self.idle.lock();
            idle.retain(|v| v.generation == current);
            idle.pop()
        };
        let vm = match pooled {
            Some(vm) => vm,
            None => match self.instantiate() {
                Ok(vm) => vm,
                Err(fault) => {
                    self.record_crash(&fault);
                    return Err(AcquireError::Start(fault));
                }
            },
        };
        Ok(Lease {
            vm: Some(vm),
            plugin: self.clone(),
            _permit: permit,
        })
    }

    fn give_back(&self, vm: Vm) {
        if vm.generation == self.current.read().number {
            self.idle.lock().push(vm);
        }
    }

    fn quarantine_left(&self) -> Option<Duration> {
        let h = self.health.lock();
        let until = h.quarantined_until?;
        until.checked_duration_since(Instant::now())
    }

    fn record_crash(&self, fault: &FilterFault) {
        ::metrics::counter!("mediamesh_compute_filter_crashes_total", "filter" => self.spec.name.clone(), "kind" => fault.kind())
            .increment(1);
        let now = Instant::now();
        let window = self.spec.limits.crash_window;
        let mut h = self.health.lock();
        h.crashes.retain(|t| now.duration_since(*t) < window);
        h.crashes.push(now);
        tracing::warn!(filter = %self.spec.name, error = %fault, recent_crashes = h.crashes.len(), "filter instance failed; it is replaced by a fresh one");
        if h.crashes.len() >= self.spec.limits.crash_threshold {
            // Back-off doubles while crash loops follow each other, resets after quiet.
            let quiet = h
                .last_quarantine
                .is_none_or(|t| now.duration_since(t) > window + h.backoff * 2);
            h.backoff = if quiet {
                Duration::from_secs(1)
            } else {
                (h.backoff * 2).min(Duration::from_secs(60))
            };
            h.quarantined_until = Some(now + h.backoff);
            h.last_quarantine = Some(now);
            h.crashes.clear();
            ::metrics::counter!("mediamesh_compute_filter_quarantines_total", "filter" => self.spec.name.clone())
                .increment(1);
            tracing::error!(filter = %self.spec.name, backoff_ms = h.backoff.as_millis() as u64, "filter crash loop: quarantined");
        }
    }

    /// Current generation (1 at load, +1 per reload).
    pub fn generation(&self) -> u64 {
        self.current.read().number
    }

    /// Keeps the running generation but records `stamp`, so a file that failed to
    /// compile or start is not tried again every poll.
    fn keep_generation(&self, stamp: Option<(SystemTime, u64)>) {
        let mut cur = self.current.write();
        let old = cur.clone();
        *cur = Arc::new(Generation {
            number: old.number,
            compiled: Compiled {
                pre: old.compiled.pre.clone(),
            },
            stamp,
        });
    }

    /// Reloads from the file if it changed; returns whether a new generation runs.
    pub fn reload_if_changed(&self) -> Result<bool, LoadError> {
        let now_stamp = stamp(&self.spec.file);
        if now_stamp.is_none() || now_stamp == self.current.read().stamp {
            return Ok(false);
        }
        let path = self.spec.file.display().to_string();
        let bytes = std::fs::read(&self.spec.file).map_err(|source| LoadError::Read {
            path: path.clone(),
            source,
        })?;
        let number = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        let compiled = match vm::compile(&path, &bytes) {
            Ok(c) => c,
            Err(e) => {
                self.keep_generation(now_stamp);
                return Err(e.into());
            }
        };
        let vm =
            Vm::start(&compiled, self.info.clone(), self.vm_limits(), number).map_err(|fault| {
                LoadError::Start {
                    name: self.spec.name.clone(),
                    fault,
                }
            });
        let vm = match vm {
            Ok(vm) => vm,
            Err(e) => {
                self.keep_generation(now_stamp);
                return Err(e);
            }
        };
        *self.current.write() = Arc::new(Generation {
            number,
            compiled,
            stamp: now_stamp,
        });
        {
            let mut idle = self.idle.lock();
            idle.clear();
            idle.push(vm);
        }
        *self.health.lock() = Health::default();
        ::metrics::counter!("mediamesh_compute_filter_reloads_total", "filter" => self.spec.name.clone())
            .increment(1);
        tracing::info!(filter = %self.spec.name, generation = number, "filter reloaded");
        Ok(true)
    }

    /// Runs `proxy_on_tick` on every idle instance if the filter asked for ticks.
    pub fn tick_idle(&self) {
        let vms: Vec<Vm> = std::mem::take(&mut *self.idle.lock());
        let mut kept = Vec::with_capacity(vms.len());
        for mut vm in vms {
            match vm.on_tick() {
                Ok(()) => kept.push(vm),
                Err(fault) => self.record_crash(&fault),
            }
        }
        self.idle.lock().extend(kept);
    }

    /// The tick period requested, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        *self.tick.lock()
    }

    /// Instances ready in the pool.
    pub fn idle_instances(&self) -> usize {
        self.idle.lock().len()
    }
}
