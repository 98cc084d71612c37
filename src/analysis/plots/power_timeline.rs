//! Power over one trial, per domain.

use super::chart::{Area, Chart};
use super::style::{Res, color, energy_label, legend};
use crate::analysis::series::power_series;
use crate::analysis::study::Ctx;
use crate::record::TrialRecord;

use plotters::coord::Shift;
use plotters::prelude::*;

/// The power timeline of the first trial with epochs.
pub struct PowerTimeline;

/// The trial the timeline shows: the first with epochs.
fn first_trial<'a>(ctx: &Ctx<'a>) -> Option<&'a TrialRecord> {
    ctx.run.records.iter().find(|r| !r.epochs.is_empty())
}

impl Chart for PowerTimeline {
    const STEM: &'static str = "power-timeline";
    const SIZE: (u32, u32) = (900, 500);

    fn applies(&self, ctx: &Ctx) -> bool {
        first_trial(ctx).is_some()
    }

    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>, ctx: &Ctx) -> Res {
        match first_trial(ctx) {
            Some(r) => power_timeline(area, r),
            None => Err("no trial with epochs".into()),
        }
    }
}

/// 4. Power timeline of one trial, per domain.
pub fn power_timeline<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &TrialRecord) -> Res {
    let series = power_series(r);
    let modelled = r.total_energy().is_modelled();
    let x1 = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.0))
        .fold(0.0, f64::max)
        .max(1e-9);
    let y1 = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15;
    t!(area.fill(&WHITE));
    let mut chart = t!(ChartBuilder::on(area)
        .caption(
            format!("Power over trial {}{}", r.key, energy_label(modelled)),
            ("sans-serif", 20)
        )
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x1, 0f64..y1));
    t!(chart
        .configure_mesh()
        .x_desc("time since the idle window began (s)")
        .y_desc("power (W)")
        .draw());
    for (i, (d, sampled, pts)) in series.into_iter().enumerate() {
        let c = color(i);
        let label = format!(
            "{d} ({}{})",
            if sampled { "sampled" } else { "window average" },
            if modelled { ", estimated" } else { "" }
        );
        t!(chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map(|s| s.label(label).legend(move |(x, y)| PathElement::new(
                vec![(x, y), (x + 12, y)],
                c.stroke_width(2)
            ))));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}
