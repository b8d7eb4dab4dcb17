//! The waPC host, implemented directly on wasmtime.
//!
//! Behaves like Kubewarden's policy-evaluator (`wapc` + `wasmtime-provider`):
//! the module is compiled once, every evaluation gets a fresh `Store` and
//! instance (`_start` if exported, then `wapc_init`), the guest sees WASI
//! preview1 with nothing in it (no stdio, args, env, files or network), and an
//! epoch deadline interrupts a guest that runs too long. The deadline is
//! wall-clock and includes the time the guest spends blocked in host calls,
//! exactly as in policy-server, so host calls receive the deadline too.
//!
//! [`ReusedInstance`] keeps one instance for many calls: that is what
//! `kwctl bench` measures and what `imagegate bench` compares against.

pub mod admission;
pub mod session;
mod wasi;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use wasmtime::{
    Caller, Config, Engine, Extern, InstancePre, Linker, Memory, Module, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder, Trap, TypedFunc,
};

/// Default evaluation deadline, as policy-server's `--policy-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default cap on the guest's linear memory.
pub const DEFAULT_MEMORY_LIMIT: usize = 512 * 1024 * 1024;
/// Rejection message of policy-server when the deadline fires.
pub const TIMEOUT_MESSAGE: &str =
    "Policy execution interrupted because it exceeded the allowed execution time";

/// Granularity of the epoch ticker: the deadline fires within one tick.
const TICK: Duration = Duration::from_millis(10);
/// "No deadline": wasmtime adds the delta to the current epoch, so
/// `u64::MAX` would overflow.
const NEVER: u64 = u64::MAX / 2;

/// Epoch ticks covering `d` (at least one).
fn ticks(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(TICK.as_nanos()).max(1))
        .unwrap_or(NEVER)
        .min(NEVER)
}

/// One `__host_call` of the guest.
#[derive(Debug, Clone, Copy)]
pub struct HostCall<'a> {
    pub binding: &'a str,
    pub namespace: &'a str,
    pub operation: &'a str,
    pub payload: &'a [u8],
    /// When the current evaluation times out (None = never): a host call
    /// must not outlive it.
    pub deadline: Option<Instant>,
}

/// Answers the guest's `__host_call`s. Implemented by
/// [`crate::capabilities::Capabilities`]; tests plug in fakes.
pub trait HostCallbacks: Send + Sync {
    fn host_call(&self, call: &HostCall<'_>) -> Result<Vec<u8>, String>;
}

/// Limits applied to every evaluation.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `None` disables the deadline (like `kwctl run`).
    pub timeout: Option<Duration>,
    pub memory_limit: usize,
    /// Use wasmtime's on-disk compilation cache.
    pub compilation_cache: bool,
    /// Count the wasm instructions the guest executes (wasmtime fuel):
    /// `imagegate bench --instructions`. Slows the guest down; off elsewhere.
    pub count_instructions: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            timeout: Some(DEFAULT_TIMEOUT),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            compilation_cache: false,
            count_instructions: false,
        }
    }
}

/// Why a waPC call did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The epoch deadline fired.
    Timeout,
    /// The guest returned 0 (with its error text), trapped, or broke the ABI.
    GuestCallFailure(String),
    /// The module could not be instantiated or initialized.
    Init(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout => f.write_str(TIMEOUT_MESSAGE),
            CallError::GuestCallFailure(m) => write!(f, "Guest call failure: {m}"),
            CallError::Init(m) => write!(f, "Initialization failure: {m}"),
        }
    }
}

impl std::error::Error for CallError {}

/// Anything that can run a waPC operation: a fresh instance per call
/// ([`Policy`]) or one instance for many ([`ReusedInstance`]).
pub trait Invoke {
    fn invoke(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, CallError>;
}

/// Per-store state: limits and the waPC exchange buffers.
struct HostState {
    limits: GuestLimits,
    invocation: Option<(String, Vec<u8>)>,
    guest_response: Option<Vec<u8>>,
    guest_error: Option<String>,
    host_response: Option<Vec<u8>>,
    host_error: Option<String>,
    callbacks: Arc<dyn HostCallbacks>,
    deadline: Option<Instant>,
}

/// The store's resource limiter: [`StoreLimits`], plus the peak linear
/// memory and an error that names the memory limit. Without it a Rust guest
/// whose `memory.grow` fails aborts with an opaque `unreachable` trap; with it
/// the growth itself traps with "policy exceeded its memory limit of N MiB".
struct GuestLimits {
    inner: StoreLimits,
    memory_limit: usize,
    peak_memory: usize,
}

impl GuestLimits {
    fn new(memory_limit: usize) -> GuestLimits {
        GuestLimits {
            inner: StoreLimitsBuilder::new()
                .memory_size(memory_limit)
                .trap_on_grow_failure(true)
                .build(),
            memory_limit,
            peak_memory: 0,
        }
    }
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(wasmtime::Error::msg(memory_limit_message(
                self.memory_limit,
                desired,
            )));
        }
        let grown = self.inner.memory_growing(current, desired, maximum)?;
        if grown {
            self.peak_memory = self.peak_memory.max(desired);
        }
        Ok(grown)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// `policy exceeded its memory limit of 512 MiB (it asked for 520 MiB)`.
pub fn memory_limit_message(limit: usize, asked: usize) -> String {
    const MIB: usize = 1024 * 1024;
    format!(
        "policy exceeded its memory limit of {} MiB (it asked for {} MiB)",
        limit / MIB,
        asked.div_ceil(MIB)
    )
}

/// Increments the engine epoch every [`TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("imagegate-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        Ticker { stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A compiled policy module, ready to be instantiated.
pub struct Policy {
    engine: Engine,
    pre: InstancePre<HostState>,
    config: RuntimeConfig,
    callbacks: Arc<dyn HostCallbacks>,
    has_start: bool,
    _ticker: Arc<Ticker>,
}

impl Policy {
    /// Compiles `wasm` (binary, or WAT text when wasmtime can parse it) once.
    pub fn new(
        wasm: &[u8],
        config: RuntimeConfig,
        callbacks: Arc<dyn HostCallbacks>,
    ) -> anyhow::Result<Policy> {
        let mut wconfig = Config::new();
        wconfig.epoch_interruption(true);
        wconfig.consume_fuel(config.count_instructions);
        if config.compilation_cache {
            match wasmtime::Cache::new(wasmtime::CacheConfig::new()) {
                Ok(cache) => {
                    wconfig.cache(Some(cache));
                }
                Err(e) => eprintln!("warning: wasmtime compilation cache disabled: {e}"),
            }
        }
        let engine = wt(Engine::new(&wconfig)).context("cannot create the wasmtime engine")?;
        let module = wt(Module::new(&engine, wasm)).context("cannot compile the policy module")?;
        if module.get_export("__guest_call").is_none() {
            bail!("the policy module does not export `__guest_call`: not a waPC module");
        }
        if !matches!(
            module.get_export("memory"),
            Some(wasmtime::ExternType::Memory(_))
        ) {
            bail!("the policy module does not export its linear memory as `memory`");
        }
        let has_start = module.get_export("_start").is_some();
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wt(wasi::add_to_linker(&mut linker, &module)).context("cannot link WASI preview1")?;
        wt(add_wapc_to_linker(&mut linker)).context("cannot link the waPC host")?;
        let pre = wt(linker.instantiate_pre(&module))
            .context("the policy module imports functions the waPC host does not provide")?;
        let ticker = Arc::new(Ticker::start(engine.clone()));
        Ok(Policy {
            engine,
            pre,
            config,
            callbacks,
            has_start,
            _ticker: ticker,
        })
    }

    /// The same compiled module answering host calls with `callbacks` (e.g.
    /// one fixture's session) without recompiling.
    pub fn with_callbacks(&self, callbacks: Arc<dyn HostCallbacks>) -> Policy {
        Policy {
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            config: self.config.clone(),
            callbacks,
            has_start: self.has_start,
            _ticker: self._ticker.clone(),
        }
    }

    /// Reads and compiles a module file.
    pub fn from_file(
        path: &Path,
        config: RuntimeConfig,
        callbacks: Arc<dyn HostCallbacks>,
    ) -> anyhow::Result<Policy> {
        let wasm = std::fs::read(path)
            .with_context(|| format!("cannot read policy module {}", path.display()))?;
        Policy::new(&wasm, config, callbacks)
            .with_context(|| format!("cannot load policy module {}", path.display()))
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Creates a store and instance, runs `_start` (if any) and `wapc_init`.
    pub fn instantiate(&self) -> Result<ReusedInstance<'_>, CallError> {
        let mut store = self.new_store();
        self.arm_deadline(&mut store);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, CallError::Init))?;
        if self.has_start {
            let start = instance
                .get_typed_func::<(), ()>(&mut store, "_start")
                .map_err(|e| CallError::Init(format!("{e:#}")))?;
            if let Err(e) = start.call(&mut store, ()) {
                // A WASI `proc_exit(0)` from `_start` is a normal exit.
                let clean_exit = e.downcast_ref::<wasi::Exit>().is_some_and(|x| x.0 == 0);
                if !clean_exit {
                    return Err(classify(e, CallError::Init));
                }
            }
        }
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "wapc_init") {
            init.call(&mut store, ())
                .map_err(|e| classify(e, CallError::Init))?;
        }
        let guest_call = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, "__guest_call")
            .map_err(|e| CallError::Init(format!("{e:#}")))?;
        Ok(ReusedInstance {
            policy: self,
            store,
            guest_call,
        })
    }

    fn new_store(&self) -> Store<HostState> {
        let state = HostState {
            limits: GuestLimits::new(self.config.memory_limit),
            invocation: None,
            guest_response: None,
            guest_error: None,
            host_response: None,
            host_error: None,
            callbacks: self.callbacks.clone(),
            deadline: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        if self.config.count_instructions {
            // Counting, not limiting: the epoch deadline bounds the guest.
            let _ = store.set_fuel(u64::MAX);
        }
        store
    }

    /// Starts the evaluation clock for `store`.
    fn arm_deadline(&self, store: &mut Store<HostState>) {
        match self.config.timeout {
            Some(timeout) => {
                store.set_epoch_deadline(ticks(timeout));
                store.epoch_deadline_trap();
                store.data_mut().deadline = Some(Instant::now() + timeout);
            }
            None => {
                store.set_epoch_deadline(NEVER);
                store.data_mut().deadline = None;
            }
        }
    }
}

impl Invoke for &Policy {
    /// policy-server semantics: a fresh instance for this single call.
    fn invoke(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, CallError> {
        let started = Instant::now();
        let mut instance = self.instantiate()?;
        // The deadline covers instantiation and the call together.
        instance.call_with_start(operation, payload, started)
    }
}

/// One instance used for many calls (`kwctl bench` semantics). After a
/// timeout the instance is rebuilt, as policy-evaluator resets its stack: an
/// interrupted guest may hold locks or half-written state.
pub struct ReusedInstance<'p> {
    policy: &'p Policy,
    store: Store<HostState>,
    guest_call: TypedFunc<(i32, i32), i32>,
}

impl ReusedInstance<'_> {
    fn call_with_start(
        &mut self,
        operation: &str,
        payload: &[u8],
        started: Instant,
    ) -> Result<Vec<u8>, CallError> {
        if let Some(timeout) = self.policy.config.timeout {
            let left = timeout.saturating_sub(started.elapsed());
            self.store.set_epoch_deadline(ticks(left));
            self.store.epoch_deadline_trap();
            self.store.data_mut().deadline = Some(started + timeout);
        }
        let (op_len, msg_len) = match (i32::try_from(operation.len()), i32::try_from(payload.len()))
        {
            (Ok(o), Ok(m)) => (o, m),
            _ => {
                return Err(CallError::GuestCallFailure(
                    "payload too large for a wasm32 guest".into(),
                ))
            }
        };
        {
            let st = self.store.data_mut();
            st.invocation = Some((operation.to_string(), payload.to_vec()));
            st.guest_response = None;
            st.guest_error = None;
            st.host_response = None;
            st.host_error = None;
        }
        let result = self
            .guest_call
            .call(&mut self.store, (op_len, msg_len))
            .map_err(|e| classify(e, CallError::GuestCallFailure));
        let st = self.store.data_mut();
        st.invocation = None;
        let out = match result {
            Ok(1) => st.guest_response.take().ok_or_else(|| {
                CallError::GuestCallFailure(
                    "No error message OR response set for call success".into(),
                )
            }),
            Ok(_) => Err(CallError::GuestCallFailure(
                st.guest_error
                    .take()
                    .unwrap_or_else(|| "No error message set for call failure".into()),
            )),
            Err(e) => Err(e),
        };
        if out == Err(CallError::Timeout) {
            self.rebuild();
        }
        out
    }

    /// Wasm instructions executed in this instance so far (instantiation,
    /// `wapc_init` and every call), or `None` unless the policy was loaded
    /// with [`RuntimeConfig::count_instructions`]. Deterministic, unlike time.
    pub fn instructions(&self) -> Option<u64> {
        self.policy
            .config
            .count_instructions
            .then(|| u64::MAX - self.store.get_fuel().unwrap_or(u64::MAX))
    }

    /// The largest linear memory this instance has had, in bytes.
    pub fn peak_memory(&self) -> usize {
        self.store.data().limits.peak_memory
    }

    fn rebuild(&mut self) {
        match self.policy.instantiate() {
            Ok(fresh) => {
                self.store = fresh.store;
                self.guest_call = fresh.guest_call;
            }
            Err(e) => eprintln!("warning: cannot reset the policy instance after a timeout: {e}"),
        }
    }
}

impl Invoke for ReusedInstance<'_> {
    fn invoke(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, CallError> {
        self.call_with_start(operation, payload, Instant::now())
    }
}

/// Maps a wasmtime error to [`CallError::Timeout`] when it is the epoch
/// interruption, to `other` otherwise.
fn classify(e: wasmtime::Error, other: fn(String) -> CallError) -> CallError {
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        CallError::Timeout
    } else {
        other(format!("{e:#}"))
    }
}

/// wasmtime 48 has its own error type; keep the full chain as text.
fn wt<T>(r: wasmtime::Result<T>) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("{e:#}"))
}

fn guest_abi_error(message: String) -> wasmtime::Error {
    wasmtime::Error::msg(message)
}

fn memory(caller: &mut Caller<'_, HostState>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(guest_abi_error("Cannot find 'memory' export".into())),
    }
}

fn read_bytes(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let mut buf = vec![0u8; len as u32 as usize];
    mem.read(&*caller, ptr as u32 as usize, &mut buf)
        .map_err(|_| guest_abi_error(format!("guest buffer {ptr}+{len} is out of bounds")))?;
    Ok(buf)
}

fn read_string(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> wasmtime::Result<String> {
    String::from_utf8(read_bytes(caller, ptr, len)?)
        .map_err(|e| guest_abi_error(format!("guest string is not UTF-8: {e}")))
}

fn write_bytes(caller: &mut Caller<'_, HostState>, ptr: i32, data: &[u8]) -> wasmtime::Result<()> {
    let mem = memory(caller)?;
    mem.write(&mut *caller, ptr as u32 as usize, data)
        .map_err(|_| {
            guest_abi_error(format!(
                "guest buffer at {ptr} is too small or out of bounds"
            ))
        })
}

fn len_i32(len: usize) -> wasmtime::Result<i32> {
    i32::try_from(len)
        .map_err(|_| guest_abi_error("host buffer too large for a wasm32 guest".into()))
}

/// `name(ptr, len)`: the guest hands the host a buffer (its response or its
/// error), which `store` keeps.
fn add_guest_buffer(
    linker: &mut Linker<HostState>,
    name: &str,
    store: fn(&mut HostState, Vec<u8>),
) -> wasmtime::Result<()> {
    linker.func_wrap(
        "wapc",
        name,
        move |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let bytes = read_bytes(&mut caller, ptr, len)?;
            store(caller.data_mut(), bytes);
            Ok(())
        },
    )?;
    Ok(())
}

/// `name_len()` then `name(ptr)`: the guest asks how long the last host
/// call's answer (or error) is, then has it copied into its memory.
fn add_host_buffer(
    linker: &mut Linker<HostState>,
    name: &str,
    buffer: fn(&HostState) -> Option<&[u8]>,
) -> wasmtime::Result<()> {
    linker.func_wrap(
        "wapc",
        &format!("{name}_len"),
        move |caller: Caller<'_, HostState>| -> wasmtime::Result<i32> {
            len_i32(buffer(caller.data()).map_or(0, <[u8]>::len))
        },
    )?;
    linker.func_wrap(
        "wapc",
        name,
        move |mut caller: Caller<'_, HostState>, ptr: i32| -> wasmtime::Result<()> {
            if let Some(bytes) = buffer(caller.data()).map(<[u8]>::to_vec) {
                write_bytes(&mut caller, ptr, &bytes)?;
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// The nine `wapc` imports.
fn add_wapc_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "wapc",
        "__guest_request",
        |mut caller: Caller<'_, HostState>, op_ptr: i32, msg_ptr: i32| -> wasmtime::Result<()> {
            let (op, msg) = caller.data().invocation.clone().ok_or_else(|| {
                guest_abi_error("__guest_request called outside an invocation".into())
            })?;
            write_bytes(&mut caller, op_ptr, op.as_bytes())?;
            write_bytes(&mut caller, msg_ptr, &msg)
        },
    )?;
    add_guest_buffer(linker, "__guest_response", |st, bytes| {
        st.guest_response = Some(bytes)
    })?;
    add_guest_buffer(linker, "__guest_error", |st, bytes| {
        st.guest_error = Some(String::from_utf8_lossy(&bytes).into_owned())
    })?;
    linker.func_wrap(
        "wapc",
        "__host_call",
        |mut caller: Caller<'_, HostState>,
         bd_ptr: i32,
         bd_len: i32,
         ns_ptr: i32,
         ns_len: i32,
         op_ptr: i32,
         op_len: i32,
         msg_ptr: i32,
         msg_len: i32|
         -> wasmtime::Result<i32> {
            let binding = read_string(&mut caller, bd_ptr, bd_len)?;
            let namespace = read_string(&mut caller, ns_ptr, ns_len)?;
            let operation = read_string(&mut caller, op_ptr, op_len)?;
            let payload = read_bytes(&mut caller, msg_ptr, msg_len)?;
            let callbacks = caller.data().callbacks.clone();
            let deadline = caller.data().deadline;
            let result = callbacks.host_call(&HostCall {
                binding: &binding,
                namespace: &namespace,
                operation: &operation,
                payload: &payload,
                deadline,
            });
            // Time spent in the host counts: an answer that comes after the
            // deadline must not let the guest finish before the next epoch tick.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(wasmtime::Error::new(Trap::Interrupt));
            }
            let st = caller.data_mut();
            st.host_response = None;
            st.host_error = None;
            Ok(match result {
                Ok(bytes) => {
                    st.host_response = Some(bytes);
                    1
                }
                Err(message) => {
                    st.host_error = Some(message);
                    0
                }
            })
        },
    )?;
    add_host_buffer(linker, "__host_response", |st| st.host_response.as_deref())?;
    add_host_buffer(linker, "__host_error", |st| {
        st.host_error.as_deref().map(str::as_bytes)
    })?;
    linker.func_wrap(
        "wapc",
        "__console_log",
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let bytes = read_bytes(&mut caller, ptr, len)?;
            eprintln!("[policy console] {}", String::from_utf8_lossy(&bytes));
            Ok(())
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl HostCallbacks for Echo {
        fn host_call(&self, call: &HostCall<'_>) -> Result<Vec<u8>, String> {
            let route = format!("{}|{}|{}|", call.binding, call.namespace, call.operation);
            Ok([route.as_bytes(), call.payload].concat())
        }
    }

    /// A guest whose only handler answers with its own operation name and
    /// payload concatenated, or fails when the payload is empty.
    const ECHO: &str = r#"
    (module
      (import "wapc" "__guest_request" (func $req (param i32 i32)))
      (import "wapc" "__guest_response" (func $resp (param i32 i32)))
      (import "wapc" "__guest_error" (func $err (param i32 i32)))
      (memory (export "memory") 1)
      (data (i32.const 512) "empty payload")
      (func (export "__guest_call") (param $op i32) (param $msg i32) (result i32)
        (call $req (i32.const 0) (local.get $op))
        (if (i32.eqz (local.get $msg))
          (then (call $err (i32.const 512) (i32.const 13)) (return (i32.const 0))))
        (call $resp (i32.const 0) (i32.add (local.get $op) (local.get $msg)))
        (i32.const 1))
      (func (export "wapc_init")))
    "#;

    fn policy(wat: &str, timeout: Option<Duration>) -> Policy {
        let wasm = wat::parse_str(wat).unwrap();
        let config = RuntimeConfig {
            timeout,
            ..Default::default()
        };
        Policy::new(&wasm, config, Arc::new(Echo)).unwrap()
    }

    #[test]
    fn guest_request_writes_operation_then_payload() {
        let p = policy(ECHO, None);
        assert_eq!((&p).invoke("op", b"xyz").unwrap(), b"opxyz");
    }

    #[test]
    fn guest_error_becomes_guest_call_failure() {
        let p = policy(ECHO, None);
        assert_eq!(
            (&p).invoke("op", b"").unwrap_err(),
            CallError::GuestCallFailure("empty payload".into())
        );
    }

    #[test]
    fn policy_can_be_shared_across_threads() {
        // `serve` evaluates concurrently with one compiled policy.
        fn shared<T: Send + Sync>() {}
        shared::<Policy>();
        let p = Arc::new(policy(ECHO, Some(Duration::from_secs(5))));
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let p = p.clone();
                std::thread::spawn(move || (&*p).invoke("t", format!("{n}").as_bytes()).unwrap())
            })
            .collect();
        for (n, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), format!("t{n}").into_bytes());
        }
    }

    #[test]
    fn no_timeout_means_no_deadline() {
        let p = policy(ECHO, None);
        let mut i = p.instantiate().unwrap();
        assert_eq!(i.invoke("a", b"b").unwrap(), b"ab");
        assert_eq!((&p).invoke("a", b"b").unwrap(), b"ab");
        assert_eq!(ticks(Duration::ZERO), 1);
        assert_eq!(ticks(Duration::from_millis(15)), 2);
        assert_eq!(ticks(Duration::MAX), NEVER);
    }

    #[test]
    fn reused_instance_answers_many_calls() {
        let p = policy(ECHO, Some(Duration::from_secs(5)));
        let mut i = p.instantiate().unwrap();
        for n in 0..3 {
            let payload = format!("call{n}");
            let out = i.invoke("x", payload.as_bytes()).unwrap();
            assert_eq!(out, format!("x{payload}").into_bytes());
        }
    }

    #[test]
    fn module_without_guest_call_is_refused() {
        let wasm = wat::parse_str(r#"(module (memory (export "memory") 1))"#).unwrap();
        let err = Policy::new(&wasm, RuntimeConfig::default(), Arc::new(Echo))
            .err()
            .unwrap();
        assert!(err.to_string().contains("__guest_call"), "{err}");
    }

    #[test]
    fn unknown_import_is_refused_at_load() {
        let wasm = wat::parse_str(
            r#"(module (import "env" "nope" (func)) (memory (export "memory") 1)
                (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))"#,
        )
        .unwrap();
        let err = Policy::new(&wasm, RuntimeConfig::default(), Arc::new(Echo))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("imports"), "{err:#}");
    }

    #[test]
    fn memory_limit_is_named_not_an_opaque_trap() {
        // Grows its memory by 64 pages (4 MiB) per call until it traps.
        let wat = r#"(module (memory (export "memory") 1)
            (func (export "__guest_call") (param i32 i32) (result i32)
              (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 64)) (i32.const -1))))
              (i32.const 1)))"#;
        let config = RuntimeConfig {
            timeout: None,
            memory_limit: 16 * 1024 * 1024,
            ..Default::default()
        };
        let p = Policy::new(&wat::parse_str(wat).unwrap(), config, Arc::new(Echo)).unwrap();
        let mut instance = p.instantiate().unwrap();
        assert_eq!(instance.peak_memory(), 64 * 1024, "one page at start");
        let err = instance.invoke("validate", b"{}").unwrap_err();
        let CallError::GuestCallFailure(message) = err else {
            panic!("{err:?}")
        };
        assert!(
            message.contains("policy exceeded its memory limit of 16 MiB (it asked for 17 MiB)"),
            "{message}"
        );
        assert_eq!(instance.peak_memory(), 193 * 64 * 1024, "1 + 3 x 64 pages");
    }

    #[test]
    fn success_without_response_is_an_error() {
        let p = policy(
            r#"(module (memory (export "memory") 1)
                (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))"#,
            None,
        );
        assert_eq!(
            (&p).invoke("validate", b"{}").unwrap_err(),
            CallError::GuestCallFailure("No error message OR response set for call success".into())
        );
    }
}
