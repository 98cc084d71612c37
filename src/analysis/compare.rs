//! `joulebench compare RUN_A RUN_B`: change in energy, time and accuracy per
//! matching workload × variant, with 95% CIs, flagging significant regressions.

use super::Run;
use super::aggregate::{TrialMetrics, metrics};
use super::stats::{Estimate, t_975};
use serde::{Deserialize, Serialize};

/// Change of B against A for one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Mean change (B − A) relative to A's mean, in percent (or percentage
    /// points for accuracy), with its 95% CI half-width.
    pub change: Estimate,
    pub paired: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    pub workload: String,
    pub variant: String,
    pub n_a: usize,
    pub n_b: usize,
    pub energy_pct: Change,
    pub time_pct: Change,
    pub accuracy_pp: Change,
    pub regression: Vec<String>,
}

/// Difference of means with a Welch interval (unpaired).
fn welch(a: &[f64], b: &[f64]) -> Estimate {
    let (ea, eb) = (Estimate::of(a), Estimate::of(b));
    let mean = eb.mean - ea.mean;
    if a.len() < 2 || b.len() < 2 {
        return Estimate {
            n: a.len().min(b.len()),
            mean,
            sd: f64::NAN,
            ci95: f64::NAN,
        };
    }
    let (va, vb) = (
        ea.sd.powi(2) / a.len() as f64,
        eb.sd.powi(2) / b.len() as f64,
    );
    let se = (va + vb).sqrt();
    let df = if se > 0.0 {
        (va + vb).powi(2) / (va.powi(2) / (a.len() - 1) as f64 + vb.powi(2) / (b.len() - 1) as f64)
    } else {
        (a.len() + b.len() - 2) as f64
    };
    Estimate {
        n: a.len().min(b.len()),
        mean,
        sd: se,
        ci95: t_975(df.floor().max(1.0) as usize) * se,
    }
}

fn change(
    a: &[&TrialMetrics],
    b: &[&TrialMetrics],
    f: fn(&TrialMetrics) -> f64,
    relative: bool,
) -> Change {
    // Paired when every trial of B has a partner in A with the same seed and repeat.
    let pairs: Vec<(f64, f64)> = b
        .iter()
        .filter_map(|mb| {
            a.iter()
                .find(|ma| ma.seed == mb.seed && ma.repeat == mb.repeat)
                .map(|ma| (f(ma), f(mb)))
        })
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let base = Estimate::of(
        &a.iter()
            .map(|m| f(m))
            .filter(|x| x.is_finite())
            .collect::<Vec<_>>(),
    )
    .mean;
    let scale = if relative { 100.0 / base } else { 100.0 };
    if pairs.len() == b.len() && pairs.len() >= 2 {
        let d: Vec<f64> = pairs
            .iter()
            .map(|(x, y)| (y - x) * if relative { 100.0 / x } else { 100.0 })
            .collect();
        return Change {
            change: Estimate::of(&d),
            paired: true,
        };
    }
    let xa: Vec<f64> = a.iter().map(|m| f(m)).filter(|x| x.is_finite()).collect();
    let xb: Vec<f64> = b.iter().map(|m| f(m)).filter(|x| x.is_finite()).collect();
    let w = welch(&xa, &xb);
    Change {
        change: Estimate {
            mean: w.mean * scale,
            ci95: w.ci95 * scale.abs(),
            sd: w.sd * scale.abs(),
            n: w.n,
        },
        paired: false,
    }
}

/// Compares B against A. `energy_pct` and `accuracy_pp` are the regression
/// thresholds: a significant energy or time increase beyond `energy_pct` %, or
/// a significant accuracy drop beyond `accuracy_pp` points, is a regression.
pub fn compare(a: &Run, b: &Run, energy_pct: f64, accuracy_pp: f64) -> Vec<CompareRow> {
    let ma: Vec<TrialMetrics> = a
        .records
        .iter()
        .map(metrics)
        .filter(|m| m.completed)
        .collect();
    let mb: Vec<TrialMetrics> = b
        .records
        .iter()
        .map(metrics)
        .filter(|m| m.completed)
        .collect();
    let mut keys: Vec<(String, String)> = Vec::new();
    for m in &mb {
        let k = (m.workload.clone(), m.variant.clone());
        if !keys.contains(&k) && ma.iter().any(|x| x.workload == k.0 && x.variant == k.1) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(w, v)| {
            let sa: Vec<&TrialMetrics> = ma
                .iter()
                .filter(|m| m.workload == w && m.variant == v)
                .collect();
            let sb: Vec<&TrialMetrics> = mb
                .iter()
                .filter(|m| m.workload == w && m.variant == v)
                .collect();
            let energy = change(&sa, &sb, |m| m.gross_j, true);
            let time = change(&sa, &sb, |m| m.train_s, true);
            let acc = change(&sa, &sb, |m| m.accuracy, false);
            let mut regression = Vec::new();
            if energy.change.excludes_zero() && energy.change.low() > energy_pct {
                regression.push(format!("energy +{:.1}%", energy.change.mean));
            }
            if time.change.excludes_zero() && time.change.low() > energy_pct {
                regression.push(format!("time +{:.1}%", time.change.mean));
            }
            if acc.change.excludes_zero() && acc.change.high() < -accuracy_pp {
                regression.push(format!("accuracy {:.2} pp", acc.change.mean));
            }
            CompareRow {
                workload: w,
                variant: v,
                n_a: sa.len(),
                n_b: sb.len(),
                energy_pct: energy,
                time_pct: time,
                accuracy_pp: acc,
                regression,
            }
        })
        .collect()
}

/// A plain-text table of the comparison (a `util::table`: fits the terminal).
pub fn table(rows: &[CompareRow]) -> String {
    use crate::util::table::{Col, TextTable};
    let mut t = TextTable::new(&[
        ("workload/variant", Col::Left),
        ("n(A,B)", Col::Right),
        ("energy change %", Col::Left),
        ("time change %", Col::Left),
        ("accuracy change pp", Col::Left),
        ("verdict", Col::Wrap),
    ]);
    for r in rows {
        let s = |c: &Change| format!("{}{}", c.change.show(2), if c.paired { " (p)" } else { "" });
        t.row([
            format!("{}/{}", r.workload, r.variant),
            format!("{},{}", r.n_a, r.n_b),
            s(&r.energy_pct),
            s(&r.time_pct),
            s(&r.accuracy_pp),
            if r.regression.is_empty() {
                "ok".to_string()
            } else {
                format!("REGRESSION: {}", r.regression.join(", "))
            },
        ]);
    }
    let mut o = t.render();
    o.push_str(
        "(p) = paired on seed and repeat; intervals are 95% Student t (Welch when unpaired).\n",
    );
    o
}

/// Workload/variant names both runs use whose resolved configurations
/// differ (the same name, another experiment): `name: what differs`.
/// Compared on the first record of each side, with `workload`/`variant`
/// themselves ignored.
pub fn config_mismatches(a: &Run, b: &Run) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for rb in &b.records {
        let k = (rb.key.workload.clone(), rb.key.variant.clone());
        if seen.contains(&k) {
            continue;
        }
        seen.push(k.clone());
        let Some(ra) = a
            .records
            .iter()
            .find(|r| r.key.workload == k.0 && r.key.variant == k.1)
        else {
            continue;
        };
        let (Ok(ca), Ok(cb)) = (
            serde_json::to_value(&ra.config),
            serde_json::to_value(&rb.config),
        ) else {
            continue;
        };
        let (Some(ca), Some(cb)) = (ca.as_object(), cb.as_object()) else {
            continue;
        };
        let differ: Vec<String> = ca
            .iter()
            .filter(|(f, v)| cb.get(*f) != Some(*v))
            .map(|(f, v)| {
                let other = cb.get(f).map_or("(absent)".into(), |x| x.to_string());
                format!("{f} {v} vs {other}")
            })
            .collect();
        if !differ.is_empty() {
            out.push(format!("{}/{}: {}", k.0, k.1, differ.join("; ")));
        }
    }
    out
}
