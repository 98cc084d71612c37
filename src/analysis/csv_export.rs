//! `trials.csv`: one row per trial. Columns (units in the names):
//! key, workload, variant, seed, repeat, status, accuracy (test, 0..1),
//! gross_j / idle_j / net_j (all windows), train_j, train_net_j, train_s,
//! j_per_sample (training), flop_per_j (training), inference_j_per_1k,
//! co2e_g, water_l (gross energy), parameters, macs_per_sample, epochs,
//! batch_size, learning_rate, optimizer, provenance (e.g. `estimated`);
//! then each registered study's columns (`Study::csv_columns`, in
//! `analysis::STUDIES` order): gross_j_low / gross_j_high and train_j_low /
//! train_j_high (`EstimateBand`; modelled runs: the figure under the lowest
//! and highest model of the estimate's band).
//! Empty cells mean "not defined" (e.g. no idle baseline, diverged trial).

use super::STUDIES;
use super::aggregate::metrics;
use crate::record::{TrialRecord, TrialStatus};

/// A number's cell: empty when not finite.
pub(crate) fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        String::new()
    }
}

pub fn to_csv(records: &[TrialRecord]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let common = [
        "key",
        "workload",
        "variant",
        "seed",
        "repeat",
        "status",
        "accuracy",
        "gross_j",
        "idle_j",
        "net_j",
        "train_j",
        "train_net_j",
        "train_s",
        "j_per_sample",
        "flop_per_j",
        "inference_j_per_1k",
        "co2e_g",
        "water_l",
        "parameters",
        "macs_per_sample",
        "epochs",
        "batch_size",
        "learning_rate",
        "optimizer",
        "provenance",
    ];
    let studies = STUDIES.iter().flat_map(|s| s.csv_columns().iter().copied());
    let _ = w.write_record(common.into_iter().chain(studies));
    for r in records {
        let m = metrics(r);
        let status = match &r.status {
            TrialStatus::Completed => "completed".to_string(),
            TrialStatus::Diverged { epoch } => format!("diverged@{epoch}"),
            TrialStatus::Failed { .. } => "failed".to_string(),
        };
        let mut row = vec![
            m.key.clone(),
            m.workload.clone(),
            m.variant.clone(),
            m.seed.to_string(),
            m.repeat.to_string(),
            status,
            num(m.accuracy),
            num(m.gross_j),
            num(m.idle_j),
            num(m.net_j),
            num(m.train_j),
            num(m.train_net_j),
            num(m.train_s),
            num(m.j_per_sample),
            num(m.flop_per_j),
            num(m.inference_j_per_1k),
            num(m.co2e_g),
            num(m.water_l),
            r.parameters.to_string(),
            r.macs_per_sample.to_string(),
            r.epochs.len().to_string(),
            r.config.batch_size.to_string(),
            r.config.optimizer.learning_rate.to_string(),
            format!("{:?}", r.config.optimizer.kind).to_lowercase(),
            m.provenance.clone(),
        ];
        for s in STUDIES {
            row.extend(s.csv_cells(r, &m));
        }
        let _ = w.write_record(row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}
