//! CO2e and water of the whole run for a list of regions.

use super::chart::{Area, Chart};
use super::style::{Res, color, energy_label, index_label};
use crate::analysis::Run;
use crate::analysis::series::impact_by_region;
use crate::analysis::study::Ctx;

use plotters::coord::Shift;
use plotters::prelude::*;

/// CO2e by grid region (every run).
pub struct ImpactRegions;

impl Chart for ImpactRegions {
    const STEM: &'static str = "impact-by-region";
    const SIZE: (u32, u32) = (900, 520);

    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>, ctx: &Ctx) -> Res {
        impact_regions(area, ctx.run)
    }
}

/// 6. CO2e and water of the whole run for a list of regions.
pub fn impact_regions<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, run: &Run) -> Res {
    let rows = impact_by_region(run);
    let n = rows.len();
    let water = rows.first().map_or(0.0, |r| r.2);
    let ymax = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1e-12) * 1.15;
    t!(area.fill(&WHITE));
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let (scale, unit) = if ymax < 1.0 {
        (1000.0, "mg")
    } else {
        (1.0, "g")
    };
    let mut chart = t!(ChartBuilder::on(area)
        .caption(
            format!(
                "CO2e of this run by grid region{}",
                energy_label(run.modelled())
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..ymax * scale));
    t!(chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1))
        .x_label_formatter(&|x| index_label(&names, *x))
        .x_desc(format!(
            "grid region (water: {:.3} mL in every region, from WUE and generation)",
            water * 1000.0
        ))
        .y_desc(format!("CO2e ({unit}), gross energy x PUE x intensity"))
        .draw());
    t!(chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        Rectangle::new(
            [(i as f64 - 0.35, 0.0), (i as f64 + 0.35, r.1 * scale)],
            color(2).filled(),
        )
    })));
    Ok(())
}
