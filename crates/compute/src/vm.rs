//! One filter instance: a wasmtime Store with its memory cap, the module instantiated
//! and its root context started and configured, and typed handles on the Proxy-Wasm
//! callbacks. Every callback runs under a CPU deadline (epoch interruption); a trap,
//! a deadline, a failed memory grow or a bad pointer handed to a host call all come
//! back as a `FilterFault`, after which the instance must be thrown away.
//!
//! Also the process-wide wasmtime `Engine` and the thread that advances its epoch.
//!
//! Not here: pooling and restarts (see `plugin`), request sequencing (see `chain`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::{Engine, InstancePre, Linker, Module, Store, StoreLimitsBuilder, Trap, TypedFunc};

use crate::hostcalls::Fault;
use crate::state::{HostState, PluginInfo};

/// How often the engine's epoch advances; deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Why a filter callback failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FilterFault {
    #[error("ran past its CPU deadline")]
    Deadline,
    #[error("exceeded its memory cap")]
    OutOfMemory,
    #[error("bad pointer: {0}")]
    BadPointer(String),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    #[error("refused its configuration (proxy_on_configure returned false)")]
    Configure,
}

impl FilterFault {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deadline => "deadline",
            Self::OutOfMemory => "memory",
            Self::BadPointer(_) => "bad_pointer",
            Self::Trap(_) => "trap",
            Self::Instantiate(_) => "instantiate",
            Self::Configure => "configure",
        }
    }

    fn from_error(e: wasmtime::Error) -> Self {
        if let Some(f) = e.downcast_ref::<Fault>() {
            return match f {
                Fault::BadPointer { .. } | Fault::BadAllocation => Self::BadPointer(f.to_string()),
                Fault::TooLarge(_) => Self::OutOfMemory,
                other => Self::Trap(other.to_string()),
            };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Self::Deadline,
            Some(Trap::AllocationTooLarge) => Self::OutOfMemory,
            Some(t) => Self::Trap(t.to_string()),
            None => {
                let msg = format!("{e:#}");
                if msg.contains("grow")
                    || msg.contains("memory size")
                    || msg.contains("memory minimum")
                {
                    Self::OutOfMemory
                } else {
                    Self::Trap(msg)
                }
            }
        }
    }
}

/// Errors compiling a module.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("wasm engine: {0}")]
    Engine(String),
    #[error("cannot compile {path}: {msg}")]
    Module { path: String, msg: String },
    #[error("{path} does not look like a Proxy-Wasm filter: {msg}")]
    NotProxyWasm { path: String, msg: String },
}

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

/// The process's engine (epoch interruption on), with its epoch thread.
pub fn engine() -> Result<&'static Engine, CompileError> {
    ENGINE
        .get_or_init(|| {
            let mut cfg = wasmtime::Config::new();
            cfg.epoch_interruption(true);
            cfg.cranelift_opt_level(wasmtime::OptLevel::Speed);
            let engine = Engine::new(&cfg).map_err(|e| e.to_string())?;
            let weak = engine.weak();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while let Some(e) = weak.upgrade() {
                        e.increment_epoch();
                        drop(e);
                        std::thread::sleep(EPOCH_TICK);
                    }
                })
                .map_err(|e| e.to_string())?;
            Ok(engine)
        })
        .as_ref()
        .map_err(|e| CompileError::Engine(e.clone()))
}

/// Compiles `bytes`, or reuses the module compiled from the same bytes before in this
/// process (several filters may share a file; reloads of an unchanged file are free).
fn cached_module(engine: &Engine, path: &str, bytes: &[u8]) -> Result<Module, CompileError> {
    use sha2::Digest;
    static CACHE: OnceLock<parking_lot::Mutex<std::collections::HashMap<[u8; 32], Module>>> =
        OnceLock::new();
    let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(m) = cache.lock().get(&digest) {
        return Ok(m.clone());
    }
    let module = Module::new(engine, bytes).map_err(|e| CompileError::Module {
        path: path.to_string(),
        msg: format!("{e:#}"),
    })?;
    let mut c = cache.lock();
    if c.len() >= 64 {
        c.clear();
    }
    c.insert(digest, module.clone());
    Ok(module)
}

/// A compiled module ready to instantiate quickly.
pub struct Compiled {
    pub pre: InstancePre<HostState>,
}

/// Compiles a filter and checks that it speaks ABI 0.2.1.
pub fn compile(path: &str, bytes: &[u8]) -> Result<Compiled, CompileError> {
    let engine = engine()?;
    let module = cached_module(engine, path, bytes)?;
    let names: Vec<&str> = module.exports().map(|e| e.name()).collect();
    if !names.contains(&"proxy_on_context_create") {
        return Err(CompileError::NotProxyWasm {
            path: path.to_string(),
            msg: "it exports no proxy_on_context_create".into(),
        });
    }
    if names.iter().any(|n| n.starts_with("proxy_abi_version_0_1")) {
        return Err(CompileError::NotProxyWasm {
            path: path.to_string(),
            msg: "it targets ABI 0.1; this host runs ABI 0.2.1".into(),
        });
    }
    let mut linker = Linker::new(engine);
    crate::hostcalls::link(&mut linker).map_err(|e| CompileError::Engine(e.to_string()))?;
    linker
        .define_unknown_imports_as_traps(&module)
        .map_err(|e| CompileError::Engine(e.to_string()))?;
    let pre = linker
        .instantiate_pre(&module)
        .map_err(|e| CompileError::NotProxyWasm {
            path: path.to_string(),
            msg: format!("{e:#}"),
        })?;
    Ok(Compiled { pre })
}

type F1 = TypedFunc<i32, ()>;
type F2 = TypedFunc<(i32, i32), i32>;
type F3 = TypedFunc<(i32, i32, i32), i32>;
type F5 = TypedFunc<(i32, i32, i32, i32, i32), ()>;

/// The Proxy-Wasm callbacks a module exports (all optional but context create).
struct Callbacks {
    context_create: TypedFunc<(i32, i32), ()>,
    vm_start: Option<F2>,
    configure: Option<F2>,
    request_headers: Option<F3>,
    request_body: Option<F3>,
    request_trailers: Option<F2>,
    response_headers: Option<F3>,
    response_body: Option<F3>,
    response_trailers: Option<F2>,
    log: Option<F1>,
    done: Option<TypedFunc<i32, i32>>,
    delete: Option<F1>,
    tick: Option<F1>,
    http_call_response: Option<F5>,
}

/// Limits of one instance.
#[derive(Debug, Clone, Copy)]
pub struct VmLimits {
    pub memory_bytes: usize,
    pub deadline: Duration,
}

/// One live instance.
pub struct Vm {
    store: Store<HostState>,
    cb: Callbacks,
    deadline_ticks: u64,
    next_context: u32,
    pub generation: u64,
}

impl Vm {
    /// Instantiates and starts the root context (vm start + configure).
    pub fn start(
        compiled: &Compiled,
        plugin: Arc<PluginInfo>,
        limits: VmLimits,
        generation: u64,
    ) -> Result<Self, FilterFault> {
        let engine = compiled.pre.module().engine();
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .memories(1)
            .instances(1)
            .tables(8)
            .table_elements(100_000)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(engine, HostState::new(plugin, store_limits));
        store.limiter(|s| &mut s.limits);
        let deadline_ticks = (limits.deadline.as_millis() as u64)
            .div_ceil(EPOCH_TICK.as_millis() as u64)
            .max(1)
            + 1;
        store.set_epoch_deadline(deadline_ticks);
        store.epoch_deadline_trap();
        let instance =
            compiled
                .pre
                .instantiate(&mut store)
                .map_err(|e| match FilterFault::from_error(e) {
                    FilterFault::Trap(m) => FilterFault::Instantiate(m),
                    other => other,
                })?;
        let get = |store: &mut Store<HostState>, name: &str| instance.get_func(&mut *store, name);
        macro_rules! typed {
            ($name:expr) => {
                get(&mut store, $name).and_then(|f| f.typed(&store).ok())
            };
        }
        let context_create = typed!("proxy_on_context_create").ok_or_else(|| {
            FilterFault::Instantiate("proxy_on_context_create has the wrong type".into())
        })?;
        let cb = Callbacks {
            context_create,
            vm_start: typed!("proxy_on_vm_start"),
            configure: typed!("proxy_on_configure"),
            request_headers: typed!("proxy_on_request_headers"),
            request_body: typed!("proxy_on_request_body"),
            request_trailers: typed!("proxy_on_request_trailers"),
            response_headers: typed!("proxy_on_response_headers"),
            response_body: typed!("proxy_on_response_body"),
            response_trailers: typed!("proxy_on_response_trailers"),
            log: typed!("proxy_on_log"),
            done: typed!("proxy_on_done"),
            delete: typed!("proxy_on_delete"),
            tick: typed!("proxy_on_tick"),
            http_call_response: typed!("proxy_on_http_call_response"),
        };
        // Reactor start-up (constructors, SDK main), then the root context.
        let init: Option<TypedFunc<(), ()>> = typed!("_initialize").or_else(|| typed!("_start"));
        let mut vm = Self {
            store,
            cb,
            deadline_ticks,
            next_context: 2,
            generation,
        };
        if let Some(init) = init {
            vm.call(|s| init.call(s, ()))?;
        }
        let root = vm.store.data().root_context_id as i32;
        let create = vm.cb.context_create.clone();
        vm.call(|s| create.call(s, (root, 0)))?;
        let vm_len = vm.store.data().plugin.vm_configuration.len() as i32;
        if let Some(f) = vm.cb.vm_start.clone() {
            if vm.call(|s| f.call(s, (root, vm_len)))? == 0 {
                return Err(FilterFault::Configure);
            }
        }
        let cfg_len = vm.store.data().plugin.configuration.len() as i32;
        if let Some(f) = vm.cb.configure.clone() {
            if vm.call(|s| f.call(s, (root, cfg_len)))? == 0 {
                return Err(FilterFault::Configure);
            }
        }
        Ok(vm)
    }

    /// Runs one callback under the CPU deadline.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, FilterFault> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        f(&mut self.store).map_err(FilterFault::from_error)
    }

    pub fn state(&self) -> &HostState {
        self.store.data()
    }

    pub fn state_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// Opens a new HTTP context; returns its id.
    pub fn create_http_context(&mut self) -> Result<u32, FilterFault> {
        let id = self.next_context;
        self.next_context = self.next_context.wrapping_add(1).max(2);
        let root = self.store.data().root_context_id as i32;
        let f = self.cb.context_create.clone();
        self.call(|s| f.call(s, (id as i32, root)))?;
        self.store.data_mut().http.context_id = id;
        Ok(id)
    }

    fn call2(
        &mut self,
        f: Option<F2>,
        ctx: u32,
        n: usize,
    ) -> Result<crate::abi::Action, FilterFault> {
        match f {
            Some(f) => {
                let r = self.call(|s| f.call(s, (ctx as i32, n as i32)))?;
                Ok(crate::abi::Action::from_raw(r))
            }
            None => Ok(crate::abi::Action::Continue),
        }
    }

    fn call3(
        &mut self,
        f: Option<F3>,
        ctx: u32,
        a: usize,
        b: bool,
    ) -> Result<crate::abi::Action, FilterFault> {
        match f {
            Some(f) => {
                let r = self.call(|s| f.call(s, (ctx as i32, a as i32, i32::from(b))))?;
                Ok(crate::abi::Action::from_raw(r))
            }
            None => Ok(crate::abi::Action::Continue),
        }
    }

    pub fn on_request_headers(
        &mut self,
        ctx: u32,
        n: usize,
        eos: bool,
    ) -> Result<crate::abi::Action, FilterFault> {
        self.call3(self.cb.request_headers.clone(), ctx, n, eos)
    }

    pub fn on_request_body(
        &mut self,
        ctx: u32,
        n: usize,
        eos: bool,
    ) -> Result<crate::abi::Action, FilterFault> {
        self.call3(self.cb.request_body.clone(), ctx, n, eos)
    }

    pub fn on_request_trailers(
        &mut self,
        ctx: u32,
        n: usize,
    ) -> Result<crate::abi::Action, FilterFault> {
        self.call2(self.cb.request_trailers.clone(), ctx, n)
    }

    pub fn on_response_trailers(
        &mut self,
        ctx: u32,
        n: usize,
    ) -> Result<crate::abi::Action, FilterFault> {
        self.call2(self.cb.response_trailers.clone(), ctx, n)
    }

    pub fn on_response_headers(
        &mut self,
        ctx: u32,
        n: usize,
        eos: bool,
    ) -> Result<crate::abi::Action, FilterFault> {
        self.call3(self.cb.response_headers.clone(), ctx, n, eos)
    }

    pub fn on_response_body(
        &mut self,
        ctx: u32,
        n: usize,
        eos: bool,
    ) -> Result<crate::abi::Action, FilterFault> {
        self.call3(self.cb.response_body.clone(), ctx, n, eos)
    }

    pub fn on_http_call_response(
        &mut self,
        ctx: u32,
        token: u32,
        headers: usize,
        body: usize,
    ) -> Result<(), FilterFault> {
        match self.cb.http_call_response.clone() {
            Some(f) => self.call(|s| {
                f.call(
                    s,
                    (ctx as i32, token as i32, headers as i32, body as i32, 0),
                )
            }),
            None => Ok(()),
        }
    }

    /// Log, done and delete for a finished context.
    pub fn close_context(&mut self, ctx: u32) -> Result<(), FilterFault> {
        if let Some(f) = self.cb.log.clone() {
            self.call(|s| f.call(s, ctx as i32))?;
        }
        if let Some(f) = self.cb.done.clone() {
            self.call(|s| f.call(s, ctx as i32))?;
        }
        if let Some(f) = self.cb.delete.clone() {
            self.call(|s| f.call(s, ctx as i32))?;
        }
        self.store.data_mut().http = Default::default();
        Ok(())
    }

    /// Calls `proxy_on_tick` on the root context.
    pub fn on_tick(&mut self) -> Result<(), FilterFault> {
        let root = self.store.data().root_context_id as i32;
        match self.cb.tick.clone() {
            Some(f) => self.call(|s| f.call(s, root)),
            None => Ok(()),
        }
    }
}
