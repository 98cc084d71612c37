//! RAPL energy counters through Linux powercap (`/sys/class/powercap`).
//!
//! Domains reported: every `package-N` zone (`cpu-package:N`) and every
//! `dram` zone (`dram:N`, N = its package). `core` and `uncore` are parts of
//! a package and `psys` (platform) contains the packages, so they are not
//! added (no double counting); `psys` is used only when no package zone exists.
//! The counters (`energy_uj`) wrap at `max_energy_range_uj`: a tracker
//! thread reads them more often than the fastest possible wrap and
//! accumulates wrap-corrected deltas, so windows of any length are right.

use super::{DomainInfo, EnergyMeter, MeterError, MeterInfo, Provenance, Snapshot};
use crate::util::units::{Joules, Seconds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEFAULT_ROOT: &str = "/sys/class/powercap";
/// Highest power we assume a domain can draw, to size the polling interval.
const MAX_DOMAIN_WATTS: f64 = 1000.0;

/// How the meter reads sysfs files: the seam tests use to simulate
/// permission errors (root reads any file, so chmod cannot in CI).
pub trait SysfsReader: Send + Sync {
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// The real file system.
pub struct RealFs;
impl SysfsReader for RealFs {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

#[derive(Debug, Clone)]
struct Zone {
    domain: String,
    energy_file: PathBuf,
    max_range_uj: u64,
    last_raw: u64,
    total_uj: f64,
}

fn read_u64(fs: &dyn SysfsReader, path: &Path) -> Result<u64, std::io::Error> {
    let s = fs.read(path)?;
    s.trim().parse::<u64>().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} holds {:?}, not an integer", path.display(), s.trim()),
        )
    })
}

fn unavailable(reason: String) -> MeterError {
    MeterError::Unavailable {
        meter: "rapl".into(),
        reason,
    }
}

fn read_error(path: &Path, e: std::io::Error) -> MeterError {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        unavailable(format!(
            "permission denied reading {}: the RAPL counters are root-only since Linux 5.10; run as root, \
             or `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj` \
             (until reboot), or give the binary CAP_DAC_READ_SEARCH (`sudo setcap cap_dac_read_search+ep <path to joulebench>`)",
            path.display()
        ))
    } else {
        unavailable(format!("cannot read {}: {e}", path.display()))
    }
}

/// Finds the zones to report under `root`.
fn discover(root: &Path, fs: &dyn SysfsReader) -> Result<Vec<Zone>, MeterError> {
    let entries = std::fs::read_dir(root).map_err(|e| {
        unavailable(format!(
            "{} cannot be read ({e}): no powercap interface (not Linux, a VM or container without RAPL, or the intel_rapl module not loaded)",
            root.display()
        ))
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("intel-rapl:") || n.starts_with("amd-rapl:"))
        .collect();
    names.sort();
    let mut packages = Vec::new();
    let mut drams = Vec::new();
    let mut psys = Vec::new();
    for n in &names {
        let dir = root.join(n);
        let Ok(name) = fs.read(&dir.join("name")) else {
            continue;
        };
        let name = name.trim().to_string();
        // intel-rapl:P or intel-rapl:P:S
        let parts: Vec<&str> = n.split(':').collect();
        let pkg = parts
            .get(1)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0);
        if let Some(idx) = name.strip_prefix("package-") {
            packages.push((format!("cpu-package:{idx}"), dir));
        } else if name == "dram" {
            drams.push((format!("dram:{pkg}"), dir));
        } else if name == "psys" {
            psys.push((format!("psys:{pkg}"), dir));
        }
    }
    let mut chosen = packages;
    chosen.extend(drams);
    if chosen.is_empty() {
        chosen = psys;
    }
    if chosen.is_empty() {
        return Err(unavailable(format!(
            "{} has no RAPL package, dram or psys zone",
            root.display()
        )));
    }
    chosen
        .into_iter()
        .map(|(domain, dir)| {
            let energy_file = dir.join("energy_uj");
            let max_file = dir.join("max_energy_range_uj");
            let last_raw = read_u64(fs, &energy_file).map_err(|e| read_error(&energy_file, e))?;
            let max_range_uj = read_u64(fs, &max_file).map_err(|e| read_error(&max_file, e))?;
            Ok(Zone {
                domain,
                energy_file,
                max_range_uj,
                last_raw,
                total_uj: 0.0,
            })
        })
        .collect()
}

/// Shared counter state, updated by the tracker thread and by snapshots.
struct Tracker {
    zones: Vec<Zone>,
    fs: Arc<dyn SysfsReader>,
}

impl Tracker {
    fn update(&mut self) -> Result<(), MeterError> {
        for z in &mut self.zones {
            let raw = read_u64(self.fs.as_ref(), &z.energy_file)
                .map_err(|e| read_error(&z.energy_file, e))?;
            let delta = if raw >= z.last_raw {
                raw - z.last_raw
            } else {
                // Wrapped once since the last read (the tracker reads often enough).
                raw + z.max_range_uj.saturating_sub(z.last_raw)
            };
            z.total_uj += delta as f64;
            z.last_raw = raw;
        }
        Ok(())
    }
}

pub struct RaplMeter {
    root: PathBuf,
    tracker: Arc<Mutex<Tracker>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub poll_interval: Duration,
}

impl RaplMeter {
    /// Opens the counters under `root` and starts the wraparound tracker.
    pub fn open(root: &Path) -> Result<RaplMeter, MeterError> {
        let fs: Arc<dyn SysfsReader> = Arc::new(RealFs);
        let zones = discover(root, fs.as_ref())?;
        let min_range_j = zones
            .iter()
            .map(|z| z.max_range_uj as f64 * 1e-6)
            .fold(f64::INFINITY, f64::min);
        // Read at least 4 times per shortest possible wrap, at most once a second.
        let secs = (min_range_j / MAX_DOMAIN_WATTS / 4.0).clamp(0.01, 1.0);
        let poll_interval = Duration::from_secs_f64(secs);
        let tracker = Arc::new(Mutex::new(Tracker { zones, fs }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let tracker = tracker.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("rapl-tracker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(poll_interval);
                        if let Ok(mut t) = tracker.lock()
                            && let Err(e) = t.update()
                        {
                            tracing::warn!("RAPL tracker: {e}");
                        }
                    }
                })
                .map_err(|e| unavailable(format!("cannot start the tracker thread: {e}")))?
        };
        Ok(RaplMeter {
            root: root.to_path_buf(),
            tracker,
            stop,
            thread: Some(thread),
            poll_interval,
        })
    }

    /// Opens without a tracker thread, reading through `fs` (tests drive
    /// `poll` by hand).
    pub fn open_manual(root: &Path, fs: Arc<dyn SysfsReader>) -> Result<RaplMeter, MeterError> {
        let zones = discover(root, fs.as_ref())?;
        Ok(RaplMeter {
            root: root.to_path_buf(),
            tracker: Arc::new(Mutex::new(Tracker { zones, fs })),
            stop: Arc::new(AtomicBool::new(true)),
            thread: None,
            poll_interval: Duration::ZERO,
        })
    }

    /// One tracker tick: read every counter and accumulate.
    pub fn poll(&self) -> Result<(), MeterError> {
        self.lock()?.update()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Tracker>, MeterError> {
        self.tracker.lock().map_err(|_| MeterError::Read {
            meter: "rapl".into(),
            message: "tracker lock poisoned".into(),
        })
    }
}

impl Drop for RaplMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl EnergyMeter for RaplMeter {
    fn info(&self) -> MeterInfo {
        let domains = self
            .tracker
            .lock()
            .map(|t| {
                t.zones
                    .iter()
                    .map(|z| DomainInfo {
                        domain: z.domain.clone(),
                        meter: "rapl".into(),
                        provenance: Provenance::Counter,
                        method: format!(
                            "RAPL counter {} (wraps at {:.0} J, tracked)",
                            z.energy_file.display(),
                            z.max_range_uj as f64 * 1e-6
                        ),
                        caveat: None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        MeterInfo {
            name: format!("rapl ({})", self.root.display()),
            domains,
            // RAPL updates about every millisecond.
            update_period: Some(Seconds(0.001)),
            cpu: None,
        }
    }

    fn snapshot(&mut self) -> Result<Snapshot, MeterError> {
        let mut t = self.lock()?;
        t.update()?;
        Ok(Snapshot::new(
            Instant::now(),
            t.zones.iter().map(|z| Joules(z.total_uj * 1e-6)).collect(),
            vec![None; t.zones.len()],
        ))
    }
}
