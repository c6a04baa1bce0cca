//! The host side of the Proxy-Wasm ABI 0.2.1: every `env.proxy_*` import a filter may
//! use, bound into a wasmtime `Linker`, plus the few WASI preview-1 functions that
//! filters built for `wasm32-wasip1` import (stderr, clock, random, empty environment).
//!
//! Guest memory is checked on every access: a pointer or length outside the filter's
//! memory is a fault that traps the callback (the request fails, the instance is
//! discarded), not a status the filter could ignore — a filter that hands the host
//! garbage pointers has corrupted itself. gRPC calls, shared queues and foreign
//! functions answer `Unimplemented`; any other unknown import traps when called.
//!
//! Not here: which callback runs when (see `vm` and `chain`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Extern, Linker};

use crate::abi::{self, BufferType, MapType, Status};
use crate::state::{GuestExports, HostState, LocalResponse, PendingCall};

/// Why a host call stopped the filter.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error("filter passed a pointer outside its memory ({ptr:#x}+{len})")]
    BadPointer { ptr: u32, len: u32 },
    #[error("filter exports no memory")]
    NoMemory,
    #[error("filter exports no allocator (proxy_on_memory_allocate or malloc)")]
    NoAllocator,
    #[error("filter allocator returned a bad address")]
    BadAllocation,
    #[error("filter exited with code {0}")]
    Exit(i32),
    #[error("filter handed the host {0} bytes, more than allowed")]
    TooLarge(usize),
}

type Ctx<'a> = Caller<'a, HostState>;
type R = wasmtime::Result<i32>;

fn ok(s: Status) -> R {
    Ok(s as i32)
}

fn exports(c: &mut Ctx<'_>) -> wasmtime::Result<GuestExports> {
    if let Some(g) = c.data().guest.clone() {
        return Ok(g);
    }
    let memory = match c.get_export("memory") {
        Some(Extern::Memory(m)) => m,
        _ => return Err(Fault::NoMemory.into()),
    };
    let alloc = ["proxy_on_memory_allocate", "malloc"]
        .iter()
        .find_map(|n| c.get_export(n)?.into_func()?.typed::<i32, i32>(&*c).ok());
    let g = GuestExports { memory, alloc };
    c.data_mut().guest = Some(g.clone());
    Ok(g)
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub fn read(c: &mut Ctx<'_>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let (p, l) = (ptr as u32, len as u32);
    if l as usize > c.data().max_host_bytes {
        return Err(Fault::TooLarge(l as usize).into());
    }
    let g = exports(c)?;
    let data = g.memory.data(&*c);
    let start = p as usize;
    let end = start
        .checked_add(l as usize)
        .ok_or(Fault::BadPointer { ptr: p, len: l })?;
    data.get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Fault::BadPointer { ptr: p, len: l }.into())
}

fn read_str(c: &mut Ctx<'_>, ptr: i32, len: i32) -> wasmtime::Result<String> {
    Ok(String::from_utf8_lossy(&read(c, ptr, len)?).into_owned())
}

/// Writes `bytes` at `ptr` (which must lie inside guest memory).
pub fn write(c: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> wasmtime::Result<()> {
    let g = exports(c)?;
    let p = ptr as u32;
    let bad = || Fault::BadPointer {
        ptr: p,
        len: bytes.len() as u32,
    };
    let start = p as usize;
    let end = start.checked_add(bytes.len()).ok_or_else(bad)?;
    let data = g.memory.data_mut(&mut *c);
    data.get_mut(start..end)
        .ok_or_else(bad)?
        .copy_from_slice(bytes);
    Ok(())
}

fn write_u32(c: &mut Ctx<'_>, ptr: i32, v: u32) -> wasmtime::Result<()> {
    write(c, ptr, &v.to_le_bytes())
}

/// Hands `bytes` to the filter: allocates with its allocator, copies, and stores the
/// address and size at `ret_ptr` and `ret_size`.
/// The usual answer of a getter: the value handed over with `Ok`, or `NotFound`.
fn answer(c: &mut Ctx<'_>, value: Option<&[u8]>, ret_ptr: i32, ret_size: i32) -> R {
    match value {
        Some(v) => {
            hand_over(c, v, ret_ptr, ret_size)?;
            ok(Status::Ok)
        }
        None => ok(Status::NotFound),
    }
}

/// What a header-map call does with the named header.
#[derive(Clone, Copy)]
enum HeaderEdit {
    Replace,
    Add,
    Remove,
}

/// The shared body of the replace/add/remove header-map calls: the name is
/// lower-cased, the value (absent for `Remove`) read from guest memory.
fn edit_header(c: &mut Ctx<'_>, t: i32, key: (i32, i32), value: (i32, i32), edit: HeaderEdit) -> R {
    let Some(t) = MapType::from_raw(t) else {
        return ok(Status::BadArgument);
    };
    let key = read_str(c, key.0, key.1)?.to_ascii_lowercase();
    let value = match edit {
        HeaderEdit::Remove => String::new(),
        HeaderEdit::Replace | HeaderEdit::Add => read_str(c, value.0, value.1)?,
    };
    let Some(m) = c.data_mut().map_mut(t) else {
        return ok(Status::NotFound);
    };
    if matches!(edit, HeaderEdit::Replace | HeaderEdit::Remove) {
        m.retain(|(n, _)| *n != key);
    }
    if matches!(edit, HeaderEdit::Replace | HeaderEdit::Add) {
        m.push((key, value));
    }
    ok(Status::Ok)
}

fn hand_over(c: &mut Ctx<'_>, bytes: &[u8], ret_ptr: i32, ret_size: i32) -> wasmtime::Result<()> {
    let g = exports(c)?;
    let addr = if bytes.is_empty() {
        0
    } else {
        let alloc = g.alloc.ok_or(Fault::NoAllocator)?;
        let addr = alloc.call(&mut *c, bytes.len() as i32)?;
        if addr == 0 {
            return Err(Fault::BadAllocation.into());
        }
        write(c, addr, bytes)?;
        addr
    };
    write_u32(c, ret_ptr, addr as u32)?;
    write_u32(c, ret_size, bytes.len() as u32)
}

fn decode_pairs(raw: &[u8]) -> Option<Vec<(String, String)>> {
    let pairs = abi::decode_map(raw).ok()?;
    Some(
        pairs
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k).to_ascii_lowercase(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect(),
    )
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Binds every host function. Unknown imports trap only when called.
pub fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link_basics(linker)?;
    link_maps(linker)?;
    link_buffers_and_properties(linker)?;
    link_http(linker)?;
    link_unimplemented(linker)?;
    link_wasi(linker)?;
    Ok(())
}

fn link_basics(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_log",
        |mut c: Ctx<'_>, level: i32, ptr: i32, len: i32| -> R {
            let msg = read_str(&mut c, ptr, len)?;
            let name = c.data().plugin.name.clone();
            match level {
                0 => tracing::trace!(target: "filter", filter = %name, "{msg}"),
                1 => tracing::debug!(target: "filter", filter = %name, "{msg}"),
                2 => tracing::info!(target: "filter", filter = %name, "{msg}"),
                3 => tracing::warn!(target: "filter", filter = %name, "{msg}"),
                _ => tracing::error!(target: "filter", filter = %name, level = abi::log_level_name(level), "{msg}"),
            }
            ok(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut c: Ctx<'_>, ret: i32| -> R {
            let level = if tracing::enabled!(target: "filter", tracing::Level::TRACE) {
                0
            } else if tracing::enabled!(target: "filter", tracing::Level::DEBUG) {
                1
            } else {
                2
            };
            write_u32(&mut c, ret, level)?;
            ok(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Ctx<'_>, ret: i32| -> R {
            write(&mut c, ret, &now_nanos().to_le_bytes())?;
            ok(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Ctx<'_>, ms: i32| -> R {
            let ms = ms as u32;
            c.data_mut().tick_period = (ms > 0).then(|| Duration::from_millis(u64::from(ms)));
            ok(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_effective_context",
        |_c: Ctx<'_>, _id: i32| -> R { ok(Status::Ok) },
    )?;
    l.func_wrap("env", "proxy_done", |_c: Ctx<'_>| -> R { ok(Status::Ok) })?;
    l.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Ctx<'_>, kp: i32, kl: i32, ret_ptr: i32, ret_size: i32, ret_cas: i32| -> R {
            let key = read_str(&mut c, kp, kl)?;
            match c.data().plugin.shared.get(&key) {
                Some((value, cas)) => {
                    write_u32(&mut c, ret_cas, cas)?;
                    answer(&mut c, Some(&value), ret_ptr, ret_size)
                }
                None => ok(Status::NotFound),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Ctx<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| -> R {
            let key = read_str(&mut c, kp, kl)?;
            let value = read(&mut c, vp, vl)?;
            match c.data().plugin.shared.set(&key, value, cas as u32) {
                Ok(()) => ok(Status::Ok),
                Err(s) => ok(s),
            }
        },
    )?;
    Ok(())
}

fn link_maps(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Ctx<'_>, t: i32, ret_ptr: i32, ret_size: i32| -> R {
            let Some(t) = MapType::from_raw(t) else {
                return ok(Status::BadArgument);
            };
            // A map the context does not have reads as empty, not as missing.
            let enc = match c.data().map(t) {
                Some(m) => abi::encode_map(m),
                None => abi::encode_map::<&str, &str>(&[]),
            };
            hand_over(&mut c, &enc, ret_ptr, ret_size)?;
            ok(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Ctx<'_>, t: i32, ptr: i32, len: i32| -> R {
            let Some(t) = MapType::from_raw(t) else {
                return ok(Status::BadArgument);
            };
            let raw = read(&mut c, ptr, len)?;
            let Some(pairs) = decode_pairs(&raw) else {
                return ok(Status::SerializationFailure);
            };
            match c.data_mut().map_mut(t) {
                Some(m) => {
                    *m = pairs;
                    ok(Status::Ok)
                }
                None => ok(Status::NotFound),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Ctx<'_>, t: i32, kp: i32, kl: i32, ret_ptr: i32, ret_size: i32| -> R {
            let Some(t) = MapType::from_raw(t) else {
                return ok(Status::BadArgument);
            };
            let key = read_str(&mut c, kp, kl)?;
            let value = c
                .data()
                .map(t)
                .and_then(|m| crate::state::header(m, &key))
                .map(str::to_string);
            answer(
                &mut c,
                value.as_deref().map(str::as_bytes),
                ret_ptr,
                ret_size,
            )
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Ctx<'_>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> R {
            edit_header(&mut c, t, (kp, kl), (vp, vl), HeaderEdit::Replace)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Ctx<'_>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> R {
            edit_header(&mut c, t, (kp, kl), (vp, vl), HeaderEdit::Add)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Ctx<'_>, t: i32, kp: i32, kl: i32| -> R {
            edit_header(&mut c, t, (kp, kl), (0, 0), HeaderEdit::Remove)
        },
    )?;
    Ok(())
}

fn link_buffers_and_properties(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Ctx<'_>, t: i32, start: i32, max: i32, ret_ptr: i32, ret_size: i32| -> R {
            let Some(t) = BufferType::from_raw(t) else {
                return ok(Status::BadArgument);
            };
            let (start, max) = (start as u32 as usize, max as u32 as usize);
            let slice = {
                let s = c.data();
                let buf: &[u8] = match t {
                    BufferType::RequestBody => &s.http.request_body,
                    BufferType::ResponseBody => &s.http.response_body,
                    BufferType::HttpCallResponseBody => match s.http.call_response.as_ref() {
                        Some(r) => &r.body,
                        None => return ok(Status::NotFound),
                    },
                    BufferType::PluginConfiguration => &s.plugin.configuration,
                    BufferType::VmConfiguration => &s.plugin.vm_configuration,
                };
                if start > buf.len() {
                    return ok(Status::BadArgument);
                }
                let end = start.saturating_add(max).min(buf.len());
                buf[start..end].to_vec()
            };
            if slice.is_empty() {
                return ok(Status::NotFound);
            }
            hand_over(&mut c, &slice, ret_ptr, ret_size)?;
            ok(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Ctx<'_>, t: i32, start: i32, size: i32, dp: i32, dl: i32| -> R {
            let Some(t) = BufferType::from_raw(t) else {
                return ok(Status::BadArgument);
            };
            let data = read(&mut c, dp, dl)?;
            let (start, size) = (start as u32 as usize, size as u32 as usize);
            let s = c.data_mut();
            let buf = match t {
                BufferType::RequestBody => &mut s.http.request_body,
                BufferType::ResponseBody => &mut s.http.response_body,
                _ => return ok(Status::BadArgument),
            };
            // Replace [start, start+size) with data; start 0 and size ≥ len replaces all.
            if start > buf.len() {
                return ok(Status::BadArgument);
            }
            let end = start.saturating_add(size).min(buf.len());
            buf.splice(start..end, data);
            ok(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Ctx<'_>, pp: i32, pl: i32, ret_ptr: i32, ret_size: i32| -> R {
            let path = abi::property_path(&read(&mut c, pp, pl)?);
            let value = c.data().property(&path);
            answer(&mut c, value.as_deref(), ret_ptr, ret_size)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: Ctx<'_>, pp: i32, pl: i32, vp: i32, vl: i32| -> R {
            let path = abi::property_path(&read(&mut c, pp, pl)?);
            let value = read(&mut c, vp, vl)?;
            let props = &mut c.data_mut().http.custom_properties;
            if props.len() >= 256 && !props.contains_key(&path) {
                return ok(Status::InternalFailure);
            }
            props.insert(path, value);
            ok(Status::Ok)
        },
    )?;
    Ok(())
}

fn link_http(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Ctx<'_>,
         status: i32,
         dp: i32,
         dl: i32,
         bp: i32,
         bl: i32,
         hp: i32,
         hl: i32,
         _grpc: i32|
         -> R {
            let _details = read(&mut c, dp, dl)?;
            let body = read(&mut c, bp, bl)?;
            let raw = read(&mut c, hp, hl)?;
            let Some(headers) = decode_pairs(&raw) else {
                return ok(Status::SerializationFailure);
            };
            let status = status as u32;
            if !(100..=599).contains(&status) {
                return ok(Status::BadArgument);
            }
            c.data_mut().http.local_response = Some(LocalResponse {
                status: status as u16,
                headers,
                body,
            });
            ok(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut c: Ctx<'_>, _stream: i32| -> R {
            c.data_mut().http.resumed = true;
            ok(Status::Ok)
        },
    )?;
    // ABI 0.2.0 spellings some SDKs still import.
    for name in ["proxy_continue_request", "proxy_continue_response"] {
        l.func_wrap("env", name, |mut c: Ctx<'_>| -> R {
            c.data_mut().http.resumed = true;
            ok(Status::Ok)
        })?;
    }
    l.func_wrap(
        "env",
        "proxy_close_stream",
        |mut c: Ctx<'_>, _stream: i32| -> R {
            let s = &mut c.data_mut().http;
            if s.local_response.is_none() {
                s.local_response = Some(LocalResponse {
                    status: 403,
                    headers: Vec::new(),
                    body: b"closed by filter\n".to_vec(),
                });
            }
            ok(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: Ctx<'_>,
         up: i32,
         ul: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         _tp: i32,
         _tl: i32,
         timeout_ms: i32,
         ret_token: i32|
         -> R {
            let upstream = read_str(&mut c, up, ul)?;
            let raw = read(&mut c, hp, hl)?;
            let body = read(&mut c, bp, bl)?;
            let Some(headers) = decode_pairs(&raw) else {
                return ok(Status::SerializationFailure);
            };
            if !c.data().plugin.upstreams.contains_key(&upstream) {
                tracing::warn!(filter = %c.data().plugin.name, upstream, "http call to an upstream not configured for this filter");
                // Envoy's answer for an unknown cluster.
                return ok(Status::BadArgument);
            }
            if crate::state::header(&headers, ":path").is_none() {
                return ok(Status::BadArgument);
            }
            if c.data().http.pending_calls.len() >= c.data().max_calls {
                return ok(Status::InternalFailure);
            }
            let s = c.data_mut();
            let token = s.next_token;
            s.next_token = s.next_token.wrapping_add(1).max(1);
            let timeout = Duration::from_millis(u64::from((timeout_ms as u32).clamp(1, 60_000)));
            s.http.pending_calls.push(PendingCall {
                token,
                upstream,
                headers,
                body,
                timeout,
            });
            write_u32(&mut c, ret_token, token)?;
            ok(Status::Ok)
        },
    )?;
    Ok(())
}

fn link_unimplemented(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // Metrics: accepted and counted host-side under one family.
    l.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Ctx<'_>, _t: i32, np: i32, nl: i32, ret: i32| -> R {
            let name = read_str(&mut c, np, nl)?;
            let s = c.data_mut();
            let id = s.metric_names.len() as u32 + 1;
            if s.metric_names.len() >= 1024 {
                return ok(Status::InternalFailure);
            }
            s.metric_names.push(name);
            write_u32(&mut c, ret, id)?;
            ok(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: Ctx<'_>, id: i32, by: i64| -> R {
            let s = c.data();
            match s.metric_names.get((id as u32 as usize).wrapping_sub(1)) {
                Some(n) => {
                    ::metrics::counter!("mediamesh_compute_filter_metric_total", "filter" => s.plugin.name.clone(), "metric" => n.clone())
                        .increment(by.max(0) as u64);
                    ok(Status::Ok)
                }
                None => ok(Status::NotFound),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_record_metric",
        |c: Ctx<'_>, id: i32, v: i64| -> R {
            let s = c.data();
            match s.metric_names.get((id as u32 as usize).wrapping_sub(1)) {
                Some(n) => {
                    ::metrics::gauge!("mediamesh_compute_filter_metric", "filter" => s.plugin.name.clone(), "metric" => n.clone())
                        .set(v as f64);
                    ok(Status::Ok)
                }
                None => ok(Status::NotFound),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_metric",
        |_c: Ctx<'_>, _id: i32, _ret: i32| -> R { ok(Status::Unimplemented) },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_status",
        |_c: Ctx<'_>, _a: i32, _b: i32, _d: i32| -> R { ok(Status::Unimplemented) },
    )?;
    l.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |_c: Ctx<'_>, _a: i32, _b: i32, _d: i32| -> R { ok(Status::Unimplemented) },
    )?;
    l.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |_c: Ctx<'_>, _a: i32, _b: i32, _d: i32, _e: i32, _f: i32| -> R {
            ok(Status::Unimplemented)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |_c: Ctx<'_>, _a: i32, _b: i32, _d: i32| -> R { ok(Status::Unimplemented) },
    )?;
    l.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |_c: Ctx<'_>, _a: i32, _b: i32, _d: i32| -> R { ok(Status::Unimplemented) },
    )?;
    l.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |_c: Ctx<'_>, _a: i32, _b: i32, _d: i32, _e: i32, _f: i32, _g: i32| -> R {
            ok(Status::Unimplemented)
        },
    )?;
    Ok(())
}

/// WASI preview 1, as much as `wasm32-wasip1` filters import: no files, no
/// environment, stdout/stderr to the log, a clock and randomness.
fn link_wasi(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    const W: &str = "wasi_snapshot_preview1";
    const EBADF: i32 = 8;
    l.func_wrap(
        W,
        "fd_write",
        |mut c: Ctx<'_>, fd: i32, iovs: i32, n: i32, ret: i32| -> R {
            if fd != 1 && fd != 2 {
                return Ok(EBADF);
            }
            let mut out = Vec::new();
            for i in 0..(n as u32).min(64) {
                let iov = read(&mut c, iovs.wrapping_add((i * 8) as i32), 8)?;
                let p = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                out.extend(read(&mut c, p, len)?);
                if out.len() > 64 * 1024 {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&out);
            tracing::info!(target: "filter", filter = %c.data().plugin.name, fd, "{}", text.trim_end());
            write_u32(&mut c, ret, out.len() as u32)?;
            Ok(0)
        },
    )?;
    for name in ["environ_sizes_get", "args_sizes_get"] {
        l.func_wrap(W, name, |mut c: Ctx<'_>, a: i32, b: i32| -> R {
            write_u32(&mut c, a, 0)?;
            write_u32(&mut c, b, 0)?;
            Ok(0)
        })?;
    }
    for name in ["environ_get", "args_get"] {
        l.func_wrap(W, name, |_c: Ctx<'_>, _a: i32, _b: i32| -> R { Ok(0) })?;
    }
    l.func_wrap(
        W,
        "clock_time_get",
        |mut c: Ctx<'_>, _id: i32, _precision: i64, ret: i32| -> R {
            write(&mut c, ret, &now_nanos().to_le_bytes())?;
            Ok(0)
        },
    )?;
    l.func_wrap(W, "random_get", |mut c: Ctx<'_>, ptr: i32, len: i32| -> R {
        let n = (len as u32 as usize).min(1 << 16);
        let mut buf = vec![0u8; n];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut buf);
        write(&mut c, ptr, &buf)?;
        Ok(0)
    })?;
    l.func_wrap(
        W,
        "proc_exit",
        |_c: Ctx<'_>, code: i32| -> wasmtime::Result<()> { Err(Fault::Exit(code).into()) },
    )?;
    l.func_wrap(W, "sched_yield", |_c: Ctx<'_>| -> R { Ok(0) })?;
    l.func_wrap(W, "fd_close", |_c: Ctx<'_>, _fd: i32| -> R { Ok(EBADF) })?;
    l.func_wrap(
        W,
        "fd_fdstat_get",
        |_c: Ctx<'_>, _fd: i32, _ret: i32| -> R { Ok(EBADF) },
    )?;
    l.func_wrap(
        W,
        "fd_seek",
        |_c: Ctx<'_>, _fd: i32, _off: i64, _wh: i32, _ret: i32| -> R { Ok(EBADF) },
    )?;
    l.func_wrap(
        W,
        "fd_prestat_get",
        |_c: Ctx<'_>, _fd: i32, _ret: i32| -> R { Ok(EBADF) },
    )?;
    l.func_wrap(
        W,
        "fd_prestat_dir_name",
        |_c: Ctx<'_>, _fd: i32, _p: i32, _l: i32| -> R { Ok(EBADF) },
    )?;
    Ok(())
}
