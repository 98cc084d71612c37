//! Shared chart style: colours, the legend box, axis labels, padding, and
//! the error plumbing every chart uses.

use plotters::coord::CoordTranslate;
use plotters::prelude::*;

/// What drawing a chart returns: plotters' errors as text.
pub type Res = Result<(), String>;

/// `?` for plotters results inside a chart.
macro_rules! t {
    ($e:expr) => {
        $e.map_err(|e| e.to_string())?
    };
}

pub fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

/// The legend box every plot uses.
pub fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Res {
    t!(chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw());
    Ok(())
}

/// Label of a categorical axis drawn on 0..n: the name at integer positions.
pub fn index_label(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
        names[i as usize].clone()
    } else {
        String::new()
    }
}

pub fn energy_label(modelled: bool) -> &'static str {
    if modelled { " [ESTIMATED energy]" } else { "" }
}

pub fn pad(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let span = (hi - lo).abs().max(hi.abs() * 0.05).max(1e-9);
    (lo - span * 0.08, hi + span * 0.08)
}

/// (x, mean, 95% half-width) of an estimate at `x`; the half-width is 0
/// where undefined (one trial).
pub fn at(x: f64, e: &crate::analysis::stats::Estimate) -> (f64, f64, f64) {
    (x, e.mean, if e.ci95.is_finite() { e.ci95 } else { 0.0 })
}

/// A line through `(x, mean, ci)` points with their 95% error bars and a
/// legend entry.
pub fn line_with_bars<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    pts: &[(f64, f64, f64)],
    c: RGBColor,
    label: String,
) -> Res
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    t!(chart.draw_series(pts.iter().map(|p| ErrorBar::new_vertical(
        p.0,
        p.1 - p.2,
        p.1,
        p.1 + p.2,
        c.stroke_width(1),
        6
    ))));
    t!(chart
        .draw_series(
            LineSeries::new(pts.iter().map(|p| (p.0, p.1)), c.stroke_width(2)).point_size(3)
        )
        .map(|s| s.label(label).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 12, y)], c.stroke_width(2))
        })));
    Ok(())
}
