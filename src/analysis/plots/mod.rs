//! Comparison plots (plotters), each written as SVG and PNG: one file per
//! chart, shared style in `style`, the data they draw in `analysis::series`.
//!
//! Modelled energy (estimated or fake) is marked in every title and legend.
//! Text layout needs a TrueType font: `$JOULEBENCH_FONT`, DejaVu Sans
//! (Debian `fonts-dejavu-core`, which `scripts/setup-data.sh` installs) or
//! Liberation Sans, loaded at run time; without one, plotting fails with a
//! message that says what to install.

#[macro_use]
mod style;
mod batch_sweep;
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
use super::{AnalysisError, Run};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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

/// Draws `$draw(&area)` to `<stem>.svg` and, with a font, `<stem>.png`.
macro_rules! render {
    ($files:expr, $stem:expr, $size:expr, $draw:expr) => {{
        let stem: PathBuf = $stem;
        let name = stem
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let err = |message: String| AnalysisError::Plot {
            plot: name.clone(),
            message,
        };
        let svg = stem.with_extension("svg");
        {
            let area = SVGBackend::new(&svg, $size).into_drawing_area();
            ($draw)(&area).map_err(err)?;
            area.present().map_err(|e| err(e.to_string()))?;
        }
        $files.push(svg);
        {
            let png = stem.with_extension("png");
            {
                let area = BitMapBackend::new(&png, $size).into_drawing_area();
                ($draw)(&area).map_err(err)?;
                area.present().map_err(|e| err(e.to_string()))?;
            }
            $files.push(png);
        }
    }};
}

/// Draws every plot into `dir`; returns the files written.
pub fn draw_all(run: &Run, dir: &Path, target: f64) -> Result<Vec<PathBuf>, AnalysisError> {
    if !png_font_available() {
        return Err(AnalysisError::Plot {
            plot: "any plot".into(),
            message: format!(
                "no TrueType font found for plot text (looked at $JOULEBENCH_FONT and {}); install one with `apt-get install fonts-dejavu-core` or set JOULEBENCH_FONT=/path/to/font.ttf",
                FONT_CANDIDATES.join(", ")
            ),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| AnalysisError::File {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut files = Vec::new();
    render!(files, dir.join("energy-per-variant"), (900, 560), |a| {
        energy_bars::energy_bars(a, run)
    });
    render!(files, dir.join("energy-vs-accuracy"), (900, 560), |a| {
        energy_accuracy::energy_accuracy(a, run)
    });
    render!(files, dir.join("energy-to-accuracy"), (900, 560), |a| {
        eta_curves::eta_curves(a, run, target)
    });
    if let Some(r) = run.records.iter().find(|r| !r.epochs.is_empty()) {
        render!(files, dir.join("power-timeline"), (900, 500), |a| {
            power_timeline::power_timeline(a, r)
        });
    }
    render!(files, dir.join("batch-size-sweep"), (1100, 500), |a| {
        batch_sweep::batch_sweep(a, run)
    });
    render!(files, dir.join("impact-by-region"), (900, 520), |a| {
        impact_regions::impact_regions(a, run)
    });
    let sparse = super::sparsity_sweep::points(run);
    if !sparse.is_empty() {
        render!(files, dir.join("sparsity-sweep"), (1000, 560), |a| {
            sparsity_chart::sparsity_sweep(a, &sparse, run.modelled())
        });
    }
    let sweep = super::context_sweep::points(run);
    if !sweep.is_empty() {
        render!(files, dir.join("context-sweep"), (1500, 480), |a| {
            context_sweep_chart::context_sweep(a, &sweep, run.modelled())
        });
    }
    Ok(files)
}

/// Writes `measured-vs-published.{svg,png}` into `dir`.
pub fn claims_plot(outcomes: &[&Outcome], dir: &Path) -> Result<Vec<PathBuf>, AnalysisError> {
    if !png_font_available() {
        return Err(AnalysisError::Plot {
            plot: "measured-vs-published".into(),
            message: "no TrueType font found; install fonts-dejavu-core".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| AnalysisError::File {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut files = Vec::new();
    render!(files, dir.join("measured-vs-published"), (1000, 600), |a| {
        claims_chart::claims_chart(a, outcomes)
    });
    Ok(files)
}

/// Writes the scheduling charts into `dir`: `co2e-by-start-hour` for all
/// regions, and `month-hour-<region>` per region.
pub fn schedule_plots(
    whatifs: &[crate::impact::schedule::WhatIf],
    dir: &Path,
    modelled: bool,
) -> Result<Vec<PathBuf>, AnalysisError> {
    if !png_font_available() {
        return Err(AnalysisError::Plot {
            plot: "co2e-by-start-hour".into(),
            message: "no TrueType font found; install fonts-dejavu-core".into(),
        });
    }
    let mut files = Vec::new();
    render!(files, dir.join("co2e-by-start-hour"), (1000, 560), |a| {
        schedule_charts::by_start_hour(a, whatifs, modelled)
    });
    for w in whatifs {
        render!(
            files,
            dir.join(format!("month-hour-{}", w.region)),
            (1000, 480),
            |a| { schedule_charts::month_hour_heatmap(a, w, modelled) }
        );
    }
    Ok(files)
}
