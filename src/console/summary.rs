//! Plain-text summaries of trial records (end-of-run table, progress lines).

use crate::record::{TrialRecord, TrialStatus};

fn status_label(r: &TrialRecord) -> String {
    match &r.status {
        TrialStatus::Completed => "ok".into(),
        TrialStatus::Diverged { epoch } => format!("diverged@{epoch}"),
        TrialStatus::Failed { .. } => "FAILED".into(),
    }
}

/// One line per trial for progress output.
pub fn one_line(r: &TrialRecord) -> String {
    match &r.status {
        TrialStatus::Failed { error } => format!("FAILED: {error}"),
        _ => {
            let total = r.total_energy();
            format!(
                "{}: test acc {}, train {:.1} s, {:.1} J total ({})",
                status_label(r),
                r.test_accuracy()
                    .map_or("-".into(), |a| format!("{:.2}%", a * 100.0)),
                r.training.as_ref().map_or(0.0, |t| t.seconds.0),
                total.joules.0,
                total.provenance_label()
            )
        }
    }
}

/// The end-of-run table.
pub fn table(records: &[TrialRecord]) -> String {
    let header = [
        "trial",
        "status",
        "test acc",
        "s/epoch",
        "train J",
        "idle W",
        "train net J",
        "total J",
        "inf J/1k",
        "CO2e mg",
        "provenance",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in records {
        let total = r.total_energy();
        let train = r.training.as_ref();
        let n_ep = r.epochs.len().max(1) as f64;
        rows.push(vec![
            r.key.to_string(),
            status_label(r),
            r.test_accuracy()
                .map_or("-".into(), |a| format!("{:.2}%", a * 100.0)),
            train.map_or("-".into(), |t| format!("{:.2}", t.seconds.0 / n_ep)),
            train.map_or("-".into(), |t| format!("{:.1}", t.joules.0)),
            r.idle
                .as_ref()
                .map_or("-".into(), |i| format!("{:.2}", i.avg_watts.0)),
            train
                .and_then(|t| t.net_joules)
                .map_or("-".into(), |j| format!("{:.1}", j.0)),
            format!("{:.1}", total.joules.0),
            r.inference
                .as_ref()
                .map_or("-".into(), |i| format!("{:.2}", i.joules_per_1k.0)),
            r.impact
                .as_ref()
                .map_or("-".into(), |i| format!("{:.2}", i.co2e_g() * 1000.0)),
            total.provenance_label(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (s, w))| {
                if c == 0 || c == 1 || c + 1 == header.len() {
                    format!("{s:<w$}")
                } else {
                    format!("{s:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    out.push_str(
        "idle W: average power of the idle window before the trial; train net J = train J - idle W x train seconds.\n",
    );
    if let Some(i) = records.iter().find_map(|r| r.impact.as_ref()) {
        out.push_str(&format!(
            "CO2e: gross energy x PUE {} x {} gCO2e/kWh ({}, {}).\n",
            i.settings.pue,
            i.settings.region.g_co2e_per_kwh,
            i.settings.region.code,
            i.settings
                .region
                .year
                .map_or("no year".into(), |y| y.to_string())
        ));
    }
    for r in records {
        if let TrialStatus::Failed { error } = &r.status {
            out.push_str(&format!("failed {}: {error}\n", r.key));
        }
    }
    if records.iter().any(|r| r.total_energy().is_modelled()) {
        out.push_str(
            "Energy marked `estimated` is modelled from CPU utilisation and memory x rated power (report.md gives its band), not measured.\n",
        );
    }
    out
}
