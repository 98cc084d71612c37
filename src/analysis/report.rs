//! `report.md` (+ `trials.csv` and the plots) for a run folder: the
//! provenance header (`header`), then every registered study's section in
//! `analysis::STUDIES` order (the report's own studies are the submodules
//! here), then the plots and the list of files.

pub(super) mod baseline;
pub(super) mod energy_to_accuracy;
pub(super) mod estimate_band;
mod header;
pub(super) mod validity;
pub(super) mod variants;

use super::STUDIES;
use super::plots::draw_all;
use super::series;
use super::study::Ctx;
use super::{AnalysisError, Run, csv_export};
use std::fmt::Write;
use std::path::{Path, PathBuf};

fn write_file(path: &Path, text: &str) -> Result<(), AnalysisError> {
    std::fs::write(path, text).map_err(|e| AnalysisError::File {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    })
}

/// What `write_report` produced.
pub struct Written {
    pub report: PathBuf,
    pub csv: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// Writes `report.md`, `trials.csv` and `plots/` into the run folder.
pub fn write_report(run: &Run, target: Option<f64>) -> Result<Written, AnalysisError> {
    if run.records.is_empty() {
        return Err(AnalysisError::Empty(run.dir.clone()));
    }
    let target = target.unwrap_or_else(|| series::default_target(run));
    let plot_dir = run.dir.join("plots");
    let files = draw_all(run, &plot_dir, target)?;
    let csv = run.dir.join("trials.csv");
    write_file(&csv, &csv_export::to_csv(&run.records))?;
    let md = markdown(run, target, &files);
    let report = run.dir.join("report.md");
    write_file(&report, &md)?;
    Ok(Written {
        report,
        csv,
        plots: files,
    })
}

fn digits(x: f64) -> usize {
    if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 1.0 {
        2
    } else {
        4
    }
}

fn fmt_sig(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x.abs() >= 1e5 {
        format!("{x:.3e}")
    } else {
        format!("{x:.*}", digits(x))
    }
}

/// `mean ± ci` with both at the mean's precision.
fn est(e: &super::stats::Estimate) -> String {
    if !e.mean.is_finite() {
        "-".into()
    } else if !e.ci95.is_finite() {
        fmt_sig(e.mean)
    } else if e.mean.abs() >= 1e5 {
        format!("{:.3e} ± {:.2e}", e.mean, e.ci95)
    } else {
        let d = digits(e.mean);
        format!("{:.*} ± {:.*}", d, e.mean, d, e.ci95)
    }
}

/// The report's Markdown text: the header, one `##` section per study, the
/// plots and the files.
pub fn markdown(run: &Run, target: f64, files: &[PathBuf]) -> String {
    let mut o = String::new();
    header::header(&mut o, run);
    let ctx = Ctx { run, target };
    for s in STUDIES {
        s.section(&ctx, &mut o);
    }
    plots(&mut o, run, files);
    let _ = writeln!(
        o,
        "## Files\n\n- `trials.csv`: one row per trial (columns in `src/analysis/csv_export.rs` and docs/records.md)\n- `trials.jsonl`: the raw records\n- `plots/`: SVG and PNG of every plot"
    );
    o
}

/// The plots, PNG where written, else SVG.
fn plots(o: &mut String, run: &Run, files: &[PathBuf]) {
    let _ = writeln!(o, "\n## Plots\n");
    if !super::plots::png_font_available() {
        let _ = writeln!(
            o,
            "(No TrueType font found, so only SVG files were written; install `fonts-dejavu-core` for PNGs.)\n"
        );
    }
    let mut stems: Vec<PathBuf> = files.iter().map(|f| f.with_extension("")).collect();
    stems.dedup();
    for s in stems {
        let png = s.with_extension("png");
        let shown = if files.contains(&png) {
            png
        } else {
            s.with_extension("svg")
        };
        let rel = shown.strip_prefix(&run.dir).unwrap_or(&shown);
        let name = s
            .file_name()
            .map(|n| n.to_string_lossy().replace('-', " "))
            .unwrap_or_default();
        let _ = writeln!(o, "![{name}]({})\n", rel.display());
    }
}
