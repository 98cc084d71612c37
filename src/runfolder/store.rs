//! Run folders: `results/<suite>/<UTC stamp>/` with `suite.toml` (exact copy),
//! `manifest.json` and `trials.jsonl` (one record per line, appended and
//! fsynced as each trial ends, so a crash loses at most the trial in flight).

use crate::config::plan::TrialKey;
use crate::record::TrialRecord;
use crate::runfolder::manifest::Manifest;
use crate::suite::{Suite, SuiteError};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const TRIALS_FILE: &str = "trials.jsonl";
pub const SUITE_FILE: &str = "suite.toml";
pub const MANIFEST_FILE: &str = "manifest.json";
/// What the adaptive-seeds rule decided (`record::seeds::SeedDecisions`).
pub const SEEDS_FILE: &str = "seeds.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a run folder: {what} is missing")]
    NotARun { path: PathBuf, what: &'static str },
    #[error(
        "{run}: the suite given ({given}) differs from the one this run started with ({run}/suite.toml); resume with that suite, or start a new run"
    )]
    SuiteMismatch { run: PathBuf, given: PathBuf },
    #[error(
        "{run} was started with filters {used}, but this command gives {given}; resume with the same --workload/--variant flags"
    )]
    FilterMismatch {
        run: PathBuf,
        used: String,
        given: String,
    },
    #[error(
        "suite name {name:?} is not one folder name, so its run folder would not stay under {root}"
    )]
    Outside { root: PathBuf, name: String },
    #[error("{run}/manifest.json cannot be read: {message}")]
    Manifest { run: PathBuf, message: String },
    #[error("{run}/suite.toml cannot be read back: {source}")]
    SuiteCopy {
        run: PathBuf,
        #[source]
        source: Box<SuiteError>,
    },
    #[error(
        "{path}:{line}: record is corrupt ({message}); it is not the last line, so this is not a crash artefact: fix or remove it by hand"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot encode a trial record as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(
        "{file}: field `{field}` is {found}, but this shard was started with {given}; every shard of a run must use the same {what}"
    )]
    ShardingMismatch {
        file: PathBuf,
        field: &'static str,
        found: String,
        given: String,
        what: &'static str,
    },
    #[error(
        "{dir} is held by another running process ({holder}); a shard runs in one process at a time"
    )]
    ShardBusy { dir: PathBuf, holder: String },
    #[error(
        "trial {key} (id {id}) is recorded twice with different results: {first} and {second}; keep one of them"
    )]
    Duplicate {
        id: String,
        key: String,
        first: String,
        second: String,
    },
}

pub(crate) fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// An open run folder (or one shard of it).
pub struct RunDir {
    /// The run folder (shared by every shard of a sharded run).
    pub path: PathBuf,
    /// `<run>/trials.jsonl`, or `<run>/shards/<K>/trials.jsonl`.
    trials_path: PathBuf,
    trials: File,
    /// A shard's lock on its folder, held while the process runs.
    _lock: Option<File>,
}

/// What `RunDir::resume` found.
pub struct Resumed {
    pub run: RunDir,
    pub records: Vec<TrialRecord>,
    /// Bytes of a half-written last line that were discarded (0 if none).
    pub discarded_bytes: usize,
}

impl RunDir {
    /// Creates `root/<suite>/<stamp>/` and writes the suite copy and manifest.
    pub fn create(root: &Path, suite: &Suite, manifest: &Manifest) -> Result<RunDir, StoreError> {
        // The suite name is one ordinary path component (checked when the suite
        // was read); refuse anything else here too, so no run folder lands
        // outside the results root whatever the caller passes.
        let mut parts = Path::new(&suite.name).components();
        if !matches!(
            (parts.next(), parts.next()),
            (Some(std::path::Component::Normal(_)), None)
        ) {
            return Err(StoreError::Outside {
                root: root.to_path_buf(),
                name: suite.name.clone(),
            });
        }
        let base = root.join(&suite.name);
        std::fs::create_dir_all(&base).map_err(io("create the results folder", &base))?;
        let stamp = crate::util::timefmt::folder_stamp(std::time::SystemTime::now());
        let mut path = base.join(&stamp);
        let mut n = 1;
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    n += 1;
                    path = base.join(format!("{stamp}-{n}"));
                }
                Err(e) => return Err(io("create the run folder", &path)(e)),
            }
        }
        write_synced(&path.join(SUITE_FILE), suite.source.as_bytes())?;
        let m = serde_json::to_vec_pretty(manifest)?;
        write_synced(&path.join(MANIFEST_FILE), &m)?;
        let tp = path.join(TRIALS_FILE);
        RunDir::create_trials(&path, tp, None)
    }

    /// Reopens a run to finish it. The suite must equal the run's copy.
    pub fn resume(path: &Path, suite: &Suite) -> Result<Resumed, StoreError> {
        let suite_copy = path.join(SUITE_FILE);
        if !suite_copy.is_file() {
            return Err(StoreError::NotARun {
                path: path.to_path_buf(),
                what: SUITE_FILE,
            });
        }
        let manifest = path.join(MANIFEST_FILE);
        let used = match std::fs::read(&manifest) {
            Ok(b) => {
                crate::runfolder::manifest::Manifest::from_json(&b)
                    .map_err(|message| StoreError::Manifest {
                        run: path.to_path_buf(),
                        message,
                    })?
                    .filters
            }
            Err(_) => crate::suite::Filters::default(),
        };
        check_suite(path, suite, &used)?;
        let tp = path.join(TRIALS_FILE);
        if !tp.is_file() {
            return Err(StoreError::NotARun {
                path: path.to_path_buf(),
                what: TRIALS_FILE,
            });
        }
        RunDir::reopen(path, tp, None)
    }

    /// Opens an existing trials file for appending, first cutting off a
    /// half-written last line.
    pub(crate) fn reopen(
        path: &Path,
        tp: PathBuf,
        lock: Option<File>,
    ) -> Result<Resumed, StoreError> {
        let (records, good_len, discarded_bytes) = read_records(&tp)?;
        if discarded_bytes > 0 {
            let f = OpenOptions::new()
                .write(true)
                .open(&tp)
                .map_err(io("open", &tp))?;
            f.set_len(good_len as u64).map_err(io("truncate", &tp))?;
            f.sync_all().map_err(io("sync", &tp))?;
        }
        let trials = OpenOptions::new()
            .append(true)
            .open(&tp)
            .map_err(io("open", &tp))?;
        Ok(Resumed {
            run: RunDir {
                path: path.to_path_buf(),
                trials_path: tp,
                trials,
                _lock: lock,
            },
            records,
            discarded_bytes,
        })
    }

    /// Creates a new, empty trials file (it must not exist).
    pub(crate) fn create_trials(
        path: &Path,
        tp: PathBuf,
        lock: Option<File>,
    ) -> Result<RunDir, StoreError> {
        let trials = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&tp)
            .map_err(io("create", &tp))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            trials_path: tp,
            trials,
            _lock: lock,
        })
    }

    /// Appends one record as one line and fsyncs it.
    pub fn append(&mut self, record: &TrialRecord) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let tp = &self.trials_path;
        self.trials.write_all(&line).map_err(io("append to", tp))?;
        self.trials.sync_data().map_err(io("sync", tp))?;
        Ok(())
    }

    pub fn trials_path(&self) -> PathBuf {
        self.trials_path.clone()
    }
}

/// Checks that `suite` is the suite of the run at `path` (its `suite.toml`,
/// narrowed by the filters the run was started with): everything but the
/// file's location must match, and so must the filters.
pub(crate) fn check_suite(
    path: &Path,
    suite: &Suite,
    used: &crate::suite::Filters,
) -> Result<(), StoreError> {
    let copy = Suite::load(&path.join(SUITE_FILE)).map_err(|source| StoreError::SuiteCopy {
        run: path.to_path_buf(),
        source: Box::new(source),
    })?;
    if *used != suite.filters {
        return Err(StoreError::FilterMismatch {
            run: path.to_path_buf(),
            used: used.to_string(),
            given: suite.filters.to_string(),
        });
    }
    let mut copy = copy;
    if !used.is_empty() && copy.select(&used.workloads, &used.variants).is_err() {
        return Err(StoreError::SuiteMismatch {
            run: path.to_path_buf(),
            given: suite.path.clone(),
        });
    }
    if !same_suite(&copy, suite) {
        return Err(StoreError::SuiteMismatch {
            run: path.to_path_buf(),
            given: suite.path.clone(),
        });
    }
    Ok(())
}

/// Suites are the same run if everything but the file location matches.
fn same_suite(a: &Suite, b: &Suite) -> bool {
    let mut a = a.clone();
    a.path = b.path.clone();
    a.source = b.source.clone();
    a == *b
}

/// Replaces `path` with `bytes` in one step: readers see the old file or
/// the new one, never a part (a private file in the same folder, renamed).
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::util::fsio::replace_file(path, bytes).map_err(io("replace", path))
}

pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::util::fsio::write_synced(path, bytes).map_err(io("write", path))
}

/// Reads `trials.jsonl`. Returns the records, the length in bytes of the
/// intact prefix, and how many trailing bytes form a half-written line (a
/// last line without its newline: the trace of a crash mid-write).
pub fn read_records(path: &Path) -> Result<(Vec<TrialRecord>, usize, usize), StoreError> {
    let bytes = std::fs::read(path).map_err(io("read", path))?;
    let mut records = Vec::new();
    let mut pos = 0;
    let mut line_no = 0;
    while pos < bytes.len() {
        line_no += 1;
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            // No newline: an interrupted append. Discard it.
            return Ok((records, pos, bytes.len() - pos));
        };
        let line = &bytes[pos..pos + nl];
        pos += nl + 1;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let text = std::str::from_utf8(line).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            line: line_no,
            message: e.to_string(),
        })?;
        let rec = TrialRecord::from_json_line(text).map_err(|message| StoreError::Corrupt {
            path: path.to_path_buf(),
            line: line_no,
            message,
        })?;
        records.push(rec);
    }
    Ok((records, pos, 0))
}

/// Keys of the trials a run already holds.
pub fn done_keys(records: &[TrialRecord]) -> HashSet<TrialKey> {
    records.iter().map(|r| r.key.clone()).collect()
}
