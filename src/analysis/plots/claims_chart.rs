//! Measured treatment/baseline ratios against the published ones, per claim.

use super::chart::{Area, Figure};
use super::style::{Res, color, index_label, legend};
use crate::analysis::claims::Outcome;

use plotters::coord::Shift;
use plotters::prelude::*;

/// The measured-vs-published chart of a reproduction's outcomes.
pub struct ClaimsChart<'a>(pub &'a [&'a Outcome]);

impl Figure for ClaimsChart<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>) -> Res {
        claims_chart(area, self.0)
    }
}

/// Measured treatment/baseline ratio (95% CI) against the published ratio,
/// per claim, on a log axis.
pub fn claims_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    outcomes: &[&Outcome],
) -> Res {
    let n = outcomes.len();
    let vals: Vec<f64> = outcomes
        .iter()
        .flat_map(|o| {
            [
                o.ratio.low(),
                o.ratio.high(),
                o.ratio.mean,
                o.claim.published_ratio.unwrap_or(f64::NAN),
            ]
        })
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    let lo = vals.iter().copied().fold(1.0, f64::min) / 2.0;
    let hi = vals.iter().copied().fold(1.0, f64::max) * 2.0;
    // Numbered like the reproduction table: long ids would collide.
    let names: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    t!(area.fill(&WHITE));
    let mut chart = t!(ChartBuilder::on(area)
        .caption(
            "Published comparisons: measured vs published ratio",
            ("sans-serif", 20)
        )
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo..hi).log_scale()));
    t!(chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1))
        .x_label_formatter(&|x| index_label(&names, *x))
        .x_desc("claim number (as in the reproduction table)")
        .y_desc("treatment / baseline (log scale)")
        .draw());
    t!(chart.draw_series(LineSeries::new(
        vec![(-0.5, 1.0), (n as f64 - 0.5, 1.0)],
        BLACK.mix(0.4)
    )));
    let ok: Vec<(usize, &&Outcome)> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.ratio.mean.is_finite() && o.ratio.mean > 0.0)
        .collect();
    t!(chart
        .draw_series(ok.iter().map(|(i, o)| {
            let (l, h) = if o.ratio.ci95.is_finite() {
                (o.ratio.low().max(lo), o.ratio.high().min(hi))
            } else {
                (o.ratio.mean, o.ratio.mean)
            };
            ErrorBar::new_vertical(*i as f64, l, o.ratio.mean, h, color(0).stroke_width(2), 10)
        }))
        .map(
            |s| s.label("measured (95% CI)").legend(|(x, y)| Circle::new(
                (x + 6, y),
                4,
                color(0).filled()
            ))
        ));
    t!(chart
        .draw_series(outcomes.iter().enumerate().filter_map(|(i, o)| {
            o.claim
                .published_ratio
                .map(|p| TriangleMarker::new((i as f64, p), 7, color(3).filled()))
        }))
        .map(
            |s| s.label("published").legend(|(x, y)| TriangleMarker::new(
                (x + 6, y),
                6,
                color(3).filled()
            ))
        ));
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}
