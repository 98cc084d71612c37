//! Power limit x batch size (Zeus, NSDI '23): energy- and time-to-accuracy
//! per pair, the Pareto frontier, and Zeus's cost
//! `eta * ETA + (1 - eta) * MaxPower * TTA` with the pair that minimises it
//! for eta = 0 (time), 0.5 and 1 (energy). MaxPower is the GPU's limit
//! before joulebench changed it (its default, normally the maximum).

use super::Run;
use super::aggregate::energy_to_accuracy;
use super::study::{Ctx, Study};
use std::fmt::Write as _;

/// One (workload, batch size, power limit) point, means over its trials.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub workload: String,
    pub batch_size: u32,
    pub limit_w: u32,
    pub n: usize,
    pub eta_j: f64,
    pub tta_s: f64,
    pub pareto: bool,
}

/// Points of the trials that set a power limit and reached `target`.
pub fn points(run: &Run, target: f64) -> Vec<Point> {
    type Key = (String, u32, u32);
    let mut acc: Vec<(Key, Vec<(f64, f64)>)> = Vec::new();
    for r in &run.records {
        let Some(w) = r.config.gpu_power_limit_w else {
            continue;
        };
        let Some((j, s)) = energy_to_accuracy(r, target) else {
            continue;
        };
        let key = (r.key.workload.clone(), r.config.batch_size, w);
        match acc.iter_mut().find(|a| a.0 == key) {
            Some(a) => a.1.push((j.0, s.0)),
            None => acc.push((key, vec![(j.0, s.0)])),
        }
    }
    let mut pts: Vec<Point> = acc
        .into_iter()
        .map(|((workload, batch_size, limit_w), v)| {
            let n = v.len();
            Point {
                workload,
                batch_size,
                limit_w,
                n,
                eta_j: v.iter().map(|x| x.0).sum::<f64>() / n as f64,
                tta_s: v.iter().map(|x| x.1).sum::<f64>() / n as f64,
                pareto: false,
            }
        })
        .collect();
    frontier(&mut pts);
    pts.sort_by(|a, b| {
        (&a.workload, a.batch_size, a.limit_w).cmp(&(&b.workload, b.batch_size, b.limit_w))
    });
    pts
}

/// Marks the points no other point of the same workload dominates (as
/// cheap and as fast, and strictly better in one).
pub fn frontier(pts: &mut [Point]) {
    let snapshot = pts.to_vec();
    for p in pts.iter_mut() {
        p.pareto = !snapshot.iter().any(|q| {
            q.workload == p.workload
                && q.eta_j <= p.eta_j
                && q.tta_s <= p.tta_s
                && (q.eta_j < p.eta_j || q.tta_s < p.tta_s)
        });
    }
}

/// Zeus's cost of a point.
pub fn cost(p: &Point, eta: f64, max_power_w: f64) -> f64 {
    eta * p.eta_j + (1.0 - eta) * max_power_w * p.tta_s
}

/// The power limit x batch size study (Zeus).
pub struct PowerLimit;

impl Study for PowerLimit {
    fn name(&self) -> &'static str {
        "power-limit"
    }

    fn section(&self, ctx: &Ctx, o: &mut String) {
        report_section(o, ctx.run, ctx.target);
    }
}

/// The report section (nothing when no trial set a power limit).
fn report_section(o: &mut String, run: &Run, target: f64) {
    let pts = points(run, target);
    if pts.is_empty() {
        return;
    }
    let max_power = run
        .records
        .iter()
        .filter_map(|r| r.gpu_settings.as_ref())
        .flat_map(|g| g.original_power_limit_w.iter().copied())
        .fold(0.0, f64::max);
    let _ = writeln!(
        o,
        "\n## Power limit x batch size (to {:.1}% validation accuracy)\n",
        target * 100.0
    );
    let _ = writeln!(
        o,
        "Energy (ETA) and time (TTA) to the target, means over seeds; `*` marks the Pareto frontier (no other pair is both cheaper and faster). \
         Zeus's cost = eta x ETA + (1 - eta) x MaxPower x TTA, MaxPower = {max_power:.0} W (the GPU's limit before the run).\n"
    );
    let _ = writeln!(
        o,
        "| workload | batch | limit W | n | ETA J | TTA s | frontier | cost eta=0 | cost eta=0.5 | cost eta=1 |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|");
    for p in &pts {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {:.1} | {:.2} | {} | {:.0} | {:.0} | {:.0} |",
            p.workload,
            p.batch_size,
            p.limit_w,
            p.n,
            p.eta_j,
            p.tta_s,
            if p.pareto { "*" } else { "" },
            cost(p, 0.0, max_power),
            cost(p, 0.5, max_power),
            cost(p, 1.0, max_power)
        );
    }
    let _ = writeln!(o);
    for eta in [0.0, 0.5, 1.0] {
        let mut workloads: Vec<&str> = pts.iter().map(|p| p.workload.as_str()).collect();
        workloads.dedup();
        for w in workloads {
            if let Some(best) = pts
                .iter()
                .filter(|p| p.workload == w)
                .min_by(|a, b| cost(a, eta, max_power).total_cmp(&cost(b, eta, max_power)))
            {
                let _ = writeln!(
                    o,
                    "- eta = {eta}: {w} is cheapest at batch {} and {} W ({:.1} J, {:.2} s to the target)",
                    best.batch_size, best.limit_w, best.eta_j, best.tta_s
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(b: u32, w: u32, j: f64, s: f64) -> Point {
        Point {
            workload: "mlp".into(),
            batch_size: b,
            limit_w: w,
            n: 1,
            eta_j: j,
            tta_s: s,
            pareto: false,
        }
    }

    #[test]
    fn the_frontier_keeps_only_undominated_pairs() {
        let mut v = vec![
            pt(128, 300, 100.0, 3.0), // cheapest
            pt(128, 700, 150.0, 2.0), // fastest
            pt(512, 450, 160.0, 2.5), // dominated by 128/700
            pt(512, 300, 120.0, 2.8), // between: kept
        ];
        frontier(&mut v);
        assert_eq!(
            v.iter().map(|p| p.pareto).collect::<Vec<_>>(),
            [true, true, false, true]
        );
    }

    #[test]
    fn zeus_cost_weighs_energy_against_time_at_max_power() {
        let p = pt(128, 300, 100.0, 2.0);
        assert_eq!(cost(&p, 1.0, 700.0), 100.0);
        assert_eq!(cost(&p, 0.0, 700.0), 1400.0);
        assert_eq!(cost(&p, 0.5, 700.0), 750.0);
    }
}
