//! Energy versus accuracy, one point per trial, with the Pareto frontier.

use super::chart::{Area, Chart};
use super::style::{Res, color, energy_label, legend, pad};
use crate::analysis::Run;
use crate::analysis::aggregate::metrics;
use crate::analysis::series::pareto;
use crate::analysis::study::Ctx;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Energy versus accuracy (every run).
pub struct EnergyAccuracy;

impl Chart for EnergyAccuracy {
    const STEM: &'static str = "energy-vs-accuracy";
    const SIZE: (u32, u32) = (900, 560);

    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>, ctx: &Ctx) -> Res {
        energy_accuracy(area, ctx.run)
    }
}

/// 2. Energy versus accuracy, one point per trial, Pareto frontier drawn.
pub fn energy_accuracy<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, run: &Run) -> Res {
    let ms: Vec<_> = run
        .records
        .iter()
        .map(metrics)
        .filter(|m| m.completed)
        .collect();
    let pts: Vec<(f64, f64)> = ms.iter().map(|m| (m.gross_j, m.accuracy * 100.0)).collect();
    let (x0, x1) = pad(
        pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min),
        pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max),
    );
    let (y0, y1) = pad(
        pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
    );
    t!(area.fill(&WHITE));
    let mut chart = t!(ChartBuilder::on(area)
        .caption(
            format!(
                "Energy vs test accuracy, per trial{}",
                energy_label(run.modelled())
            ),
            ("sans-serif", 20)
        )
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(x0.max(0.0)..x1, y0..y1));
    t!(chart
        .configure_mesh()
        .x_desc("energy per trial, all windows (J)")
        .y_desc("test accuracy (%)")
        .draw());
    let mut groups: Vec<String> = Vec::new();
    for m in &ms {
        let g = format!("{}/{}", m.workload, m.variant);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    for (gi, g) in groups.iter().enumerate() {
        let c = color(gi);
        let these: Vec<(f64, f64)> = ms
            .iter()
            .zip(&pts)
            .filter(|(m, _)| &format!("{}/{}", m.workload, m.variant) == g)
            .map(|(_, p)| *p)
            .collect();
        t!(chart
            .draw_series(these.into_iter().map(|p| Circle::new(p, 5, c.filled())))
            .map(|s| s.label(g.clone()).legend(move |(x, y)| Circle::new(
                (x + 6, y),
                5,
                c.filled()
            ))));
    }
    let mut front: Vec<(f64, f64)> = pareto(&pts).into_iter().map(|i| pts[i]).collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Ring the frontier's points too: a one-point frontier draws no line.
    t!(chart.draw_series(
        front
            .iter()
            .map(|p| Circle::new(*p, 9, BLACK.stroke_width(2)))
    ));
    t!(chart
        .draw_series(LineSeries::new(front, BLACK.stroke_width(1)))
        .map(|s| s
            .label("Pareto frontier (ringed)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], BLACK))));
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}
