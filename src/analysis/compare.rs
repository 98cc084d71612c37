//! `joulebench compare RUN_A RUN_B`: run B against run A per matching
//! workload × variant, telling a regression from noise.
//!
//! Trials pair on seed and repeat (the same seed gives the same weights and
//! data order in both runs), and only completed, valid trials pair. Each
//! metric is compared as the ratio B / A on the log scale (energy and time
//! change multiplicatively), accuracy as a difference in points. Run-to-run
//! noise is a property of the machine more than of a variant, so the spread
//! of the log ratios is pooled over the variants of a workload (one-way
//! ANOVA's within-group variance: each variant keeps its own mean, the
//! residuals share one standard deviation with the summed degrees of
//! freedom), which a suite's few seeds per variant could not give alone.
//!
//! A metric's verdict at threshold T (percent; points for accuracy):
//! - regression: the interval's lower end is above +T;
//! - ok: its upper end is below +T (a regression of T would have shown);
//! - cannot judge: the interval spans +T (too few pairs or too much noise
//!   for a regression of that size to show: the spread says how many pairs
//!   would), or a pair's trial was flagged as disturbed by other work, or
//!   fewer than two pairs are valid.
//!
//! A row is a regression when a metric is (and no pair was disturbed), else
//! cannot judge when a metric is, else ok. The command line exits 3 on a
//! regression and 4 when something cannot be judged (with
//! `--fail-on-regression`).

use super::Run;
use super::stats::{Estimate, t_975};
use crate::record::{TrialRecord, TrialStatus};
use serde::{Deserialize, Serialize};

/// What a comparison concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Ok,
    CannotJudge,
    Regression,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::CannotJudge => "cannot judge",
            Verdict::Regression => "REGRESSION",
        }
    }
}

/// One metric of one row: B against A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Energy and time: log(B / A) per pair (mean, pooled sd, 95% half-width).
    /// Accuracy: B − A in percentage points.
    pub change: Estimate,
    /// Whether the interval uses the spread pooled over the workload's variants.
    pub pooled: bool,
    pub verdict: Verdict,
    /// Pairs the spread needs for a change of the threshold's size to show
    /// (when the verdict is "cannot judge" for that reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs_needed: Option<usize>,
}

impl Change {
    /// `+12.3 % [+8.1, +16.7]` for ratios, `-0.52 pp [-1.1, +0.1]` for points.
    pub fn show(&self, ratio: bool) -> String {
        let e = &self.change;
        if !e.mean.is_finite() {
            return "-".into();
        }
        let (m, lo, hi, unit) = if ratio {
            let pct = |x: f64| (x.exp() - 1.0) * 100.0;
            (pct(e.mean), pct(e.low()), pct(e.high()), "%")
        } else {
            (e.mean, e.low(), e.high(), "pp")
        };
        if !e.ci95.is_finite() {
            return format!("{m:+.1} {unit}");
        }
        format!("{m:+.1} {unit} [{lo:+.1}, {hi:+.1}]")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    pub workload: String,
    pub variant: String,
    pub n_a: usize,
    pub n_b: usize,
    /// Pairs (seed and repeat) with both trials completed and valid.
    pub pairs: usize,
    pub energy: Change,
    pub time: Change,
    pub accuracy: Change,
    pub verdict: Verdict,
    /// Why the verdict is what it is, e.g. "energy +31.2 % [+25.0, +37.8]"
    /// or "run B was disturbed (...)".
    pub reasons: Vec<String>,
}

/// The thresholds a comparison judges at.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Energy and time increase that counts as a regression, percent.
    pub pct: f64,
    /// Accuracy drop that counts as a regression, points.
    pub accuracy_pp: f64,
}

/// The most other processes took of the machine during any window of `r`.
fn other_share(r: &TrialRecord) -> f64 {
    r.windows()
        .filter_map(|w| w.interference.map(|i| i.other_share))
        .fold(0.0, f64::max)
}

fn disturbed(r: &TrialRecord) -> bool {
    r.validity.as_ref().is_some_and(|v| v.disturbed())
}

fn counts(r: &TrialRecord) -> bool {
    r.status == TrialStatus::Completed && !r.validity.as_ref().is_some_and(|v| v.is_invalid())
}

/// A trial of run A with its partner in run B.
type Pair<'a> = (&'a TrialRecord, &'a TrialRecord);

/// Pairs of one row: (A, B) on the same seed and repeat, both counting.
fn pairs<'a>(
    a: &[&'a TrialRecord],
    b: &[&'a TrialRecord],
) -> Vec<(&'a TrialRecord, &'a TrialRecord)> {
    b.iter()
        .filter(|rb| counts(rb))
        .filter_map(|rb| {
            a.iter()
                .find(|ra| {
                    counts(ra) && ra.key.seed == rb.key.seed && ra.key.repeat == rb.key.repeat
                })
                .map(|ra| (*ra, *rb))
        })
        .collect()
}

fn energy(r: &TrialRecord) -> f64 {
    r.total_energy().joules.0
}

fn seconds(r: &TrialRecord) -> f64 {
    r.training.as_ref().map_or(f64::NAN, |t| t.seconds.0)
}

fn accuracy(r: &TrialRecord) -> f64 {
    r.test_accuracy().map_or(f64::NAN, |a| a * 100.0)
}

/// Per-pair values of one metric: log ratios or point differences.
fn diffs(ps: &[(&TrialRecord, &TrialRecord)], f: fn(&TrialRecord) -> f64, ratio: bool) -> Vec<f64> {
    ps.iter()
        .map(|(a, b)| {
            let (x, y) = (f(a), f(b));
            if ratio {
                if x > 0.0 && y > 0.0 {
                    (y / x).ln()
                } else {
                    f64::NAN
                }
            } else {
                y - x
            }
        })
        .filter(|d| d.is_finite())
        .collect()
}

/// The pooled standard deviation of groups (each about its own mean) and its
/// degrees of freedom.
fn pooled_sd(groups: &[Vec<f64>]) -> (f64, usize) {
    let mut ss = 0.0;
    let mut df = 0;
    for g in groups.iter().filter(|g| g.len() >= 2) {
        let m = g.iter().sum::<f64>() / g.len() as f64;
        ss += g.iter().map(|x| (x - m).powi(2)).sum::<f64>();
        df += g.len() - 1;
    }
    if df == 0 {
        (f64::NAN, 0)
    } else {
        ((ss / df as f64).sqrt(), df)
    }
}

/// A metric's change with the pooled spread, judged at `threshold` (in the
/// metric's own unit: percent for ratios, points for accuracy; `worse_up`:
/// an increase is worse).
fn judge(xs: &[f64], pooled: (f64, usize), threshold: f64, ratio: bool) -> Change {
    let own = Estimate::of(xs);
    let (sd, df) = pooled;
    let use_pooled = df > own.n.saturating_sub(1) && sd.is_finite() && own.n >= 1;
    let change = if use_pooled {
        Estimate {
            n: own.n,
            mean: own.mean,
            sd,
            ci95: t_975(df) * sd / (own.n as f64).sqrt(),
        }
    } else {
        own
    };
    // The threshold on the metric's scale, with "worse" as positive.
    let (t, lo, hi) = if ratio {
        ((1.0 + threshold / 100.0).ln(), change.low(), change.high())
    } else {
        (threshold, -change.high(), -change.low())
    };
    let verdict = if change.n < 2 && !use_pooled || !change.ci95.is_finite() {
        Verdict::CannotJudge
    } else if lo > t {
        Verdict::Regression
    } else if hi < t {
        Verdict::Ok
    } else {
        Verdict::CannotJudge
    };
    let pairs_needed = (verdict == Verdict::CannotJudge
        && change.sd.is_finite()
        && change.sd > 0.0)
        .then(|| {
            let dist = (t - if ratio { change.mean } else { -change.mean }).abs();
            let df_extra = if use_pooled { df + 1 - change.n } else { 0 };
            (2..=10_000).find(|&n| t_975(n - 1 + df_extra) * change.sd / (n as f64).sqrt() < dist)
        })
        .flatten();
    Change {
        change,
        pooled: use_pooled,
        verdict,
        pairs_needed,
    }
}

/// Compares B against A (see the module doc for the statistics).
pub fn compare(a: &Run, b: &Run, th: Thresholds) -> Vec<CompareRow> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in &b.records {
        let k = (r.key.workload.clone(), r.key.variant.clone());
        let in_a = a
            .records
            .iter()
            .any(|x| x.key.workload == k.0 && x.key.variant == k.1);
        if in_a && !keys.contains(&k) {
            keys.push(k);
        }
    }
    fn of<'r>(run: &'r Run, w: &str, v: &str) -> Vec<&'r TrialRecord> {
        run.records
            .iter()
            .filter(|r| r.key.workload == w && r.key.variant == v)
            .collect()
    }
    // Pairs per row, then each workload's pooled spread per metric.
    let rows: Vec<((String, String), Vec<Pair>)> = keys
        .into_iter()
        .map(|(w, v)| {
            let ps = pairs(&of(a, &w, &v), &of(b, &w, &v));
            ((w, v), ps)
        })
        .collect();
    let metric = |ps: &[(&TrialRecord, &TrialRecord)], k: usize| match k {
        0 => diffs(ps, energy, true),
        1 => diffs(ps, seconds, true),
        _ => diffs(ps, accuracy, false),
    };
    rows.iter()
        .map(|((w, v), ps)| {
            let pooled: Vec<(f64, usize)> = (0..3)
                .map(|k| {
                    let groups: Vec<Vec<f64>> = rows
                        .iter()
                        .filter(|((w2, _), _)| w2 == w)
                        .map(|(_, ps2)| metric(ps2, k))
                        .collect();
                    pooled_sd(&groups)
                })
                .collect();
            let energy = judge(&metric(ps, 0), pooled[0], th.pct, true);
            let time = judge(&metric(ps, 1), pooled[1], th.pct, true);
            let accuracy = judge(&metric(ps, 2), pooled[2], th.accuracy_pp, false);
            let (ra, rb) = (of(a, w, v), of(b, w, v));
            row(w, v, ra.len(), rb.len(), ps, [energy, time, accuracy], th)
        })
        .collect()
}

/// A row's verdict and reasons from its three metrics.
fn row(
    w: &str,
    v: &str,
    n_a: usize,
    n_b: usize,
    ps: &[(&TrialRecord, &TrialRecord)],
    [energy, time, accuracy]: [Change; 3],
    th: Thresholds,
) -> CompareRow {
    let mut reasons = Vec::new();
    let mut verdict = Verdict::Ok;
    for (name, c, ratio, thr) in [
        ("energy", &energy, true, th.pct),
        ("time", &time, true, th.pct),
        ("accuracy", &accuracy, false, th.accuracy_pp),
    ] {
        match c.verdict {
            Verdict::Regression => reasons.push(format!("{name} {}", c.show(ratio))),
            Verdict::CannotJudge => reasons.push(match c.pairs_needed {
                Some(n) => format!(
                    "{name} {} spans the {thr} {} threshold; about {n} pairs would decide",
                    c.show(ratio),
                    if ratio { "%" } else { "pp" }
                ),
                None => format!("{name}: too few valid pairs ({})", c.change.n),
            }),
            Verdict::Ok => {}
        }
        verdict = verdict.max(c.verdict);
    }
    for (side, pick) in [("A", 0), ("B", 1)] {
        let hit: Vec<&TrialRecord> = ps
            .iter()
            .map(|p| if pick == 0 { p.0 } else { p.1 })
            .filter(|r| disturbed(r))
            .collect();
        if !hit.is_empty() {
            let share = hit.iter().map(|r| other_share(r)).fold(0.0, f64::max);
            reasons.insert(
                0,
                format!(
                    "run {side} was disturbed (other processes used up to {:.0}% of the CPUs during {} trial(s))",
                    100.0 * share,
                    hit.len()
                ),
            );
            verdict = Verdict::CannotJudge;
        }
    }
    if verdict == Verdict::Regression {
        reasons.retain(|r| !r.contains("threshold") && !r.contains("too few"));
    }
    CompareRow {
        workload: w.to_string(),
        variant: v.to_string(),
        n_a,
        n_b,
        pairs: ps.len(),
        energy,
        time,
        accuracy,
        verdict,
        reasons,
    }
}

/// A plain-text table of the comparison.
pub fn table(rows: &[CompareRow], th: Thresholds) -> String {
    use crate::util::table::{Col, TextTable};
    let mut t = TextTable::new(&[
        ("workload/variant", Col::Left),
        ("pairs", Col::Right),
        ("energy B/A", Col::Left),
        ("time B/A", Col::Left),
        ("accuracy B-A", Col::Left),
        ("verdict", Col::Wrap),
    ]);
    for r in rows {
        let p = |c: &Change| if c.pooled { " (p)" } else { "" };
        t.row([
            format!("{}/{}", r.workload, r.variant),
            format!("{} of {},{}", r.pairs, r.n_a, r.n_b),
            format!("{}{}", r.energy.show(true), p(&r.energy)),
            format!("{}{}", r.time.show(true), p(&r.time)),
            format!("{}{}", r.accuracy.show(false), p(&r.accuracy)),
            if r.reasons.is_empty() {
                r.verdict.label().to_string()
            } else {
                format!("{}: {}", r.verdict.label(), r.reasons.join("; "))
            },
        ]);
    }
    format!(
        "{}Pairs share seed and repeat; only completed, valid trials pair. Intervals are 95% Student t of the paired log ratio \
         (accuracy: of the point difference); (p) = spread pooled over the workload's variants. A regression needs the whole \
         interval above +{}% (accuracy: below -{} pp); ok needs it below.\n",
        t.render(),
        th.pct,
        th.accuracy_pp
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_above_the_threshold_is_a_regression_and_one_across_it_cannot_be_judged() {
        let t = |xs: &[f64]| judge(xs, (f64::NAN, 0), 5.0, true);
        // +30 % on every pair, 1 % noise.
        let up: Vec<f64> = [1.29, 1.30, 1.31, 1.30]
            .iter()
            .map(|x: &f64| x.ln())
            .collect();
        assert_eq!(t(&up).verdict, Verdict::Regression);
        // No change, 1 % noise: ok (a 5 % regression would have shown).
        let flat: Vec<f64> = [0.99, 1.0, 1.01, 1.0]
            .iter()
            .map(|x: &f64| x.ln())
            .collect();
        assert_eq!(t(&flat).verdict, Verdict::Ok);
        // No change, 30 % noise over 3 pairs: the interval spans +5 %.
        let noisy: Vec<f64> = [0.7, 1.3, 1.0].iter().map(|x: &f64| x.ln()).collect();
        let c = t(&noisy);
        assert_eq!(c.verdict, Verdict::CannotJudge);
        assert!(c.pairs_needed.is_some_and(|n| n > 3), "{c:?}");
        // One pair: cannot judge, whatever its value.
        assert_eq!(t(&up[..1]).verdict, Verdict::CannotJudge);
        // The same single pair with a spread pooled from other variants can be.
        let pooled = judge(&up[..1], (0.01, 6), 5.0, true);
        assert!(
            pooled.pooled && pooled.verdict == Verdict::Regression,
            "{pooled:?}"
        );
    }

    #[test]
    fn pooling_keeps_each_groups_mean() {
        let (sd, df) = pooled_sd(&[vec![1.0, 3.0], vec![10.0, 12.0], vec![5.0]]);
        assert_eq!(df, 2);
        assert!((sd - 2f64.sqrt()).abs() < 1e-12);
    }
}
