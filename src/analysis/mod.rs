//! Analysis of run folders: statistics, plots, reports, exports and
//! comparisons. Everything here reads result files only; nothing trains.

pub mod aggregate;
pub mod claims;
pub mod compare;
pub mod csv_export;
pub mod peaks;
pub mod plots;
pub mod report;
pub mod series;
pub mod stats;

use crate::harness::manifest::Manifest;
use crate::harness::store::{self, StoreError};
use crate::record::TrialRecord;
use crate::suite::Suite;
use std::path::{Path, PathBuf};

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
}

impl Run {
    pub fn load(dir: &Path) -> Result<Run, AnalysisError> {
        let trials = dir.join(store::TRIALS_FILE);
        if !trials.is_file() {
            return Err(StoreError::NotARun {
                path: dir.to_path_buf(),
                what: store::TRIALS_FILE,
            }
            .into());
        }
        let (mut records, _, discarded_bytes) = store::read_records(&trials)?;
        records.sort_by_key(|r| r.trial_index);
        let mpath = dir.join(store::MANIFEST_FILE);
        let manifest = match std::fs::read(&mpath) {
            Ok(b) => Some(
                Manifest::from_json(&b).map_err(|message| AnalysisError::File {
                    path: mpath.clone(),
                    message,
                })?,
            ),
            Err(_) => None,
        };
        let suite = Suite::load(&dir.join(store::SUITE_FILE)).ok();
        Ok(Run {
            dir: dir.to_path_buf(),
            manifest,
            suite,
            records,
            discarded_bytes,
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
