//! The chart registry's traits and the one function that draws a figure to
//! its SVG and PNG files.
//!
//! plotters' `DrawingArea` is generic over the backend, so a chart's draw
//! method is generic and neither `Figure` nor `Chart` can be a trait object;
//! `Registered` is the object-safe face the registry holds, and every
//! `Chart` is one.

use super::style::Res;
use crate::analysis::AnalysisError;
use crate::analysis::study::Ctx;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Where a figure draws: the whole image, on either backend.
pub type Area<DB> = DrawingArea<DB, Shift>;

/// A drawing with its data, for any plotters backend (the entry points
/// outside the registry, e.g. the claims and scheduling charts, use this).
pub trait Figure {
    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>) -> Res;
}

/// One chart of a run's `plots/`, drawn from the run; registered in
/// `plots::CHARTS`.
pub trait Chart: Sync {
    /// File name without extension, e.g. `energy-per-variant`.
    const STEM: &'static str;
    /// Width and height in pixels (SVG and PNG alike).
    const SIZE: (u32, u32);

    /// Whether the run has what the chart draws (default: every run).
    fn applies(&self, _ctx: &Ctx) -> bool {
        true
    }

    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>, ctx: &Ctx) -> Res;
}

/// A registered chart as the registry sees it.
pub trait Registered: Sync {
    fn stem(&self) -> &'static str;
    fn applies(&self, ctx: &Ctx) -> bool;
    /// Writes `<dir>/<stem>.svg` and `.png`; returns both paths.
    fn render(&self, ctx: &Ctx, dir: &Path) -> Result<[PathBuf; 2], AnalysisError>;
}

/// A chart bound to the run it draws.
struct Bound<'a, 'r, C>(&'a C, &'a Ctx<'r>);

impl<C: Chart> Figure for Bound<'_, '_, C> {
    fn draw<DB: DrawingBackend>(&self, area: &Area<DB>) -> Res {
        self.0.draw(area, self.1)
    }
}

impl<C: Chart> Registered for C {
    fn stem(&self) -> &'static str {
        C::STEM
    }

    fn applies(&self, ctx: &Ctx) -> bool {
        Chart::applies(self, ctx)
    }

    fn render(&self, ctx: &Ctx, dir: &Path) -> Result<[PathBuf; 2], AnalysisError> {
        render(&Bound(self, ctx), &dir.join(C::STEM), C::SIZE)
    }
}

/// Draws `fig` to `<stem>.svg` and `<stem>.png` (size in pixels); returns
/// both paths. The font must be registered first (`plots::ready`): SVG text
/// is laid out with it too.
pub fn render(
    fig: &impl Figure,
    stem: &Path,
    size: (u32, u32),
) -> Result<[PathBuf; 2], AnalysisError> {
    let err = |message: String| AnalysisError::Plot {
        plot: stem
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        message,
    };
    let svg = stem.with_extension("svg");
    present(SVGBackend::new(&svg, size).into_drawing_area(), fig).map_err(err)?;
    let png = stem.with_extension("png");
    present(BitMapBackend::new(&png, size).into_drawing_area(), fig).map_err(err)?;
    Ok([svg, png])
}

/// Draws `fig` on `area` and writes the file.
fn present<DB: DrawingBackend>(area: Area<DB>, fig: &impl Figure) -> Res {
    fig.draw(&area)?;
    area.present().map_err(|e| e.to_string())
}
