//! Energy to accuracy: validation accuracy against cumulative energy.

use super::chart::{Area, Chart};
use super::style::{Res, color, energy_label, legend, pad};
use crate::analysis::Run;
use crate::analysis::study::Ctx;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Energy-to-accuracy curves (every run).
pub struct EtaCurves;

impl Chart for EtaCurves {
    const STEM: &'static str = "energy-to-accuracy";
    const SIZE: (u32, u32) = (900, 560);

    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>, ctx: &Ctx) -> Res {
        eta_curves(area, ctx.run, ctx.target)
    }
}

/// 3. Cumulative energy versus validation accuracy (ETA curves), target marked.
pub fn eta_curves<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    run: &Run,
    target: f64,
) -> Res {
    let curves: Vec<(String, Vec<(f64, f64)>)> = run
        .records
        .iter()
        .map(|r| {
            let mut j = 0.0;
            let pts = if r.evaluations.is_empty() {
                r.epochs
                    .iter()
                    .filter_map(|e| {
                        j += e.train.joules.0 + e.validation.joules.0;
                        e.val_accuracy.map(|a| (j, a * 100.0))
                    })
                    .collect()
            } else {
                r.evaluations
                    .iter()
                    .filter_map(|e| e.val_accuracy.map(|a| (e.cumulative_joules.0, a * 100.0)))
                    .collect()
            };
            (format!("{}/{}", r.key.workload, r.key.variant), pts)
        })
        .collect();
    let all: Vec<(f64, f64)> = curves.iter().flat_map(|c| c.1.clone()).collect();
    let x1 = all.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-9) * 1.05;
    let (y0, y1) = pad(
        all.iter().map(|p| p.1).fold(target * 100.0, f64::min),
        all.iter().map(|p| p.1).fold(target * 100.0, f64::max),
    );
    t!(area.fill(&WHITE));
    let mut chart = t!(ChartBuilder::on(area)
        .caption(
            format!(
                "Energy to accuracy (target {:.1}%){}",
                target * 100.0,
                energy_label(run.modelled())
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x1, y0..y1.min(100.5)));
    t!(chart
        .configure_mesh()
        .x_desc("cumulative training + validation energy (J)")
        .y_desc("validation accuracy (%)")
        .draw());
    let mut groups: Vec<String> = Vec::new();
    for (g, _) in &curves {
        if !groups.contains(g) {
            groups.push(g.clone());
        }
    }
    for (gi, g) in groups.iter().enumerate() {
        let c = color(gi);
        let mut first = true;
        for (_, pts) in curves.iter().filter(|(x, _)| x == g) {
            let s =
                t!(chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)).point_size(3)));
            if first {
                s.label(g.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 12, y)], c.stroke_width(2))
                });
                first = false;
            }
        }
    }
    t!(chart
        .draw_series(LineSeries::new(
            vec![(0.0, target * 100.0), (x1, target * 100.0)],
            RED.stroke_width(1)
        ))
        .map(|s| s
            .label("target")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], RED))));
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}
