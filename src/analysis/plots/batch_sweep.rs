//! Batch-size sweep: energy and time against the (fixed) batch size, and,
//! when the run has batch schedules, the batch size each epoch used.

use super::chart::{Area, Chart};
use super::style::{Res, at, color, energy_label, legend, line_with_bars};
use crate::analysis::Run;
use crate::analysis::stats::Estimate;
use crate::analysis::study::Ctx;
use crate::record::TrialRecord;

use plotters::coord::Shift;
use plotters::prelude::*;

/// The batch-size sweep (every run).
pub struct BatchSweep;

impl Chart for BatchSweep {
    const STEM: &'static str = "batch-size-sweep";
    const SIZE: (u32, u32) = (1100, 500);

    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>, ctx: &Ctx) -> Res {
        batch_sweep(area, ctx.run)
    }
}

/// 5. Batch-size sweep: training energy and time versus batch size, per workload.
pub fn batch_sweep<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, run: &Run) -> Res {
    t!(area.fill(&WHITE));
    let schedules = crate::analysis::batch_schedules::rows(run);
    let (sweep, per_epoch) = if schedules.is_empty() {
        (area.clone(), None)
    } else {
        let (a, b) = area.split_horizontally(area.dim_in_pixel().0 * 2 / 3);
        (a, Some(b))
    };
    if let Some(panel) = per_epoch {
        schedule_panel(&panel, &schedules)?;
    }
    let (left, right) = sweep.split_horizontally(sweep.dim_in_pixel().0 / 2);
    let mut workloads: Vec<String> = Vec::new();
    for r in &run.records {
        if !workloads.contains(&r.key.workload) {
            workloads.push(r.key.workload.clone());
        }
    }
    let points = |w: &str, f: &dyn Fn(&TrialRecord) -> Option<f64>| -> Vec<(f64, f64, f64)> {
        let mut bs: Vec<u32> = run
            .records
            .iter()
            .filter(|r| r.key.workload == w && r.config.batch_schedule.is_none())
            .map(|r| r.config.batch_size)
            .collect();
        bs.sort_unstable();
        bs.dedup();
        bs.into_iter()
            .filter_map(|b| {
                let xs: Vec<f64> = run
                    .records
                    .iter()
                    .filter(|r| r.key.workload == w && r.config.batch_size == b)
                    .filter(|r| r.config.batch_schedule.is_none())
                    .filter_map(f)
                    .collect();
                let e = Estimate::of(&xs);
                e.mean.is_finite().then(|| at(b as f64, &e))
            })
            .collect()
    };
    type Metric<'a> = &'a dyn Fn(&TrialRecord) -> Option<f64>;
    let panels: [(&DrawingArea<DB, Shift>, &str, Metric); 2] = [
        (&left, "training energy (J)", &|r: &TrialRecord| {
            r.training.as_ref().map(|t| t.joules.0)
        }),
        (&right, "training time (s)", &|r: &TrialRecord| {
            r.training.as_ref().map(|t| t.seconds.0)
        }),
    ];
    for (panel, ydesc, f) in panels {
        let all: Vec<(f64, f64, f64)> = workloads.iter().flat_map(|w| points(w, f)).collect();
        let xmax = all.iter().map(|p| p.0).fold(1.0, f64::max);
        let xmin = all.iter().map(|p| p.0).fold(xmax, f64::min);
        let ymax = all.iter().map(|p| p.1 + p.2).fold(0.0, f64::max).max(1e-9) * 1.15;
        let mut chart = t!(ChartBuilder::on(panel)
            .caption(
                format!(
                    "{} vs batch size{}",
                    ydesc.split(" (").next().unwrap_or(ydesc),
                    if ydesc.contains("energy") {
                        energy_label(run.modelled())
                    } else {
                        ""
                    }
                ),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((xmin / 1.5..xmax * 1.5).log_scale(), 0f64..ymax));
        t!(chart
            .configure_mesh()
            .x_desc("batch size (log scale)")
            .y_desc(ydesc)
            .draw());
        for (i, w) in workloads.iter().enumerate() {
            line_with_bars(&mut chart, &points(w, f), color(i), w.clone())?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}

/// The batch size each epoch of a scheduled variant used (mean over seeds).
fn schedule_panel<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    rows: &[crate::analysis::batch_schedules::EpochRow],
) -> Res {
    let mut lines: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        if !lines.contains(&(r.workload.as_str(), r.variant.as_str())) {
            lines.push((&r.workload, &r.variant));
        }
    }
    let emax = rows.iter().map(|r| r.epoch).max().unwrap_or(1) as f64;
    let bmax = rows.iter().map(|r| r.batch.mean).fold(2.0, f64::max);
    let bmin = rows.iter().map(|r| r.batch.mean).fold(bmax, f64::min);
    let mut chart = t!(ChartBuilder::on(panel)
        .caption("batch size per epoch (schedules)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..emax + 0.5, (bmin / 1.5..bmax * 1.5).log_scale()));
    t!(chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("batch size (log scale)")
        .x_labels((emax as usize).clamp(2, 12))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw());
    for (i, (w, v)) in lines.iter().enumerate() {
        let c = color(i + 3);
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.workload == *w && r.variant == *v)
            .map(|r| (r.epoch as f64, r.batch.mean))
            .collect();
        let label = if lines.iter().any(|l| l.0 != *w) {
            format!("{w}/{v}")
        } else {
            v.to_string()
        };
        t!(chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)).point_size(4))
            .map(|s| s.label(label.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 12, y)], c.stroke_width(2))
            })));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}
