//! Sparse execution: inference J per 1,000 against measured sparsity, dense
//! and sparse execution per format, with each format's break-even marked.

use super::chart::{Area, Chart};
use super::style::{Res, at, color, energy_label, legend, line_with_bars};
use crate::analysis::sparsity_sweep::{Point, break_even, points, series};
use crate::analysis::study::Ctx;

use plotters::coord::Shift;
use plotters::prelude::*;

/// The sparsity sweep (runs with sparse-execution records).
pub struct SparsityChart;

impl Chart for SparsityChart {
    const STEM: &'static str = "sparsity-sweep";
    const SIZE: (u32, u32) = (1000, 560);

    fn applies(&self, ctx: &Ctx) -> bool {
        !points(ctx.run).is_empty()
    }

    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>, ctx: &Ctx) -> Res {
        sparsity_sweep(area, &points(ctx.run), ctx.run.modelled())
    }
}

/// 8. Sparsity sweep.
pub fn sparsity_sweep<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pts: &[Point],
    modelled: bool,
) -> Res {
    t!(area.fill(&WHITE));
    let ymax = pts
        .iter()
        .flat_map(|p| [&p.dense_j_per_1k, &p.sparse_j_per_1k])
        .filter(|e| e.mean.is_finite())
        .map(|e| e.mean + if e.ci95.is_finite() { e.ci95 } else { 0.0 })
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15;
    let mut chart = t!(ChartBuilder::on(area)
        .caption(
            format!("inference energy vs sparsity{}", energy_label(modelled)),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.02f64..1.02, 0f64..ymax));
    t!(chart
        .configure_mesh()
        .x_desc("measured sparsity of the stored layers")
        .y_desc("J per 1,000 inferences")
        .x_label_formatter(&|x| format!("{:.0}%", x * 100.0))
        .draw());
    let mut i = 0;
    for (w, f, s) in series(pts) {
        let label = |what: &str| format!("{w} {what}");
        for (what, sparse) in [("dense".to_string(), false), (f.clone(), true)] {
            let c = color(i);
            i += 1;
            let line: Vec<(f64, f64, f64)> = s
                .iter()
                .map(|p| {
                    let e = if sparse {
                        &p.sparse_j_per_1k
                    } else {
                        &p.dense_j_per_1k
                    };
                    at(p.measured.mean, e)
                })
                .filter(|v| v.0.is_finite() && v.1.is_finite())
                .collect();
            let name = if sparse {
                label(&format!("{what} execution"))
            } else {
                label(&format!("dense (beside {f})"))
            };
            line_with_bars(&mut chart, &line, c, name)?;
            if sparse && let Some(x) = break_even(&s) {
                t!(chart.draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.0), (x, ymax)],
                    c.mix(0.6).stroke_width(1)
                ))));
                t!(chart.draw_series(std::iter::once(Text::new(
                    format!("break-even {:.0}%", x * 100.0),
                    (x, ymax * (0.75 - 0.08 * i as f64)),
                    ("sans-serif", 13).into_font().color(&c)
                ))));
            }
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}
