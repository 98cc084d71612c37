//! Comparison plots (plotters), each written as SVG and PNG: one file per
//! chart, shared style in `style`, the data they draw in `analysis::series`.
//!
//! A run's charts are registered in `CHARTS`: adding one is a new file with
//! a type implementing `chart::Chart` (stem, size, whether it applies to a
//! run, the drawing) and one line there. `draw_all` checks the font once and
//! draws every chart that applies, through `chart::render`, which the
//! reproduction's and the scheduling charts use too.
//!
//! Modelled energy (estimated or fake) is marked in every title and legend.
//! Text layout needs a TrueType font: `$JOULEBENCH_FONT`, DejaVu Sans
//! (Debian `fonts-dejavu-core`, which `scripts/setup-data.sh` installs) or
//! Liberation Sans, loaded at run time; without one, plotting fails with a
//! message that says what to install.

#[macro_use]
mod style;
mod batch_sweep;
pub mod chart;
mod claims_chart;
mod context_sweep_chart;
mod energy_accuracy;
mod energy_bars;
mod eta_curves;
mod impact_regions;
mod power_timeline;
mod schedule_charts;
mod sparsity_chart;

use super::claims::Outcome;
use super::study::Ctx;
use super::{AnalysisError, Run};
use chart::{Registered, render};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The run's charts, in the order they are drawn and listed in `report.md`.
pub const CHARTS: &[&dyn Registered] = &[
    &energy_bars::EnergyBars,
    &energy_accuracy::EnergyAccuracy,
    &eta_curves::EtaCurves,
    &power_timeline::PowerTimeline,
    &batch_sweep::BatchSweep,
    &impact_regions::ImpactRegions,
    &sparsity_chart::SparsityChart,
    &context_sweep_chart::ContextSweepChart,
];

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font for plot text once; false if none is installed.
pub fn png_font_available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let custom = std::env::var("JOULEBENCH_FONT").ok();
        for p in custom
            .iter()
            .map(String::as_str)
            .chain(FONT_CANDIDATES.iter().copied())
        {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// Checks the font (SVG text is laid out with it too, so without one no
/// chart can be drawn) and creates `dir`. `plot` names what was to be drawn.
fn ready(dir: &Path, plot: &str) -> Result<(), AnalysisError> {
    if !png_font_available() {
        return Err(AnalysisError::Plot {
            plot: plot.into(),
            message: format!(
                "no TrueType font found for plot text (looked at $JOULEBENCH_FONT and {}); install one with `apt-get install fonts-dejavu-core` or set JOULEBENCH_FONT=/path/to/font.ttf",
                FONT_CANDIDATES.join(", ")
            ),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| AnalysisError::File {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })
}

/// The registered charts that apply to the run, in drawing order.
pub fn applicable<'c>(ctx: &'c Ctx) -> impl Iterator<Item = &'static dyn Registered> + 'c {
    CHARTS.iter().copied().filter(|c| c.applies(ctx))
}

/// Draws every registered chart that applies to the run into `dir`;
/// returns the files written (SVG then PNG per chart).
pub fn draw_all(run: &Run, dir: &Path, target: f64) -> Result<Vec<PathBuf>, AnalysisError> {
    ready(dir, "any plot")?;
    let ctx = Ctx { run, target };
    let mut files = Vec::new();
    for c in applicable(&ctx) {
        files.extend(c.render(&ctx, dir)?);
    }
    Ok(files)
}

/// Writes `measured-vs-published.{svg,png}` into `dir`.
pub fn claims_plot(outcomes: &[&Outcome], dir: &Path) -> Result<Vec<PathBuf>, AnalysisError> {
    let stem = "measured-vs-published";
    ready(dir, stem)?;
    let fig = claims_chart::ClaimsChart(outcomes);
    Ok(render(&fig, &dir.join(stem), (1000, 600))?.to_vec())
}

/// Writes the scheduling charts into `dir`: `co2e-by-start-hour` for all
/// regions, and `month-hour-<region>` per region.
pub fn schedule_plots(
    whatifs: &[crate::impact::schedule::WhatIf],
    dir: &Path,
    modelled: bool,
) -> Result<Vec<PathBuf>, AnalysisError> {
    let stem = "co2e-by-start-hour";
    ready(dir, stem)?;
    let all = schedule_charts::ByStartHour { whatifs, modelled };
    let mut files = render(&all, &dir.join(stem), (1000, 560))?.to_vec();
    for whatif in whatifs {
        let one = schedule_charts::MonthHour { whatif, modelled };
        let stem = dir.join(format!("month-hour-{}", whatif.region));
        files.extend(render(&one, &stem, (1000, 480))?);
    }
    Ok(files)
}
