//! Energy per variant: stacked idle + net bars with the 95% CI of gross,
//! and, for estimated energy, the estimate's band as a wide bracket.

use super::chart::{Area, Chart};
use super::style::{Res, color, energy_label, index_label, legend};
use crate::analysis::Run;
use crate::analysis::aggregate::{VariantSummary, summarize};
use crate::analysis::study::Ctx;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// Energy per variant (every run).
pub struct EnergyBars;

impl Chart for EnergyBars {
    const STEM: &'static str = "energy-per-variant";
    const SIZE: (u32, u32) = (900, 560);

    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>, ctx: &Ctx) -> Res {
        energy_bars(area, ctx.run)
    }
}

/// 1. Energy per variant: stacked idle + net bars with the 95% CI of gross.
pub fn energy_bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, run: &Run) -> Res {
    let s = summarize(&run.records);
    let n = s.len();
    let top = s
        .iter()
        .map(|v| (v.gross_j.mean + v.gross_j.ci95.max(0.0)).max(v.gross_j_high.mean))
        .filter(|x| x.is_finite())
        .fold(0.0, f64::max)
        .max(1e-9);
    t!(area.fill(&WHITE));
    let names: Vec<String> = s
        .iter()
        .map(|v| format!("{}/{}", v.workload, v.variant))
        .collect();
    let mut chart = t!(ChartBuilder::on(area)
        .caption(
            format!(
                "Energy per variant (mean, 95% CI){}",
                energy_label(run.modelled())
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top * 1.15));
    t!(chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1))
        .x_label_formatter(&|x| index_label(&names, *x))
        .x_desc("workload / variant")
        .y_desc("energy per trial, all windows (J)")
        .draw());
    let idle_style = RGBColor(180, 180, 180).filled();
    let net_style = color(0).filled();
    let has_idle = s.iter().any(|v| v.idle_j.mean.is_finite());
    let idle_bars = s.iter().enumerate().filter_map(|(i, v)| {
        let idle = if v.idle_j.mean.is_finite() {
            v.idle_j.mean.max(0.0)
        } else {
            0.0
        };
        (idle > 0.0).then(|| {
            Rectangle::new(
                [(i as f64 - 0.35, 0.0), (i as f64 + 0.35, idle)],
                idle_style,
            )
        })
    });
    let net_bars = s.iter().enumerate().map(|(i, v)| {
        let idle = if v.idle_j.mean.is_finite() {
            v.idle_j.mean.max(0.0)
        } else {
            0.0
        };
        Rectangle::new(
            [
                (i as f64 - 0.35, idle),
                (i as f64 + 0.35, v.gross_j.mean.max(idle)),
            ],
            net_style,
        )
    });
    let net_label = if has_idle {
        "net (gross - idle)"
    } else {
        "gross (no idle baseline)"
    };
    t!(chart.draw_series(net_bars).map(|s| s
        .label(net_label)
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color(0).filled()))));
    if has_idle {
        t!(chart
            .draw_series(idle_bars)
            .map(
                |s| s.label("idle (baseline W x duration)").legend(|(x, y)| {
                    Rectangle::new(
                        [(x, y - 5), (x + 12, y + 5)],
                        RGBColor(180, 180, 180).filled(),
                    )
                })
            ));
    }
    t!(chart.draw_series(
        s.iter()
            .enumerate()
            .filter(|(_, v)| v.gross_j.ci95.is_finite())
            .map(|(i, v)| {
                ErrorBar::new_vertical(
                    i as f64,
                    v.gross_j.low(),
                    v.gross_j.mean,
                    v.gross_j.high(),
                    BLACK.stroke_width(2),
                    12,
                )
            })
    ));
    draw_band(&mut chart, &s)?;
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// The estimate's band of each variant, as a wide red bracket beside its bar.
fn draw_band<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    s: &[VariantSummary],
) -> Res {
    let band_style = RGBColor(214, 39, 40).stroke_width(2);
    let banded: Vec<(usize, f64, f64, f64)> = s
        .iter()
        .enumerate()
        .filter(|(_, v)| v.gross_j_low.n > 0 && v.gross_j_high.mean.is_finite())
        .map(|(i, v)| (i, v.gross_j_low.mean, v.gross_j.mean, v.gross_j_high.mean))
        .collect();
    if !banded.is_empty() {
        t!(chart
            .draw_series(banded.iter().map(|&(i, lo, mid, hi)| {
                ErrorBar::new_vertical(i as f64 + 0.2, lo, mid, hi, band_style, 20)
            }))
            .map(|s| s
                .label("estimate's band (lowest-highest model)")
                .legend(|(x, y)| PathElement::new(
                    vec![(x, y), (x + 12, y)],
                    RGBColor(214, 39, 40).stroke_width(2)
                ))));
    }
    Ok(())
}
