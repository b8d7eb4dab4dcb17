//! TEMPORARY minimal waPC caller used by `annotate` to ask a module for its
//! `protocol_version` until `runtime.rs` (branch `runtime`) lands on main;
//! then this file goes away and annotate calls the runtime with deny-all
//! host callbacks. It links WASI preview1 with an empty context and the waPC
//! imports; every `__host_call` fails, as in kwctl's channel-less context.

use anyhow::{anyhow, bail, Result};
use wasmtime::{Caller, Engine, Extern, Linker, Memory, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::WasiCtxBuilder;

struct State {
    wasi: WasiP1Ctx,
    operation: Vec<u8>,
    payload: Vec<u8>,
    response: Option<Vec<u8>>,
    error: Option<String>,
}

fn memory(caller: &mut Caller<'_, State>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::Error::msg("the module does not export `memory`")),
    }
}

fn read(caller: &mut Caller<'_, State>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller)?;
    let mut buf = vec![0; usize::try_from(len)?];
    mem.read(&*caller, usize::try_from(ptr)?, &mut buf)?;
    Ok(buf)
}

/// wasmtime 48 (without its `anyhow` feature) has its own error type.
fn ctx<T>(r: wasmtime::Result<T>, what: &str) -> Result<T> {
    r.map_err(|e| anyhow!("{what}: {e:?}"))
}

/// The WASI preview1 and waPC imports; host calls always fail.
fn linker(engine: &Engine) -> wasmtime::Result<Linker<State>> {
    let mut linker: Linker<State> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)?;
    linker.func_wrap(
        "wapc",
        "__guest_request",
        |mut c: Caller<'_, State>, op_ptr: i32, msg_ptr: i32| {
            let mem = memory(&mut c)?;
            let (op, msg) = (c.data().operation.clone(), c.data().payload.clone());
            mem.write(&mut c, usize::try_from(op_ptr)?, &op)?;
            mem.write(&mut c, usize::try_from(msg_ptr)?, &msg)?;
            Ok(())
        },
    )?;
    linker.func_wrap(
        "wapc",
        "__guest_response",
        |mut c: Caller<'_, State>, ptr: i32, len: i32| {
            c.data_mut().response = Some(read(&mut c, ptr, len)?);
            Ok(())
        },
    )?;
    linker.func_wrap(
        "wapc",
        "__guest_error",
        |mut c: Caller<'_, State>, ptr: i32, len: i32| {
            c.data_mut().error =
                Some(String::from_utf8_lossy(&read(&mut c, ptr, len)?).into_owned());
            Ok(())
        },
    )?;
    linker.func_wrap(
        "wapc",
        "__host_call",
        |_: Caller<'_, State>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| 0i32,
    )?;
    linker.func_wrap("wapc", "__host_response_len", || 0i32)?;
    linker.func_wrap("wapc", "__host_response", |_: i32| {})?;
    linker.func_wrap("wapc", "__host_error_len", || 0i32)?;
    linker.func_wrap("wapc", "__host_error", |_: i32| {})?;
    linker.func_wrap("wapc", "__console_log", |_: i32, _: i32| {})?;
    Ok(linker)
}

/// Instantiates, initializes (`_start`, `wapc_init`) and runs `__guest_call`.
fn invoke(engine: &Engine, module: &Module, state: State) -> wasmtime::Result<(i32, State)> {
    let mut store = Store::new(engine, state);
    let instance = linker(engine)?.instantiate(&mut store, module)?;
    for start in ["_start", "wapc_init"] {
        if let Some(f) = instance.get_func(&mut store, start) {
            f.typed::<(), ()>(&store)?.call(&mut store, ())?;
        }
    }
    let guest_call = instance.get_typed_func::<(i32, i32), i32>(&mut store, "__guest_call")?;
    let lens = (
        i32::try_from(store.data().operation.len())?,
        i32::try_from(store.data().payload.len())?,
    );
    let ok = guest_call.call(&mut store, lens)?;
    Ok((ok, store.into_data()))
}

/// Calls `operation` with `payload` on a fresh instance of `wasm`.
pub fn call(wasm: &[u8], operation: &str, payload: &[u8]) -> Result<Vec<u8>> {
    let engine = Engine::default();
    let module = ctx(Module::new(&engine, wasm), "cannot compile the module")?;
    let state = State {
        wasi: WasiCtxBuilder::new().build_p1(),
        operation: operation.as_bytes().to_vec(),
        payload: payload.to_vec(),
        response: None,
        error: None,
    };
    let (ok, state) = ctx(
        invoke(&engine, &module, state),
        &format!("cannot call {operation}"),
    )?;
    match (ok, state.response, state.error) {
        (1, Some(response), _) => Ok(response),
        (_, _, Some(error)) => bail!("{operation} failed: {error}"),
        _ => bail!("{operation} failed without an error message"),
    }
}
