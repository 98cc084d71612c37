//! Sparse execution over sparsity: per workload, format and target
//! sparsity, the dense and sparse inference windows' joules per 1,000 and
//! milliseconds (means with 95% intervals over trials), and the break-even
//! sparsity where sparse execution starts to cost less than dense.

use super::Run;
use super::stats::Estimate;
use super::study::{Ctx, Study};
use crate::record::{TrialRecord, TrialStatus};
use std::fmt::Write as _;

/// One (workload, format, sparsity) cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub workload: String,
    /// `csr` or `bsr b4`.
    pub format: String,
    /// The pruning target; `measured` is what the layers held.
    pub target: f64,
    pub measured: Estimate,
    pub dense_j_per_1k: Estimate,
    pub sparse_j_per_1k: Estimate,
    pub dense_ms: Estimate,
    pub sparse_ms: Estimate,
    /// Paired sparse / dense J per 1,000 within each trial.
    pub ratio: Estimate,
}

fn format_of(r: &TrialRecord) -> Option<String> {
    let s = r.sparse.as_ref().filter(|s| s.error.is_none())?;
    Some(if s.format == "bsr" {
        format!("bsr b{}", s.block)
    } else {
        s.format.clone()
    })
}

/// The sweep's cells, ordered by workload, format and sparsity.
pub fn points(run: &Run) -> Vec<Point> {
    let done: Vec<&TrialRecord> = run
        .records
        .iter()
        .filter(|r| r.status == TrialStatus::Completed && format_of(r).is_some())
        .collect();
    let target = |r: &TrialRecord| r.config.prune.as_ref().map_or(0.0, |p| p.sparsity);
    let mut keys: Vec<(String, String, f64)> = done
        .iter()
        .map(|r| {
            (
                r.key.workload.clone(),
                format_of(r).unwrap_or_default(),
                target(r),
            )
        })
        .collect();
    keys.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)).then(a.2.total_cmp(&b.2)));
    keys.dedup();
    keys.into_iter()
        .map(|(workload, format, t)| {
            let rs: Vec<&&TrialRecord> = done
                .iter()
                .filter(|r| {
                    r.key.workload == workload
                        && format_of(r).as_deref() == Some(format.as_str())
                        && target(r) == t
                })
                .collect();
            let est = |f: &dyn Fn(&TrialRecord) -> Option<f64>| {
                Estimate::of(&rs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            let sparse = |r: &TrialRecord| r.sparse.as_ref().and_then(|s| s.inference.clone());
            Point {
                measured: est(&|r| r.sparse.as_ref().map(|s| s.sparsity)),
                dense_j_per_1k: est(&|r| r.inference.as_ref().map(|i| i.joules_per_1k.0)),
                sparse_j_per_1k: est(&|r| sparse(r).map(|i| i.joules_per_1k.0)),
                dense_ms: est(&|r| r.inference.as_ref().map(|i| i.window.seconds.0 * 1e3)),
                sparse_ms: est(&|r| sparse(r).map(|i| i.window.seconds.0 * 1e3)),
                ratio: est(&|r| {
                    let d = r.inference.as_ref()?.joules_per_1k.0;
                    (d > 0.0).then(|| sparse(r).map(|s| s.joules_per_1k.0 / d))?
                }),
                workload,
                format,
                target: t,
            }
        })
        .collect()
}

/// The lowest sparsity at which sparse execution costs less than dense, by
/// linear interpolation of the mean paired ratio between the sweep's points
/// (None if it never does; the first point if it always does).
pub fn break_even(pts: &[&Point]) -> Option<f64> {
    let mut prev: Option<(f64, f64)> = None;
    for p in pts {
        let (x, r) = (p.measured.mean, p.ratio.mean);
        if !(x.is_finite() && r.is_finite()) {
            continue;
        }
        if r < 1.0 {
            return Some(match prev {
                Some((x0, r0)) if r0 >= 1.0 => x0 + (x - x0) * (r0 - 1.0) / (r0 - r),
                _ => x,
            });
        }
        prev = Some((x, r));
    }
    None
}

/// Groups of one workload and format, in order.
pub fn series(pts: &[Point]) -> Vec<(String, String, Vec<&Point>)> {
    let mut out: Vec<(String, String, Vec<&Point>)> = Vec::new();
    for p in pts {
        match out
            .iter_mut()
            .find(|s| s.0 == p.workload && s.1 == p.format)
        {
            Some(s) => s.2.push(p),
            None => out.push((p.workload.clone(), p.format.clone(), vec![p])),
        }
    }
    out
}

/// The sparse-execution study.
pub struct SparsitySweep;

impl Study for SparsitySweep {
    fn name(&self) -> &'static str {
        "sparsity-sweep"
    }

    fn section(&self, ctx: &Ctx, o: &mut String) {
        report_section(o, ctx.run);
    }
}

/// The report's "Sparse execution" section (nothing without sparse records).
fn report_section(o: &mut String, run: &Run) {
    let pts = points(run);
    if pts.is_empty() {
        return;
    }
    let est = if run.modelled() { " [ESTIMATED]" } else { "" };
    let kernel = run
        .records
        .iter()
        .find_map(|r| r.sparse.as_ref().map(|s| s.kernel.clone()))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "## Sparse execution\n\nThe same trained weights run dense (masked) and by the sparse kernel ({kernel}) over the same test images; means ± 95% CI over seeds; ratio = sparse / dense J per 1,000 paired within each trial{est}.\n\n| workload | format | target sparsity | measured | dense J/1k | sparse J/1k | dense ms | sparse ms | sparse / dense |\n|---|---|---|---|---|---|---|---|---|"
    );
    for p in &pts {
        let _ = writeln!(
            o,
            "| {} | {} | {:.2} | {} | {} | {} | {} | {} | {} |",
            p.workload,
            p.format,
            p.target,
            p.measured.fixed(3),
            p.dense_j_per_1k.fixed(4),
            p.sparse_j_per_1k.fixed(4),
            p.dense_ms.fixed(1),
            p.sparse_ms.fixed(1),
            p.ratio.fixed(3)
        );
    }
    let _ = writeln!(o);
    for (w, f, s) in series(&pts) {
        let _ = match break_even(&s) {
            Some(x) => writeln!(
                o,
                "- {w} {f}: sparse execution costs less than dense from about {:.0}% sparsity (interpolated between the sweep's points).",
                x * 100.0
            ),
            None => writeln!(
                o,
                "- {w} {f}: sparse execution never cost less than dense in this sweep."
            ),
        };
    }
    let _ = writeln!(o);
}
