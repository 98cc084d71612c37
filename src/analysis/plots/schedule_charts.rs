//! Carbon-aware scheduling charts: CO2e by UTC start hour per region (median
//! and 10-90% band over the days of the year), and one region's month x hour
//! heatmap.

use super::chart::{Area, Figure};
use super::style::{Res, color, energy_label, legend};
use crate::impact::schedule::WhatIf;
use plotters::coord::Shift;
use plotters::prelude::*;

/// `co2e-by-start-hour`: every region's CO2e by UTC start hour.
pub struct ByStartHour<'a> {
    pub whatifs: &'a [WhatIf],
    pub modelled: bool,
}

impl Figure for ByStartHour<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>) -> Res {
        by_start_hour(area, self.whatifs, self.modelled)
    }
}

/// `month-hour-<region>`: one region's month x hour heatmap.
pub struct MonthHour<'a> {
    pub whatif: &'a WhatIf,
    pub modelled: bool,
}

impl Figure for MonthHour<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>) -> Res {
        month_hour_heatmap(area, self.whatif, self.modelled)
    }
}

/// Scale and unit for grams.
fn unit(max: f64) -> (f64, &'static str) {
    if max >= 1.0 {
        (1.0, "g")
    } else if max >= 1e-3 {
        (1e3, "mg")
    } else {
        (1e6, "µg")
    }
}

/// CO2e by start hour of day: median line and 10-90% band per region.
pub fn by_start_hour<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    whatifs: &[WhatIf],
    modelled: bool,
) -> Res {
    let ymax = whatifs
        .iter()
        .flat_map(|w| w.by_hour.iter().map(|b| b[2]))
        .fold(0.0, f64::max)
        .max(1e-15);
    let (scale, u) = unit(ymax);
    t!(area.fill(&WHITE));
    let mut chart = t!(ChartBuilder::on(area)
        .caption(
            format!(
                "CO2e of this run by UTC start hour{}",
                energy_label(modelled)
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(0f64..23f64, 0f64..ymax * scale * 1.1));
    t!(chart
        .configure_mesh()
        .x_labels(12)
        .x_label_formatter(&|x| format!("{:02}:00", *x as u32))
        .x_desc("start hour (UTC); line: median over the days of the data year, band: 10-90%")
        .y_desc(format!("CO2e ({u})"))
        .draw());
    for (i, w) in whatifs.iter().enumerate() {
        let c = color(i);
        let mut band: Vec<(f64, f64)> = w
            .by_hour
            .iter()
            .enumerate()
            .map(|(h, b)| (h as f64, b[2] * scale))
            .collect();
        band.extend(
            w.by_hour
                .iter()
                .enumerate()
                .rev()
                .map(|(h, b)| (h as f64, b[0] * scale)),
        );
        t!(chart.draw_series(std::iter::once(Polygon::new(band, c.mix(0.18).filled()))));
        t!(chart.draw_series(LineSeries::new(
            w.by_hour
                .iter()
                .enumerate()
                .map(|(h, b)| (h as f64, b[1] * scale)),
            c.stroke_width(2),
        )))
        .label(format!("{} {}", w.region, w.year))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// Mean CO2e by month (rows) and UTC start hour (columns) for one region.
pub fn month_hour_heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    w: &WhatIf,
    modelled: bool,
) -> Res {
    let (lo, hi) = w
        .month_hour
        .iter()
        .flatten()
        .fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(*v), b.max(*v)));
    let (scale, u) = unit(hi);
    t!(area.fill(&WHITE));
    let mut chart = t!(ChartBuilder::on(area)
        .caption(
            format!(
                "{} {}: mean CO2e by month and UTC start hour{} ({:.3}-{:.3} {u})",
                w.region,
                w.year,
                energy_label(modelled),
                lo * scale,
                hi * scale
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..23.5f64, -0.5f64..11.5f64));
    t!(chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(48)
        .x_label_formatter(&|x| {
            let h = x.round();
            if (x - h).abs() < 1e-6 && (h as u32).is_multiple_of(2) {
                format!("{:02}", h as u32)
            } else {
                String::new()
            }
        })
        .y_labels(24)
        .y_label_formatter(&|y| {
            const M: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let m = y.round();
            if (y - m).abs() < 1e-6 && m >= 0.0 {
                M.get(m as usize).map_or(String::new(), |m| m.to_string())
            } else {
                String::new()
            }
        })
        .x_desc("start hour (UTC); green: least CO2e, red: most")
        .draw());
    let span = (hi - lo).max(1e-300);
    t!(
        chart.draw_series(w.month_hour.iter().enumerate().flat_map(|(m, row)| {
            row.iter().enumerate().map(move |(h, v)| {
                let f = ((v - lo) / span).clamp(0.0, 1.0);
                let c = RGBColor((40.0 + 200.0 * f) as u8, (180.0 - 140.0 * f) as u8, 60);
                Rectangle::new(
                    [
                        (h as f64 - 0.5, m as f64 - 0.5),
                        (h as f64 + 0.5, m as f64 + 0.5),
                    ],
                    c.filled(),
                )
            })
        }))
    );
    Ok(())
}
