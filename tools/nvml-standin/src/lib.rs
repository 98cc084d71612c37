//! A stand-in for `libnvidia-ml.so.1`: the NVML functions joulebench calls,
//! exported with NVML's C ABI (types from nvml-wrapper-sys, so the layouts
//! are the ones nvml-wrapper expects), answering from a simulation that
//! plays a scenario (`scenario.rs`): load-following or traced power, the
//! counter's update period, NOT_SUPPORTED counters or fields, the 1-s
//! averaging of `nvmlDeviceGetPowerUsage`, noise, a GPU lost mid-run, MIG
//! mode, several GPUs, other processes on a GPU and clock throttle reasons. Every total-energy read can be logged with the true
//! energy at that instant (the ledger), so tests check joulebench's figures
//! against what the "hardware" really drew.
//!
//! Loaded by joulebench through `JOULEBENCH_NVML_LIB` (or `[meter]
//! nvml_lib`); never installed system-wide. Built by `scripts/nvml-standin.sh`.

#![allow(non_snake_case, clippy::missing_safety_doc)]

mod scenario;
mod sim;

use nvml_wrapper_sys::bindings::{
    nvmlDevice_st, nvmlDevice_t, nvmlFieldValue_t, nvmlProcessInfo_t,
    nvmlReturn_enum_NVML_ERROR_GPU_IS_LOST as GPU_IS_LOST,
    nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE as INSUFFICIENT_SIZE,
    nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT as INVALID_ARGUMENT,
    nvmlReturn_enum_NVML_ERROR_NO_PERMISSION as NO_PERMISSION,
    nvmlReturn_enum_NVML_ERROR_NOT_FOUND as NOT_FOUND,
    nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED as NOT_SUPPORTED,
    nvmlReturn_enum_NVML_ERROR_UNINITIALIZED as UNINITIALIZED,
    nvmlReturn_enum_NVML_ERROR_UNKNOWN as UNKNOWN, nvmlReturn_enum_NVML_SUCCESS as SUCCESS,
    nvmlReturn_t, nvmlUtilization_t, nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT as VALUE_UINT,
};
use std::ffi::{CStr, c_char, c_int, c_uint, c_ulonglong};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `NVML_FI_DEV_POWER_INSTANT`.
const FI_POWER_INSTANT: c_uint = 186;

/// Balanced nvmlInit/nvmlShutdown calls in force.
static INITS: AtomicUsize = AtomicUsize::new(0);

/// The folder this library was loaded from (for `standin.json` beside it).
pub(crate) fn own_dir() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address and fills `info`.
    let ok = unsafe { libc::dladdr(own_dir as *const libc::c_void, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated path.
    let path = unsafe { CStr::from_ptr(info.dli_fname) };
    PathBuf::from(path.to_string_lossy().into_owned())
        .parent()
        .map(PathBuf::from)
}

fn handle(i: usize) -> nvmlDevice_t {
    (i + 1) as *mut nvmlDevice_st
}

/// The GPU a handle names, if initialised and valid.
fn gpu(device: nvmlDevice_t) -> Result<usize, nvmlReturn_t> {
    if INITS.load(Ordering::SeqCst) == 0 {
        return Err(UNINITIALIZED);
    }
    let i = (device as usize).checked_sub(1).ok_or(INVALID_ARGUMENT)?;
    let s = sim::sim().map_err(|_| UNKNOWN)?;
    let s = s.lock().map_err(|_| UNKNOWN)?;
    if i >= s.gpus.len() {
        return Err(INVALID_ARGUMENT);
    }
    if s.lost(i) {
        return Err(GPU_IS_LOST);
    }
    Ok(i)
}

/// Runs `f` on the simulation for a valid GPU, writing NVML's return code.
fn with_gpu(
    device: nvmlDevice_t,
    f: impl FnOnce(&mut sim::Sim, usize) -> nvmlReturn_t,
) -> nvmlReturn_t {
    match gpu(device) {
        Err(e) => e,
        Ok(i) => match sim::sim().map(|m| m.lock()) {
            Ok(Ok(mut s)) => f(&mut s, i),
            _ => UNKNOWN,
        },
    }
}

/// Copies `text` into a caller's buffer of `len` bytes, NUL-terminated.
unsafe fn put_str(text: &str, buf: *mut c_char, len: c_uint) -> nvmlReturn_t {
    if buf.is_null() {
        return INVALID_ARGUMENT;
    }
    let bytes = text.as_bytes();
    if bytes.len() + 1 > len as usize {
        return INSUFFICIENT_SIZE;
    }
    // SAFETY: the caller gave `len` writable bytes; we write bytes.len() + 1 <= len.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf as *mut u8, bytes.len());
        *buf.add(bytes.len()) = 0;
    }
    SUCCESS
}

unsafe fn put<T>(out: *mut T, v: T) -> nvmlReturn_t {
    if out.is_null() {
        return INVALID_ARGUMENT;
    }
    // SAFETY: non-null, and the caller passes a valid pointer per NVML's contract.
    unsafe { out.write(v) };
    SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> nvmlReturn_t {
    match sim::sim() {
        Ok(_) => {
            INITS.fetch_add(1, Ordering::SeqCst);
            SUCCESS
        }
        Err(e) => {
            eprintln!("nvml stand-in: {e}");
            UNKNOWN
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> nvmlReturn_t {
    nvmlInit_v2()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> nvmlReturn_t {
    match INITS.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
        Ok(_) => SUCCESS,
        Err(_) => UNINITIALIZED,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(result: nvmlReturn_t) -> *const c_char {
    let s: &'static CStr = match result {
        SUCCESS => c"Success",
        UNINITIALIZED => c"Uninitialized",
        INVALID_ARGUMENT => c"Invalid Argument",
        NOT_SUPPORTED => c"Not Supported",
        NOT_FOUND => c"Not Found",
        INSUFFICIENT_SIZE => c"Insufficient Size",
        GPU_IS_LOST => c"GPU is lost",
        NO_PERMISSION => c"Insufficient Permissions",
        _ => c"Unknown Error",
    };
    s.as_ptr()
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    if INITS.load(Ordering::SeqCst) == 0 {
        return UNINITIALIZED;
    }
    match sim::sim().map(|m| m.lock().map(|s| s.scenario.driver_version.clone())) {
        // SAFETY: forwarded caller buffer.
        Ok(Ok(v)) => unsafe { put_str(&v, version, length) },
        _ => UNKNOWN,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> nvmlReturn_t {
    if INITS.load(Ordering::SeqCst) == 0 {
        return UNINITIALIZED;
    }
    match sim::sim().map(|m| m.lock().map(|s| s.gpus.len())) {
        // SAFETY: forwarded caller pointer.
        Ok(Ok(n)) => unsafe { put(count, n as c_uint) },
        _ => UNKNOWN,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    if INITS.load(Ordering::SeqCst) == 0 {
        return UNINITIALIZED;
    }
    let n = match sim::sim().map(|m| m.lock().map(|s| s.gpus.len())) {
        Ok(Ok(n)) => n,
        _ => return UNKNOWN,
    };
    if index as usize >= n {
        return INVALID_ARGUMENT;
    }
    // SAFETY: forwarded caller pointer.
    unsafe { put(device, handle(index as usize)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByUUID(
    uuid: *const c_char,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    if INITS.load(Ordering::SeqCst) == 0 {
        return UNINITIALIZED;
    }
    if uuid.is_null() {
        return INVALID_ARGUMENT;
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let want = unsafe { CStr::from_ptr(uuid) }
        .to_string_lossy()
        .into_owned();
    let found = sim::sim().ok().and_then(|m| {
        m.lock()
            .ok()
            .and_then(|s| s.gpus.iter().position(|g| g.spec.uuid == want))
    });
    match found {
        // SAFETY: forwarded caller pointer.
        Some(i) => unsafe { put(device, handle(i)) },
        None => NOT_FOUND,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: nvmlDevice_t,
    name: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller buffer.
    with_gpu(device, |s, i| unsafe {
        put_str(&s.gpus[i].spec.name, name, length)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: nvmlDevice_t,
    uuid: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller buffer.
    with_gpu(device, |s, i| unsafe {
        put_str(&s.gpus[i].spec.uuid, uuid, length)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    device: nvmlDevice_t,
    energy: *mut c_ulonglong,
) -> nvmlReturn_t {
    with_gpu(device, |s, i| {
        if !s.gpus[i].spec.energy_counter {
            return NOT_SUPPORTED;
        }
        let g = &s.gpus[i];
        // The truth at the instant of the read, logged with what was
        // reported (read once: a thread preempted between two reads of the
        // clock would otherwise log a later truth than it reported).
        let truth = s.true_joules(i);
        // An update period of 0: a continuous counter, exact at every read.
        let mj = if g.spec.counter_update_ms <= 0.0 {
            (truth * g.spec.counter_scale * 1000.0) as u64
        } else {
            g.counter_mj
        };
        s.log_read(i, mj, truth);
        // SAFETY: forwarded caller pointer.
        unsafe { put(energy, mj) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(
    device: nvmlDevice_t,
    power: *mut c_uint,
) -> nvmlReturn_t {
    with_gpu(device, |s, i| {
        let secs = s.gpus[i].spec.power_usage_average_s;
        let mw = s.average_w(i, secs) * 1000.0;
        // SAFETY: forwarded caller pointer.
        unsafe { put(power, mw as c_uint) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFieldValues(
    device: nvmlDevice_t,
    count: c_int,
    values: *mut nvmlFieldValue_t,
) -> nvmlReturn_t {
    if values.is_null() || count < 0 {
        return INVALID_ARGUMENT;
    }
    with_gpu(device, |s, i| {
        let now_us = (s.now() * 1e6) as i64;
        for k in 0..count as usize {
            // SAFETY: the caller passes `count` field values.
            let v = unsafe { &mut *values.add(k) };
            v.timestamp = now_us;
            v.latencyUsec = 0;
            if v.fieldId == FI_POWER_INSTANT && s.gpus[i].spec.instant_field {
                v.valueType = VALUE_UINT;
                v.nvmlReturn = SUCCESS;
                v.value.uiVal = (s.instant_w(i) * 1000.0) as c_uint;
            } else {
                v.nvmlReturn = NOT_SUPPORTED;
            }
        }
        SUCCESS
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: nvmlDevice_t,
    _sensor: c_uint,
    temp: *mut c_uint,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller pointer.
    with_gpu(device, |s, i| unsafe {
        put(temp, s.gpus[i].spec.temperature_c)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    device: nvmlDevice_t,
    _kind: c_uint,
    clock: *mut c_uint,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller pointer.
    with_gpu(device, |s, i| unsafe { put(clock, s.sm_clock(i)) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(
    device: nvmlDevice_t,
    limit: *mut c_uint,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller pointer.
    with_gpu(device, |s, i| unsafe {
        put(limit, (s.gpus[i].spec.power_limit_w * 1000.0) as c_uint)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimit(
    device: nvmlDevice_t,
    limit: *mut c_uint,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller pointer.
    unsafe { nvmlDeviceGetEnforcedPowerLimit(device, limit) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimitConstraints(
    device: nvmlDevice_t,
    min: *mut c_uint,
    max: *mut c_uint,
) -> nvmlReturn_t {
    with_gpu(device, |s, i| {
        let g = &s.gpus[i].spec;
        // SAFETY: forwarded caller pointers.
        match unsafe { put(min, (g.power_limit_min_w * 1000.0) as c_uint) } {
            SUCCESS => unsafe { put(max, (g.power_limit_max_w * 1000.0) as c_uint) },
            e => e,
        }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: nvmlDevice_t,
    util: *mut nvmlUtilization_t,
) -> nvmlReturn_t {
    with_gpu(device, |s, i| {
        let g = &s.gpus[i];
        let busy = match g.spec.power {
            scenario::Power::LoadFollowing { idle_w, busy_w, .. } if busy_w > idle_w => {
                ((g.watts - idle_w) / (busy_w - idle_w) * 100.0).clamp(0.0, 100.0)
            }
            _ => 0.0,
        };
        let u = nvmlUtilization_t {
            gpu: busy as c_uint,
            memory: 0,
        };
        // SAFETY: forwarded caller pointer.
        unsafe { put(util, u) }
    })
}

/// The processes with a compute context: the count alone with a null
/// buffer or one too small (INSUFFICIENT_SIZE), else the list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    device: nvmlDevice_t,
    count: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    if count.is_null() {
        return INVALID_ARGUMENT;
    }
    with_gpu(device, |s, i| {
        let pids = s.pids(i);
        // SAFETY: non-null, the caller's count.
        let room = unsafe { *count } as usize;
        // SAFETY: as above.
        unsafe { *count = pids.len() as c_uint };
        if infos.is_null() || room < pids.len() {
            return if pids.is_empty() {
                SUCCESS
            } else {
                INSUFFICIENT_SIZE
            };
        }
        for (k, pid) in pids.into_iter().enumerate() {
            let info = nvmlProcessInfo_t {
                pid,
                usedGpuMemory: 1 << 30,
                gpuInstanceId: u32::MAX,
                computeInstanceId: u32::MAX,
            };
            // SAFETY: the caller gave `room` >= pids.len() entries.
            unsafe { infos.add(k).write(info) };
        }
        SUCCESS
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksEventReasons(
    device: nvmlDevice_t,
    reasons: *mut c_ulonglong,
) -> nvmlReturn_t {
    with_gpu(device, |s, i| match s.throttle_bits(i) {
        // SAFETY: forwarded caller pointer.
        Ok(bits) => unsafe { put(reasons, bits) },
        Err(e) => {
            eprintln!("nvml stand-in: {e}");
            UNKNOWN
        }
    })
}

/// The older name of `nvmlDeviceGetCurrentClocksEventReasons` (what
/// nvml-wrapper 0.13 calls).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksThrottleReasons(
    device: nvmlDevice_t,
    reasons: *mut c_ulonglong,
) -> nvmlReturn_t {
    // SAFETY: forwarded caller pointer.
    unsafe { nvmlDeviceGetCurrentClocksEventReasons(device, reasons) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: nvmlDevice_t,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> nvmlReturn_t {
    with_gpu(device, |s, i| {
        let m = s.gpus[i].spec.mig as c_uint;
        // SAFETY: forwarded caller pointers.
        match unsafe { put(current, m) } {
            SUCCESS => unsafe { put(pending, m) },
            e => e,
        }
    })
}

/// Checks the caller may change settings, then changes them and saves the
/// driver state.
fn change(
    device: nvmlDevice_t,
    f: impl FnOnce(&mut sim::Sim, usize) -> nvmlReturn_t,
) -> nvmlReturn_t {
    with_gpu(device, |s, i| {
        if !s.scenario.settings_permission {
            return NO_PERMISSION;
        }
        match f(s, i) {
            SUCCESS => match s.save_state() {
                Ok(()) => SUCCESS,
                Err(e) => {
                    eprintln!("nvml stand-in: {e}");
                    UNKNOWN
                }
            },
            e => e,
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceSetPowerManagementLimit(
    device: nvmlDevice_t,
    limit: c_uint,
) -> nvmlReturn_t {
    change(device, |s, i| {
        let g = &mut s.gpus[i].spec;
        let w = limit as f64 / 1000.0;
        if w < g.power_limit_min_w || w > g.power_limit_max_w {
            return INVALID_ARGUMENT;
        }
        g.power_limit_w = w;
        SUCCESS
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceSetGpuLockedClocks(
    device: nvmlDevice_t,
    min_mhz: c_uint,
    max_mhz: c_uint,
) -> nvmlReturn_t {
    change(device, |s, i| {
        let g = &s.gpus[i].spec;
        if min_mhz > max_mhz || min_mhz < g.sm_clock_min_mhz || max_mhz > g.sm_clock_max_mhz {
            return INVALID_ARGUMENT;
        }
        s.gpus[i].locked = Some((min_mhz, max_mhz));
        SUCCESS
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceResetGpuLockedClocks(device: nvmlDevice_t) -> nvmlReturn_t {
    change(device, |s, i| {
        s.gpus[i].locked = None;
        SUCCESS
    })
}
