//! Context-length sweep: training J per token, inference J per 1,000
//! generated tokens and validation bits per character against T, one line
//! per workload × attention variant.

use super::chart::{Area, Chart};
use super::style::{Res, at, color, energy_label, legend, line_with_bars};
use crate::analysis::context_sweep::{Point, points};
use crate::analysis::stats::Estimate;
use crate::analysis::study::Ctx;

use plotters::coord::Shift;
use plotters::prelude::*;

/// The context-length sweep (runs whose transformer trials span two or more contexts or attention variants).
pub struct ContextSweepChart;

impl Chart for ContextSweepChart {
    const STEM: &'static str = "context-sweep";
    const SIZE: (u32, u32) = (1500, 480);

    fn applies(&self, ctx: &Ctx) -> bool {
        !points(ctx.run).is_empty()
    }

    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>, ctx: &Ctx) -> Res {
        context_sweep(area, &points(ctx.run), ctx.run.modelled())
    }
}

type Metric = fn(&Point) -> &Estimate;

/// Charts place T at log2(T), so powers of two sit evenly apart.
fn x_of(context: usize) -> f64 {
    (context.max(1) as f64).log2()
}

fn number(y: f64) -> String {
    if y == 0.0 || (0.1..1000.0).contains(&y.abs()) {
        format!("{y:.2}")
    } else {
        format!("{y:.1e}")
    }
}

/// 7. Context sweep, three panels side by side.
pub fn context_sweep<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pts: &[Point],
    modelled: bool,
) -> Res {
    t!(area.fill(&WHITE));
    let panels = area.split_evenly((1, 3));
    let mut lines: Vec<(String, String)> = pts
        .iter()
        .map(|p| (p.workload.clone(), p.attention.clone()))
        .collect();
    lines.dedup();
    lines.sort();
    lines.dedup();
    let metrics: [(&str, Metric, bool); 3] = [
        ("training J / token", |p| &p.train_j_per_token, true),
        (
            "inference J / 1k tokens",
            |p| &p.inference_j_per_1k_tokens,
            true,
        ),
        ("validation bits / char", |p| &p.bits_per_char, false),
    ];
    for (panel, (title, f, energy)) in panels.iter().zip(metrics) {
        let vals: Vec<(f64, f64, f64)> = pts
            .iter()
            .map(|p| at(x_of(p.context), f(p)))
            .filter(|v| v.1.is_finite())
            .collect();
        let xmax = vals.iter().map(|v| v.0).fold(0.0, f64::max);
        let xmin = vals.iter().map(|v| v.0).fold(xmax, f64::min);
        let ticks = (xmax - xmin).round() as usize + 1;
        let ymax = vals
            .iter()
            .map(|v| v.1 + v.2)
            .fold(0.0, f64::max)
            .max(1e-12)
            * 1.15;
        let mut chart = t!(ChartBuilder::on(panel)
            .caption(
                format!(
                    "{title}{}",
                    if energy { energy_label(modelled) } else { "" }
                ),
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(xmin - 0.4..xmax + 0.4, 0f64..ymax));
        t!(chart
            .configure_mesh()
            .x_desc("context T (tokens, log scale)")
            .x_labels(ticks.clamp(2, 12))
            .x_label_formatter(&|x| format!("{:.0}", x.exp2()))
            .y_label_formatter(&|y| number(*y))
            .draw());
        for (i, (w, a)) in lines.iter().enumerate() {
            let mut line: Vec<(f64, f64, f64)> = pts
                .iter()
                .filter(|p| &p.workload == w && &p.attention == a)
                .map(|p| at(x_of(p.context), f(p)))
                .filter(|v| v.1.is_finite())
                .collect();
            line.sort_by(|x, y| x.0.total_cmp(&y.0));
            let label = if lines.iter().any(|l| &l.0 != w) {
                format!("{w} {a}")
            } else {
                a.clone()
            };
            line_with_bars(&mut chart, &line, color(i), label)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    }
    Ok(())
}
