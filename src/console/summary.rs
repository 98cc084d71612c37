//! Plain-text summaries of trial records (end-of-run table, progress lines).
//! The table is a `util::table` (comfy-table): it fits the terminal.

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
    use crate::util::table::{Col, TextTable};
    let mut t = TextTable::new(&[
        ("trial", Col::Left),
        ("status", Col::Left),
        ("test acc", Col::Right),
        ("s/epoch", Col::Right),
        ("train J", Col::Right),
        ("idle W", Col::Right),
        ("train net J", Col::Right),
        ("total J", Col::Right),
        ("inf J/1k", Col::Right),
        ("CO2e mg", Col::Right),
        ("provenance", Col::Wrap),
    ]);
    for r in records {
        let total = r.total_energy();
        let train = r.training.as_ref();
        let n_ep = r.epochs.len().max(1) as f64;
        t.row([
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
    let mut out = t.render();
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
