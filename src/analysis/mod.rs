//! Analysis of run folders: statistics, plots, reports, exports and
//! comparisons. Everything here reads result files only; nothing trains.

pub mod aggregate;
pub mod batch_schedules;
pub mod claims;
pub mod compare;
pub mod context_sweep;
pub mod csv_export;
pub mod peaks;
pub mod plots;
pub mod power_limit;
pub mod report;
pub mod schedule;
pub mod series;
pub mod sparsity_sweep;
pub mod stats;
pub mod study;

use crate::record::TrialRecord;
use crate::runfolder::manifest::Manifest;
use crate::runfolder::sharded;
use crate::runfolder::store::{self, StoreError};
use crate::suite::Suite;
use std::path::{Path, PathBuf};

/// The studies in the order of their `report.md` sections (and of their
/// `trials.csv` columns).
pub const STUDIES: &[&dyn study::Study] = &[
    &report::variants::Variants,
    &report::baseline::AgainstBaseline,
    &report::estimate_band::EstimateBand,
    &report::validity::Validity,
    &report::energy_to_accuracy::EnergyToAccuracy,
    &batch_schedules::BatchSchedules,
    &power_limit::PowerLimit,
    &schedule::CarbonByStartTime,
    &context_sweep::ContextSweep,
    &sparsity_sweep::SparsitySweep,
];

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0} holds no trial records yet")]
    Empty(PathBuf),
    #[error("cannot draw {plot}: {message}")]
    Plot { plot: String, message: String },
}

/// A run folder as read back from disk (possibly partial).
pub struct Run {
    pub dir: PathBuf,
    pub manifest: Option<Manifest>,
    pub suite: Option<Suite>,
    pub records: Vec<TrialRecord>,
    /// Bytes of a half-written last line that were ignored.
    pub discarded_bytes: usize,
    /// The shard folders read, for a sharded run (empty otherwise).
    pub shards: Vec<u32>,
    /// Planned trials without a record (from the run's suite copy and
    /// filters), in plan order: a partial run says what it lacks.
    pub missing: Vec<crate::config::plan::TrialKey>,
}

impl Run {
    /// Reads a run folder; a sharded run's shards are merged into one run
    /// (each trial once; a trial recorded twice with different results is an
    /// error naming both files).
    pub fn load(dir: &Path) -> Result<Run, AnalysisError> {
        let trials = dir.join(store::TRIALS_FILE);
        let (records, discarded_bytes, mpath, shards) = if trials.is_file() {
            let (mut records, _, discarded_bytes) = store::read_records(&trials)?;
            records.sort_by_key(|r| r.trial_index);
            (
                records,
                discarded_bytes,
                Some(dir.join(store::MANIFEST_FILE)),
                Vec::new(),
            )
        } else if sharded::is_sharded(dir) {
            let m = sharded::read_merged(dir)?;
            if m.duplicates > 0 {
                tracing::info!(
                    "{}: {} identical duplicate record(s) dropped",
                    dir.display(),
                    m.duplicates
                );
            }
            (m.records, m.discarded_bytes, m.manifest, m.shards)
        } else {
            return Err(StoreError::NotARun {
                path: dir.to_path_buf(),
                what: store::TRIALS_FILE,
            }
            .into());
        };
        let manifest = match mpath.map(|p| (std::fs::read(&p), p)) {
            Some((Ok(b), p)) => {
                Some(
                    Manifest::from_json(&b).map_err(|message| AnalysisError::File {
                        path: p.clone(),
                        message,
                    })?,
                )
            }
            _ => None,
        };
        let suite = Suite::load(&dir.join(store::SUITE_FILE)).ok();
        // Adaptive seeds: the seeds the rule chose not to run are not missing.
        let seeds: Option<crate::record::seeds::SeedDecisions> =
            std::fs::read(dir.join(store::SEEDS_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
        let missing = suite
            .clone()
            .and_then(|s| sharded::plan_of(dir, s).ok())
            .map(|plan| sharded::missing(&plan, &records))
            .unwrap_or_default()
            .into_iter()
            .filter(|k| {
                !seeds
                    .as_ref()
                    .is_some_and(|d| d.skipped(&k.workload, k.seed))
            })
            .collect();
        Ok(Run {
            dir: dir.to_path_buf(),
            manifest,
            suite,
            records,
            discarded_bytes,
            shards,
            missing,
        })
    }

    /// The suite's baseline variant, or the first variant seen.
    pub fn baseline(&self) -> Option<String> {
        self.suite
            .as_ref()
            .map(|s| s.baseline.clone())
            .or_else(|| self.records.first().map(|r| r.key.variant.clone()))
    }

    /// Whether any energy figure of the run is modelled (estimated or fake).
    pub fn modelled(&self) -> bool {
        self.records.iter().any(|r| r.total_energy().is_modelled())
    }

    /// Provenance label over all records, e.g. `estimated` or `counter+estimated`.
    pub fn provenance(&self) -> String {
        crate::meter::window::provenance_label(
            self.records
                .iter()
                .flat_map(|r| r.total_energy().domains.into_iter().map(|d| d.provenance)),
        )
    }
}
