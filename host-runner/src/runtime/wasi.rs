//! WASI preview1 with nothing in it, as policy-server gives a policy: no
//! stdio, args, environment, files or sockets; clocks and randomness work.
//!
//! Rust's `wasm32-wasip1` std imports a handful of these functions (imagegate's
//! module: `random_get`, `environ_*`, `fd_write`, `proc_exit`). They are
//! answered here directly rather than through `wasmtime-wasi`, which would
//! build a full WASI implementation (and wasmtime's component model) into
//! every host for functions that, in an empty context, only ever say "none".
//! Any other preview1 import a module declares answers an error (`EBADF`,
//! `ENOSYS`), so a policy compiled against more of WASI still loads and sees
//! the same "nothing here" an empty wasmtime-wasi context gives.

use std::fs::File;
use std::io::Read as _;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Extern, FuncType, Linker, Module, Val, ValType};

/// The module name of WASI preview1 imports.
const WASI: &str = "wasi_snapshot_preview1";

/// preview1 errno values.
const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const EIO: i32 = 29;
const ENOSYS: i32 = 52;

/// `proc_exit(code)`: ends the guest's execution with `code` (a trap that
/// carries it, as wasmtime-wasi's `I32Exit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the policy exited with status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// The preview1 functions implemented here; every other one `module`
/// imports gets [`unsupported`].
const IMPLEMENTED: [&str; 9] = [
    "args_sizes_get",
    "args_get",
    "environ_sizes_get",
    "environ_get",
    "clock_time_get",
    "random_get",
    "fd_write",
    "sched_yield",
    "proc_exit",
];

/// Adds preview1 to `linker` for `module`'s imports.
pub fn add_to_linker<T: 'static>(linker: &mut Linker<T>, module: &Module) -> wasmtime::Result<()> {
    // Nothing to list: zero arguments and zero variables, no bytes.
    for (sizes, values) in [
        ("args_sizes_get", "args_get"),
        ("environ_sizes_get", "environ_get"),
    ] {
        linker.func_wrap(
            WASI,
            sizes,
            |mut caller: Caller<'_, T>, count: i32, bytes: i32| -> i32 {
                errno(
                    write(&mut caller, count, &0u32.to_le_bytes())
                        .and_then(|()| write(&mut caller, bytes, &0u32.to_le_bytes())),
                )
            },
        )?;
        linker.func_wrap(WASI, values, |_: i32, _: i32| -> i32 { SUCCESS })?;
    }
    linker.func_wrap(
        WASI,
        "clock_time_get",
        |mut caller: Caller<'_, T>, id: i32, _precision: i64, out: i32| -> i32 {
            let nanos = match id {
                0 => SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
                1 => monotonic_origin().elapsed().as_nanos(),
                _ => return EINVAL,
            };
            let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
            errno(write(&mut caller, out, &nanos.to_le_bytes()))
        },
    )?;
    linker.func_wrap(
        WASI,
        "random_get",
        |mut caller: Caller<'_, T>, buf: i32, len: i32| -> i32 {
            // In chunks: the guest chooses `len`, the host's memory is not its to size.
            let mut chunk = [0u8; 256];
            let (start, len) = (buf as u32, len as u32);
            let mut done = 0u32;
            while done < len {
                let n = (len - done).min(chunk.len() as u32);
                let bytes = &mut chunk[..n as usize];
                if random(bytes).is_err() {
                    return EIO;
                }
                if write(&mut caller, start.wrapping_add(done) as i32, bytes).is_err() {
                    return EFAULT;
                }
                done += n;
            }
            SUCCESS
        },
    )?;
    // stdout and stderr are sinks (the guest must never write to the host's
    // own output); every other descriptor does not exist.
    linker.func_wrap(
        WASI,
        "fd_write",
        |mut caller: Caller<'_, T>, fd: i32, iovs: i32, count: i32, written: i32| -> i32 {
            if fd != 1 && fd != 2 {
                return EBADF;
            }
            let mut total = 0u32;
            for i in 0..count as u32 {
                let mut iov = [0u8; 8];
                let at = (iovs as u32).wrapping_add(i.wrapping_mul(8));
                if read(&mut caller, at as i32, &mut iov).is_err() {
                    return EFAULT;
                }
                let len = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                total = total.saturating_add(len);
            }
            errno(write(&mut caller, written, &total.to_le_bytes()))
        },
    )?;
    linker.func_wrap(WASI, "sched_yield", || -> i32 { SUCCESS })?;
    linker.func_wrap(WASI, "proc_exit", |code: i32| -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(Exit(code)))
    })?;
    for import in module.imports() {
        let wasmtime::ExternType::Func(ty) = import.ty() else {
            continue;
        };
        if import.module() != WASI || IMPLEMENTED.contains(&import.name()) {
            continue;
        }
        unsupported(linker, import.name(), ty)?;
    }
    Ok(())
}

/// A preview1 function this host does not implement. One that returns an
/// errno says `EBADF` for descriptors and paths (there are none: that also
/// ends wasi-libc's scan for preopened directories) and `ENOSYS` otherwise;
/// any other traps, naming itself.
fn unsupported<T: 'static>(
    linker: &mut Linker<T>,
    name: &str,
    ty: FuncType,
) -> wasmtime::Result<()> {
    let returns_errno =
        ty.results().len() == 1 && matches!(ty.results().next(), Some(ValType::I32));
    let errno = if name.starts_with("fd_") || name.starts_with("path_") {
        EBADF
    } else {
        ENOSYS
    };
    let message = format!("the host does not provide WASI function {name}");
    linker.func_new(WASI, name, ty, move |_, _, results: &mut [Val]| {
        if returns_errno {
            results[0] = Val::I32(errno);
            Ok(())
        } else {
            Err(wasmtime::Error::msg(message.clone()))
        }
    })?;
    Ok(())
}

/// The origin of the guest's monotonic clock (any fixed instant will do).
fn monotonic_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// The OS's randomness (the kernel's CSPRNG), one file kept open.
fn random(bytes: &mut [u8]) -> std::io::Result<()> {
    static URANDOM: OnceLock<std::io::Result<File>> = OnceLock::new();
    match URANDOM.get_or_init(|| File::open("/dev/urandom")) {
        Ok(file) => (&*file).read_exact(bytes),
        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
    }
}

fn errno(result: Result<(), ()>) -> i32 {
    match result {
        Ok(()) => SUCCESS,
        Err(()) => EFAULT,
    }
}

fn memory<T>(caller: &mut Caller<'_, T>) -> Result<wasmtime::Memory, ()> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(()),
    }
}

fn write<T>(caller: &mut Caller<'_, T>, ptr: i32, bytes: &[u8]) -> Result<(), ()> {
    let mem = memory(caller)?;
    mem.write(&mut *caller, ptr as u32 as usize, bytes)
        .map_err(|_| ())
}

fn read<T>(caller: &mut Caller<'_, T>, ptr: i32, bytes: &mut [u8]) -> Result<(), ()> {
    let mem = memory(caller)?;
    mem.read(&*caller, ptr as u32 as usize, bytes)
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Engine, Store};

    /// A module that imports the functions under test and exports one
    /// function per case, each returning an errno (or a value it read back).
    const GUEST: &str = r#"(module
      (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "random_get" (func $rand (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "env") (result i32)
        (i32.store (i32.const 0) (i32.const 7)) (i32.store (i32.const 4) (i32.const 7))
        (drop (call $env (i32.const 0) (i32.const 4)))
        (i32.add (i32.load (i32.const 0)) (i32.load (i32.const 4))))
      (func (export "random") (result i32)
        (call $rand (i32.const 64) (i32.const 1000)))
      (func (export "random_out_of_bounds") (result i32)
        (call $rand (i32.const 65000) (i32.const 1000)))
      (func (export "write_stdout") (result i32)
        (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 5))
        (i32.store (i32.const 8) (i32.const 100)) (i32.store (i32.const 12) (i32.const 6))
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 16)))
        (i32.load (i32.const 16)))
      (func (export "write_fd3") (result i32)
        (call $write (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 16)))
      (func (export "clock_bad_id") (result i32)
        (call $clock (i32.const 9) (i64.const 0) (i32.const 0)))
      (func (export "clock_realtime_after_2020") (result i32)
        (drop (call $clock (i32.const 0) (i64.const 0) (i32.const 0)))
        (i64.gt_u (i64.load (i32.const 0)) (i64.const 1577836800000000000)))
      (func (export "close") (result i32) (call $close (i32.const 3)))
      (func (export "poll") (result i32)
        (call $poll (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
      (func (export "exit") (result i32) (call $exit (i32.const 3)) (i32.const 0)))"#;

    fn call(
        store: &mut Store<()>,
        instance: &wasmtime::Instance,
        name: &str,
    ) -> wasmtime::Result<i32> {
        instance
            .get_typed_func::<(), i32>(&mut *store, name)?
            .call(&mut *store, ())
    }

    fn guest() -> (Store<()>, wasmtime::Instance) {
        let engine = Engine::default();
        let module = Module::new(&engine, wat::parse_str(GUEST).unwrap()).unwrap();
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker, &module).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        (store, instance)
    }

    #[test]
    fn the_context_is_empty_and_stdio_is_a_sink() {
        let (mut s, i) = guest();
        assert_eq!(
            call(&mut s, &i, "env").unwrap(),
            0,
            "no variables, no bytes"
        );
        assert_eq!(
            call(&mut s, &i, "write_stdout").unwrap(),
            11,
            "both buffers taken"
        );
        assert_eq!(call(&mut s, &i, "write_fd3").unwrap(), EBADF);
        assert_eq!(call(&mut s, &i, "close").unwrap(), EBADF, "no descriptors");
        assert_eq!(call(&mut s, &i, "poll").unwrap(), ENOSYS);
    }

    #[test]
    fn randomness_and_clocks_work_and_stay_in_bounds() {
        let (mut s, i) = guest();
        let memory = i.get_memory(&mut s, "memory").unwrap();
        assert_eq!(call(&mut s, &i, "random").unwrap(), SUCCESS);
        let first = memory.data(&s)[64..1064].to_vec();
        assert_eq!(call(&mut s, &i, "random").unwrap(), SUCCESS);
        assert_ne!(first, memory.data(&s)[64..1064], "fresh bytes each call");
        assert!(first.iter().any(|&b| b != 0));
        assert_eq!(call(&mut s, &i, "random_out_of_bounds").unwrap(), EFAULT);
        assert_eq!(call(&mut s, &i, "clock_bad_id").unwrap(), EINVAL);
        assert_eq!(call(&mut s, &i, "clock_realtime_after_2020").unwrap(), 1);
    }

    #[test]
    fn proc_exit_ends_the_call_with_its_status() {
        let (mut s, i) = guest();
        let err = call(&mut s, &i, "exit").unwrap_err();
        assert_eq!(err.downcast_ref::<Exit>(), Some(&Exit(3)), "{err:#}");
    }
}
