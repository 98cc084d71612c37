//! Comparison plots (plotters), each written as SVG and PNG.
//!
//! Modelled energy (estimated or fake) is marked in every title and legend.
//! Text layout needs a TrueType font: `$JOULEBENCH_FONT`, DejaVu Sans
//! (Debian `fonts-dejavu-core`, which `scripts/setup-data.sh` installs) or
//! Liberation Sans, loaded at run time; without one, plotting fails with a
//! message that says what to install.

use super::aggregate::{energy_to_accuracy, metrics, summarize};
use super::{AnalysisError, Run};
use crate::impact::{ImpactSettings, lookup};
use crate::record::TrialRecord;
use plotters::coord::Shift;
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

type Res = Result<(), String>;

macro_rules! t {
    ($e:expr) => {
        $e.map_err(|e| e.to_string())?
    };
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

fn color(i: usize) -> RGBColor {
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
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
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
fn index_label(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
        names[i as usize].clone()
    } else {
        String::new()
    }
}

fn energy_label(modelled: bool) -> &'static str {
    if modelled { " [ESTIMATED energy]" } else { "" }
}

fn pad(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let span = (hi - lo).abs().max(hi.abs() * 0.05).max(1e-9);
    (lo - span * 0.08, hi + span * 0.08)
}

/// 1. Energy per variant: stacked idle + net bars with the 95% CI of gross.
fn energy_bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, run: &Run) -> Res {
    let s = summarize(&run.records);
    let n = s.len();
    let top = s
        .iter()
        .map(|v| v.gross_j.mean + v.gross_j.ci95.max(0.0))
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
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// Indices on the Pareto frontier: no other point has less energy and more accuracy.
pub fn pareto(points: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    idx.sort_by(|&a, &b| {
        points[a]
            .0
            .total_cmp(&points[b].0)
            .then(points[b].1.total_cmp(&points[a].1))
    });
    let mut best = f64::NEG_INFINITY;
    let mut out = Vec::new();
    for i in idx {
        if points[i].1 > best {
            best = points[i].1;
            out.push(i);
        }
    }
    out
}

/// 2. Energy versus accuracy, one point per trial, Pareto frontier drawn.
fn energy_accuracy<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, run: &Run) -> Res {
    let ms: Vec<_> = run
        .records
        .iter()
        .map(metrics)
        .filter(|m| m.completed)
        .collect();
    let pts: Vec<(f64, f64)> = ms.iter().map(|m| (m.gross_j, m.accuracy * 100.0)).collect();
    let (x0, x1) = pad(
        pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min),
        pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max),
    );
    let (y0, y1) = pad(
        pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max),
    );
    t!(area.fill(&WHITE));
    let mut chart = t!(ChartBuilder::on(area)
        .caption(
            format!(
                "Energy vs test accuracy, per trial{}",
                energy_label(run.modelled())
            ),
            ("sans-serif", 20)
        )
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(x0.max(0.0)..x1, y0..y1));
    t!(chart
        .configure_mesh()
        .x_desc("energy per trial, all windows (J)")
        .y_desc("test accuracy (%)")
        .draw());
    let mut groups: Vec<String> = Vec::new();
    for m in &ms {
        let g = format!("{}/{}", m.workload, m.variant);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    for (gi, g) in groups.iter().enumerate() {
        let c = color(gi);
        let these: Vec<(f64, f64)> = ms
            .iter()
            .zip(&pts)
            .filter(|(m, _)| &format!("{}/{}", m.workload, m.variant) == g)
            .map(|(_, p)| *p)
            .collect();
        t!(chart
            .draw_series(these.into_iter().map(|p| Circle::new(p, 5, c.filled())))
            .map(|s| s.label(g.clone()).legend(move |(x, y)| Circle::new(
                (x + 6, y),
                5,
                c.filled()
            ))));
    }
    let mut front: Vec<(f64, f64)> = pareto(&pts).into_iter().map(|i| pts[i]).collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Ring the frontier's points too: a one-point frontier draws no line.
    t!(chart.draw_series(
        front
            .iter()
            .map(|p| Circle::new(*p, 9, BLACK.stroke_width(2)))
    ));
    t!(chart
        .draw_series(LineSeries::new(front, BLACK.stroke_width(1)))
        .map(|s| s
            .label("Pareto frontier (ringed)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], BLACK))));
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// 3. Cumulative energy versus validation accuracy (ETA curves), target marked.
fn eta_curves<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, run: &Run, target: f64) -> Res {
    let curves: Vec<(String, Vec<(f64, f64)>)> = run
        .records
        .iter()
        .map(|r| {
            let mut j = 0.0;
            let pts = if r.evaluations.is_empty() {
                r.epochs
                    .iter()
                    .filter_map(|e| {
                        j += e.train.joules.0 + e.validation.joules.0;
                        e.val_accuracy.map(|a| (j, a * 100.0))
                    })
                    .collect()
            } else {
                r.evaluations
                    .iter()
                    .filter_map(|e| e.val_accuracy.map(|a| (e.cumulative_joules, a * 100.0)))
                    .collect()
            };
            (format!("{}/{}", r.key.workload, r.key.variant), pts)
        })
        .collect();
    let all: Vec<(f64, f64)> = curves.iter().flat_map(|c| c.1.clone()).collect();
    let x1 = all.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-9) * 1.05;
    let (y0, y1) = pad(
        all.iter().map(|p| p.1).fold(target * 100.0, f64::min),
        all.iter().map(|p| p.1).fold(target * 100.0, f64::max),
    );
    t!(area.fill(&WHITE));
    let mut chart = t!(ChartBuilder::on(area)
        .caption(
            format!(
                "Energy to accuracy (target {:.1}%){}",
                target * 100.0,
                energy_label(run.modelled())
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x1, y0..y1.min(100.5)));
    t!(chart
        .configure_mesh()
        .x_desc("cumulative training + validation energy (J)")
        .y_desc("validation accuracy (%)")
        .draw());
    let mut groups: Vec<String> = Vec::new();
    for (g, _) in &curves {
        if !groups.contains(g) {
            groups.push(g.clone());
        }
    }
    for (gi, g) in groups.iter().enumerate() {
        let c = color(gi);
        let mut first = true;
        for (_, pts) in curves.iter().filter(|(x, _)| x == g) {
            let s =
                t!(chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)).point_size(3)));
            if first {
                s.label(g.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 12, y)], c.stroke_width(2))
                });
                first = false;
            }
        }
    }
    t!(chart
        .draw_series(LineSeries::new(
            vec![(0.0, target * 100.0), (x1, target * 100.0)],
            RED.stroke_width(1)
        ))
        .map(|s| s
            .label("target")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], RED))));
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// Per-domain power over a trial: sampled timelines where the meter polls,
/// otherwise each window's average power drawn as a step.
/// (domain, sampled rather than window averages, (seconds, watts) points).
pub type PowerSeries = (String, bool, Vec<(f64, f64)>);

pub fn power_series(r: &TrialRecord) -> Vec<PowerSeries> {
    let mut windows: Vec<&crate::meter::EnergyReading> = Vec::new();
    if let Some(i) = &r.idle {
        windows.push(i);
    }
    for e in &r.epochs {
        windows.push(&e.train);
        windows.push(&e.validation);
    }
    if let Some(t) = &r.test {
        windows.push(&t.window);
    }
    if let Some(i) = &r.inference {
        windows.push(&i.window);
    }
    let mut out: Vec<PowerSeries> = Vec::new();
    let mut t0 = 0.0;
    for w in windows {
        for d in &w.domains {
            let sampled: Vec<(f64, f64)> = w
                .timeline
                .iter()
                .filter(|s| s.domain == d.domain)
                .map(|s| (t0 + s.t, s.watts.0))
                .collect();
            let (is_sampled, pts) = if sampled.len() >= 2 {
                (true, sampled)
            } else {
                (
                    false,
                    vec![(t0, d.avg_watts.0), (t0 + w.seconds.0, d.avg_watts.0)],
                )
            };
            match out.iter_mut().find(|(n, _, _)| n == &d.domain) {
                Some(e) => {
                    e.1 |= is_sampled;
                    e.2.extend(pts)
                }
                None => out.push((d.domain.clone(), is_sampled, pts)),
            }
        }
        t0 += w.seconds.0;
    }
    out
}

/// 4. Power timeline of one trial, per domain.
fn power_timeline<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &TrialRecord) -> Res {
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

/// 5. Batch-size sweep: training energy and time versus batch size, per workload.
fn batch_sweep<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, run: &Run) -> Res {
    t!(area.fill(&WHITE));
    let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);
    let mut workloads: Vec<String> = Vec::new();
    for r in &run.records {
        if !workloads.contains(&r.key.workload) {
            workloads.push(r.key.workload.clone());
        }
    }
    let points = |w: &str, f: &dyn Fn(&TrialRecord) -> Option<f64>| -> Vec<(f64, f64, f64)> {
        let mut bs: Vec<u32> = run
            .records
            .iter()
            .filter(|r| r.key.workload == w)
            .map(|r| r.config.batch_size)
            .collect();
        bs.sort_unstable();
        bs.dedup();
        bs.into_iter()
            .filter_map(|b| {
                let xs: Vec<f64> = run
                    .records
                    .iter()
                    .filter(|r| r.key.workload == w && r.config.batch_size == b)
                    .filter_map(f)
                    .collect();
                let e = super::stats::Estimate::of(&xs);
                e.mean.is_finite().then_some((
                    b as f64,
                    e.mean,
                    if e.ci95.is_finite() { e.ci95 } else { 0.0 },
                ))
            })
            .collect()
    };
    type Metric<'a> = &'a dyn Fn(&TrialRecord) -> Option<f64>;
    let panels: [(&DrawingArea<DB, Shift>, &str, Metric); 2] = [
        (&left, "training energy (J)", &|r: &TrialRecord| {
            r.training.as_ref().map(|t| t.joules.0)
        }),
        (&right, "training time (s)", &|r: &TrialRecord| {
            r.training.as_ref().map(|t| t.seconds.0)
        }),
    ];
    for (panel, ydesc, f) in panels {
        let all: Vec<(f64, f64, f64)> = workloads.iter().flat_map(|w| points(w, f)).collect();
        let xmax = all.iter().map(|p| p.0).fold(1.0, f64::max);
        let xmin = all.iter().map(|p| p.0).fold(xmax, f64::min);
        let ymax = all.iter().map(|p| p.1 + p.2).fold(0.0, f64::max).max(1e-9) * 1.15;
        let mut chart = t!(ChartBuilder::on(panel)
            .caption(
                format!(
                    "{} vs batch size{}",
                    ydesc.split(" (").next().unwrap_or(ydesc),
                    if ydesc.contains("energy") {
                        energy_label(run.modelled())
                    } else {
                        ""
                    }
                ),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((xmin / 1.5..xmax * 1.5).log_scale(), 0f64..ymax));
        t!(chart
            .configure_mesh()
            .x_desc("batch size (log scale)")
            .y_desc(ydesc)
            .draw());
        for (i, w) in workloads.iter().enumerate() {
            let c = color(i);
            let pts = points(w, f);
            t!(chart.draw_series(pts.iter().map(|p| ErrorBar::new_vertical(
                p.0,
                p.1 - p.2,
                p.1,
                p.1 + p.2,
                c.stroke_width(1),
                8
            ))));
            t!(chart
                .draw_series(
                    LineSeries::new(pts.iter().map(|p| (p.0, p.1)), c.stroke_width(2))
                        .point_size(4)
                )
                .map(
                    |s| s.label(w.clone()).legend(move |(x, y)| PathElement::new(
                        vec![(x, y), (x + 12, y)],
                        c.stroke_width(2)
                    ))
                ));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}

/// Regions drawn in the impact plot (plus the run's own).
pub const IMPACT_REGIONS: &[&str] = &[
    "NOR", "FRA", "BRA", "CAN", "WORLD", "USA", "DEU", "CHN", "IND", "AUS",
];

/// The run's total gross energy and the CO2e it means in each region.
pub fn impact_by_region(run: &Run) -> Vec<(String, f64, f64)> {
    let joules: f64 = run.records.iter().map(|r| r.total_energy().joules.0).sum();
    let own = run
        .records
        .iter()
        .find_map(|r| r.impact.as_ref())
        .map(|i| i.settings.clone());
    let (pue, wue, off) = own.as_ref().map_or(
        (
            crate::impact::DEFAULT_PUE,
            crate::impact::DEFAULT_WUE_ONSITE,
            crate::impact::DEFAULT_WATER_OFFSITE,
        ),
        |s| (s.pue, s.wue_onsite_l_per_kwh, s.water_offsite_l_per_kwh),
    );
    let mut codes: Vec<String> = IMPACT_REGIONS.iter().map(|s| s.to_string()).collect();
    if let Some(s) = &own
        && !codes.contains(&s.region.code)
    {
        codes.push(s.region.code.clone());
    }
    let mut rows: Vec<(String, f64, f64)> = codes
        .into_iter()
        .filter_map(|c| lookup(&c).ok())
        .map(|region| {
            let s = ImpactSettings {
                region,
                dataset: crate::impact::TABLE_NAME.into(),
                pue,
                wue_onsite_l_per_kwh: wue,
                water_offsite_l_per_kwh: off,
            };
            let i = s.impact(crate::units::Joules(joules));
            (s.region.code.clone(), i.co2e_g, i.water_l)
        })
        .collect();
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    rows
}

/// 6. CO2e and water of the whole run for a list of regions.
fn impact_regions<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, run: &Run) -> Res {
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
        energy_bars(a, run)
    });
    render!(files, dir.join("energy-vs-accuracy"), (900, 560), |a| {
        energy_accuracy(a, run)
    });
    render!(files, dir.join("energy-to-accuracy"), (900, 560), |a| {
        eta_curves(a, run, target)
    });
    if let Some(r) = run.records.iter().find(|r| !r.epochs.is_empty()) {
        render!(files, dir.join("power-timeline"), (900, 500), |a| {
            power_timeline(a, r)
        });
    }
    render!(files, dir.join("batch-size-sweep"), (1100, 500), |a| {
        batch_sweep(a, run)
    });
    render!(files, dir.join("impact-by-region"), (900, 520), |a| {
        impact_regions(a, run)
    });
    Ok(files)
}

/// A target accuracy for ETA when none is given: the lowest final validation
/// accuracy over completed trials, so every trial's curve can reach it.
pub fn default_target(run: &Run) -> f64 {
    let t = run
        .records
        .iter()
        .filter_map(|r| r.epochs.last().and_then(|e| e.val_accuracy))
        .fold(f64::INFINITY, f64::min);
    if t.is_finite() {
        (t * 1000.0).floor() / 1000.0
    } else {
        0.8
    }
}

/// ETA per trial at `target`: (key, Some((J, s)) or None if never reached).
pub fn eta_table(run: &Run, target: f64) -> Vec<(String, Option<(f64, f64)>)> {
    run.records
        .iter()
        .map(|r| (r.key.to_string(), energy_to_accuracy(r, target)))
        .collect()
}

/// Measured treatment/baseline ratio (95% CI) against the published ratio,
/// per claim, on a log axis.
fn claims_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    outcomes: &[&crate::claims::Outcome],
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
    let ok: Vec<(usize, &&crate::claims::Outcome)> = outcomes
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

/// Writes `measured-vs-published.{svg,png}` into `dir`.
pub fn claims_plot(
    outcomes: &[&crate::claims::Outcome],
    dir: &Path,
) -> Result<Vec<PathBuf>, AnalysisError> {
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
        claims_chart(a, outcomes)
    });
    Ok(files)
}
