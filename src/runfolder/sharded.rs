//! Sharded run folders: several processes (Slurm array tasks, Kubernetes
//! Indexed Job pods, or `--shard K/N` by hand) write one run.
//!
//! ```text
//! <run>/suite.toml                 the suite, written by whichever shard comes first
//! <run>/sharding.json              shard count, assignment rule, filters
//! <run>/shards/<K>/manifest.json   shard K's host, meter and software
//! <run>/shards/<K>/trials.jsonl    shard K's records, appended and fsynced
//! <run>/shards/<K>/heartbeat.json  shard K's state, rewritten every 10 s
//! <run>/shards/<K>/lock            held (flock) while shard K runs
//! ```
//!
//! Shared files are published with a hard link from a private temporary
//! file, so a shard sees either nothing or the whole file, and exactly one
//! shard creates it; the others check theirs matches. A restarted shard
//! (requeue, preemption, a second start by hand) reopens its own file and
//! skips what it holds, so each trial is recorded once.

use crate::config::plan::{Plan, TrialKey};
use crate::record::{Shard, TrialRecord, TrialStatus};
use crate::runfolder::manifest::Manifest;
use crate::runfolder::store::{
    MANIFEST_FILE, Resumed, RunDir, SUITE_FILE, StoreError, TRIALS_FILE, check_suite, io,
    read_records, replace_file, write_synced,
};
use crate::suite::{Filters, Suite};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub const SHARDS_DIR: &str = "shards";
pub const SHARDING_FILE: &str = "sharding.json";
pub const HEARTBEAT_FILE: &str = "heartbeat.json";
const LOCK_FILE: &str = "lock";
/// How the plan is split (see `Shard::owns`).
pub const ASSIGNMENT: &str = "trial index mod count";
/// Seconds between heartbeats; a running shard silent for 6 periods is stale.
pub const HEARTBEAT_SECONDS: u64 = 10;
pub const STALE_SECONDS: u64 = 6 * HEARTBEAT_SECONDS;

/// `<run>/sharding.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sharding {
    pub count: u32,
    pub assignment: String,
    #[serde(default)]
    pub filters: Filters,
    /// Trials in the (filtered) plan, all shards together.
    pub planned_trials: usize,
}

/// The folder of shard `k`.
pub fn shard_dir(run: &Path, k: u32) -> PathBuf {
    run.join(SHARDS_DIR).join(k.to_string())
}

/// Whether `run` is a sharded run folder.
pub fn is_sharded(run: &Path) -> bool {
    run.join(SHARDING_FILE).is_file() || run.join(SHARDS_DIR).is_dir()
}

/// Writes `bytes` to `path` unless it exists. Readers never see a partial
/// file: the bytes go to a private file first, then a hard link (which fails
/// if `path` exists) publishes them. Returns whether this call created it.
pub fn publish(path: &Path, bytes: &[u8]) -> Result<bool, StoreError> {
    if path.exists() {
        return Ok(false);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    write_synced(&tmp, bytes)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links: exclusive creation instead.
        Err(_) => match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut f) => {
                std::io::Write::write_all(&mut f, bytes).map_err(io("write", path))?;
                f.sync_all().map_err(io("sync", path))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io("create", path)(e)),
        },
    }
}

fn read_sharding(run: &Path) -> Result<Sharding, StoreError> {
    let p = run.join(SHARDING_FILE);
    let bytes = std::fs::read(&p).map_err(io("read", &p))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Manifest {
        run: run.to_path_buf(),
        message: format!("{SHARDING_FILE}: {e}"),
    })
}

/// Makes `run` a run folder for `count` shards of `suite`, or checks that it
/// already is one for the same suite, filters and count. Safe to call from
/// every shard at once.
pub fn prepare(run: &Path, suite: &Suite, count: u32) -> Result<Sharding, StoreError> {
    let shards = run.join(SHARDS_DIR);
    std::fs::create_dir_all(&shards).map_err(io("create", &shards))?;
    let mine = Sharding {
        count,
        assignment: ASSIGNMENT.into(),
        filters: suite.filters.clone(),
        planned_trials: suite.plan().map_or(0, |p| p.trials.len()),
    };
    let path = run.join(SHARDING_FILE);
    if !publish(&path, &serde_json::to_vec_pretty(&mine)?)? {
        let found = read_sharding(run)?;
        if found.count != count {
            return Err(StoreError::ShardingMismatch {
                file: path,
                field: "count",
                found: found.count.to_string(),
                given: count.to_string(),
                what: "shard count",
            });
        }
        if found.filters != mine.filters {
            return Err(StoreError::ShardingMismatch {
                file: path,
                field: "filters",
                found: found.filters.to_string(),
                given: mine.filters.to_string(),
                what: "--workload/--variant filters",
            });
        }
    }
    if !publish(&run.join(SUITE_FILE), suite.source.as_bytes())? {
        check_suite(run, suite, &suite.filters)?;
    }
    Ok(mine)
}

/// Opens shard `shard` of the run at `run` (creating the folder if this is
/// the first shard to start), locks it, and returns its records so far.
pub fn join(
    run: &Path,
    suite: &Suite,
    shard: Shard,
    manifest: &Manifest,
) -> Result<Resumed, StoreError> {
    prepare(run, suite, shard.count)?;
    let dir = shard_dir(run, shard.index);
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let lock = lock(&dir)?;
    let mp = dir.join(MANIFEST_FILE);
    if !mp.exists() {
        write_synced(&mp, &serde_json::to_vec_pretty(manifest)?)?;
    }
    let tp = dir.join(TRIALS_FILE);
    if tp.is_file() {
        RunDir::reopen(run, tp, Some(lock))
    } else {
        Ok(Resumed {
            run: RunDir::create_trials(run, tp, Some(lock))?,
            records: Vec::new(),
            discarded_bytes: 0,
        })
    }
}

/// Takes the shard's lock (`File::try_lock`: an exclusive `flock` on Unix,
/// released when the process ends, however it ends), or says who holds it.
/// The standard library's lock needs no crate (`fs4`, `fd-lock` wrap the same
/// call).
fn lock(dir: &Path) -> Result<File, StoreError> {
    let p = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io("open", &p))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = read_heartbeat(dir).map_or_else(
                || "no heartbeat yet".to_string(),
                |h| format!("pid {} on {}, {}", h.pid, h.hostname, h.state),
            );
            Err(StoreError::ShardBusy {
                dir: dir.to_path_buf(),
                holder,
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io("lock", &p)(e)),
    }
}

/// `<run>/shards/<K>/heartbeat.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `running`, `finished`, `interrupted by SIGUSR1`, ...
    pub state: String,
    pub hostname: String,
    pub pid: u32,
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub restart_count: u32,
    pub started_unix: u64,
    pub updated_unix: u64,
    pub done: usize,
    pub planned: usize,
    /// The trial in flight.
    #[serde(default)]
    pub current: Option<String>,
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read_heartbeat(dir: &Path) -> Option<Heartbeat> {
    serde_json::from_slice(&std::fs::read(dir.join(HEARTBEAT_FILE)).ok()?).ok()
}

fn write_heartbeat(path: &Path, hb: &Heartbeat) {
    let written = serde_json::to_vec_pretty(hb)
        .map_err(StoreError::from)
        .and_then(|b| replace_file(path, &b));
    if let Err(e) = written {
        tracing::debug!("heartbeat not written: {e}");
    }
}

/// A shard's last heartbeat state: `finished`, or the signal that stopped it.
pub fn final_state(interrupted: Option<i32>) -> String {
    match interrupted {
        Some(sig) => format!("interrupted by {}", crate::util::interrupt::name(sig)),
        None => "finished".into(),
    }
}

/// Rewrites a shard's heartbeat every `HEARTBEAT_SECONDS` from a thread,
/// and at once on every change.
pub struct HeartbeatWriter {
    path: PathBuf,
    beat: Arc<Mutex<Heartbeat>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeartbeatWriter {
    pub fn start(dir: &Path, mut hb: Heartbeat) -> HeartbeatWriter {
        let path = dir.join(HEARTBEAT_FILE);
        hb.state = "running".into();
        hb.started_unix = unix_now();
        hb.updated_unix = hb.started_unix;
        write_heartbeat(&path, &hb);
        let beat = Arc::new(Mutex::new(hb));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (path, beat, stop) = (path.clone(), beat.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = std::time::Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    if last.elapsed().as_secs() >= HEARTBEAT_SECONDS {
                        last = std::time::Instant::now();
                        if let Ok(mut b) = beat.lock() {
                            b.updated_unix = unix_now();
                            write_heartbeat(&path, &b);
                        }
                    }
                }
            })
        };
        HeartbeatWriter {
            path,
            beat,
            stop,
            thread: Some(thread),
        }
    }

    /// Changes the heartbeat and writes it now.
    pub fn update(&self, f: impl FnOnce(&mut Heartbeat)) {
        if let Ok(mut b) = self.beat.lock() {
            f(&mut b);
            b.updated_unix = unix_now();
            write_heartbeat(&self.path, &b);
        }
    }

    /// Writes the final state and stops the thread.
    pub fn finish(mut self, state: String) {
        self.update(|b| {
            b.state = state;
            b.current = None;
        });
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HeartbeatWriter {
    /// Dropped without `finish`: the run returned an error.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.update(|b| b.state = "stopped by an error (see the job's log)".into());
        }
        self.halt();
    }
}

/// Every shard's records as one run: deduplicated by trial id.
pub struct Merged {
    pub records: Vec<TrialRecord>,
    /// Bytes of half-written last lines that were ignored, all shards together.
    pub discarded_bytes: usize,
    /// Identical copies of a record that were dropped.
    pub duplicates: usize,
    /// The first shard's manifest (every shard has its own).
    pub manifest: Option<PathBuf>,
    pub shards: Vec<u32>,
}

/// The shard folders present, by index.
pub fn shard_indices(run: &Path) -> Result<Vec<u32>, StoreError> {
    let dir = run.join(SHARDS_DIR);
    let mut out: Vec<u32> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io("read", &dir)(e)),
    };
    out.sort_unstable();
    Ok(out)
}

/// Reads every shard's records. A trial present twice is kept once when
/// both copies agree (placement aside), and is an error naming both files
/// when they differ.
pub fn read_merged(run: &Path) -> Result<Merged, StoreError> {
    let shards = shard_indices(run)?;
    let mut records: Vec<TrialRecord> = Vec::new();
    let mut seen: HashMap<String, (usize, PathBuf)> = HashMap::new();
    let mut discarded_bytes = 0;
    let mut duplicates = 0;
    let mut manifest = None;
    for &k in &shards {
        let dir = shard_dir(run, k);
        if manifest.is_none() && dir.join(MANIFEST_FILE).is_file() {
            manifest = Some(dir.join(MANIFEST_FILE));
        }
        let tp = dir.join(TRIALS_FILE);
        if !tp.is_file() {
            continue;
        }
        let (recs, _, torn) = read_records(&tp)?;
        discarded_bytes += torn;
        for r in recs {
            let id = r.identity();
            match seen.get(&id) {
                Some((i, first)) => {
                    if results(&records[*i]) != results(&r) {
                        return Err(StoreError::Duplicate {
                            id,
                            key: r.key.to_string(),
                            first: first.display().to_string(),
                            second: tp.display().to_string(),
                        });
                    }
                    duplicates += 1;
                }
                None => {
                    seen.insert(id, (records.len(), tp.clone()));
                    records.push(r);
                }
            }
        }
    }
    records.sort_by_key(|r| r.trial_index);
    Ok(Merged {
        records,
        discarded_bytes,
        duplicates,
        manifest,
        shards,
    })
}

/// A record without where it ran: what two copies of one trial must agree on.
fn results(r: &TrialRecord) -> serde_json::Value {
    let mut r = r.clone();
    r.placement = None;
    serde_json::to_value(r).unwrap_or_default()
}

/// The plan a run folder was started with: its suite copy narrowed by the
/// filters it recorded (in `sharding.json`, or the manifest).
pub fn planned(run: &Path) -> Result<Plan, StoreError> {
    let suite = Suite::load(&run.join(SUITE_FILE)).map_err(|source| StoreError::SuiteCopy {
        run: run.to_path_buf(),
        source: Box::new(source),
    })?;
    plan_of(run, suite)
}

/// The plan of `suite` (the run's copy, already read) narrowed by the
/// filters the run at `run` recorded.
pub fn plan_of(run: &Path, mut suite: Suite) -> Result<Plan, StoreError> {
    let filters = if run.join(SHARDING_FILE).is_file() {
        read_sharding(run)?.filters
    } else {
        std::fs::read(run.join(MANIFEST_FILE))
            .ok()
            .and_then(|b| Manifest::from_json(&b).ok())
            .map(|m| m.filters)
            .unwrap_or_default()
    };
    if !filters.is_empty() {
        suite
            .select(&filters.workloads, &filters.variants)
            .map_err(|source| StoreError::SuiteCopy {
                run: run.to_path_buf(),
                source: Box::new(source),
            })?;
    }
    suite.plan().map_err(|source| StoreError::SuiteCopy {
        run: run.to_path_buf(),
        source: Box::new(source),
    })
}

/// The planned trials a set of records lacks, in plan order.
pub fn missing(plan: &Plan, records: &[TrialRecord]) -> Vec<TrialKey> {
    let have: std::collections::HashSet<String> = records.iter().map(|r| r.identity()).collect();
    let keys: std::collections::HashSet<String> =
        records.iter().map(|r| r.key.to_string()).collect();
    plan.trials
        .iter()
        .filter(|t| !have.contains(&t.id()) && !keys.contains(&t.key.to_string()))
        .map(|t| t.key.clone())
        .collect()
}

/// One shard as `joulebench status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardStatus {
    pub index: u32,
    pub planned: usize,
    pub done: usize,
    pub failed: usize,
    /// `not started`, `running`, `stale (no heartbeat for 75 s)`, `finished`, ...
    pub state: String,
    pub nodes: Vec<String>,
    /// The highest `SLURM_RESTART_COUNT` seen.
    pub restarts: u32,
}

/// Per-shard progress of a sharded run.
pub fn status(run: &Path, now_unix: u64) -> Result<Vec<ShardStatus>, StoreError> {
    let sharding = read_sharding(run)?;
    let plan = planned(run)?;
    let mut out = Vec::new();
    for k in 0..sharding.count {
        let shard = Shard {
            index: k,
            count: sharding.count,
        };
        let dir = shard_dir(run, k);
        let tp = dir.join(TRIALS_FILE);
        let recs = if tp.is_file() {
            read_records(&tp)?.0
        } else {
            Vec::new()
        };
        let hb = read_heartbeat(&dir);
        let mut nodes: Vec<String> = recs
            .iter()
            .filter_map(|r| r.placement.as_ref().map(|p| p.hostname.clone()))
            .chain(hb.iter().map(|h| h.hostname.clone()))
            .filter(|h| !h.is_empty())
            .collect();
        nodes.sort();
        nodes.dedup();
        let restarts = recs
            .iter()
            .filter_map(|r| r.placement.as_ref().map(|p| p.restart_count))
            .chain(hb.iter().map(|h| h.restart_count))
            .max()
            .unwrap_or(0);
        let state = match &hb {
            None if recs.is_empty() => "not started".to_string(),
            None => "no heartbeat".to_string(),
            Some(h) if h.state == "running" => {
                let age = now_unix.saturating_sub(h.updated_unix);
                if age > STALE_SECONDS {
                    format!("stale (no heartbeat for {age} s; the process is gone)")
                } else {
                    match &h.current {
                        Some(c) => format!("running {c}"),
                        None => "running".into(),
                    }
                }
            }
            Some(h) => h.state.clone(),
        };
        out.push(ShardStatus {
            index: k,
            planned: plan.trials.iter().filter(|t| shard.owns(t.index)).count(),
            done: recs.len(),
            failed: recs
                .iter()
                .filter(|r| matches!(r.status, TrialStatus::Failed { .. }))
                .count(),
            state,
            nodes,
            restarts,
        });
    }
    Ok(out)
}
