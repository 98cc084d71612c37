//! `joulebench schedule`: when and where a run's measured energy would have
//! emitted least. Takes the run's windows (their energy, duration and shape),
//! and computes the CO2e for a start at every hour of each chosen region's
//! data year (`impact::schedule`), then writes `schedule/` in the run folder.

use super::study::{Ctx, Study};
use super::{AnalysisError, Run};
use crate::impact::hourly::{self, Span};
use crate::impact::schedule::{Load, WhatIf, what_if};
use std::fmt::Write as _;
use std::path::PathBuf;

/// What to compute.
#[derive(Debug, Clone, Default)]
pub struct ScheduleOptions {
    /// Region ids (`GB`), annual codes with one profile (`GBR`), or `all`.
    /// Empty: the run's own region, when it has a profile.
    pub regions: Vec<String>,
    /// "Start at the best hour within the next N hours".
    pub within_hours: u32,
    /// Only profiles of this data year.
    pub year: Option<i32>,
    /// Only this trial (`workload/variant/sS/rR`); default the whole run.
    pub trial: Option<String>,
}

fn bad(message: String) -> AnalysisError {
    AnalysisError::File {
        path: PathBuf::from("--region"),
        message,
    }
}

fn known() -> String {
    hourly::BUNDLED
        .iter()
        .map(|b| format!("{} ({})", b.id, b.year))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The profiles to compare.
pub fn profiles(
    run: &Run,
    o: &ScheduleOptions,
) -> Result<Vec<&'static hourly::Bundled>, AnalysisError> {
    let own = run
        .manifest
        .as_ref()
        .and_then(|m| m.impact.as_ref())
        .and_then(|i| i.hourly.as_ref())
        .map(|h| h.id.clone());
    let asked: Vec<String> = if o.regions.is_empty() {
        vec![own.ok_or_else(|| {
            bad(format!(
                "the run's region has no hourly profile: name one or more with --region (bundled: {}; or `all`)",
                known()
            ))
        })?]
    } else {
        o.regions.clone()
    };
    let mut out: Vec<&'static hourly::Bundled> = Vec::new();
    for r in &asked {
        let found: Vec<&'static hourly::Bundled> = if r.eq_ignore_ascii_case("all") {
            hourly::BUNDLED
                .iter()
                .filter(|b| o.year.is_none_or(|y| b.year == y))
                .collect()
        } else {
            let b = hourly::find(r)
                .or_else(|| {
                    crate::impact::lookup(r)
                        .ok()
                        .and_then(|a| hourly::for_annual(&a.code))
                })
                .ok_or_else(|| {
                    bad(format!(
                        "region {:?} has no bundled hourly profile; bundled: {}",
                        crate::util::clip(r),
                        known()
                    ))
                })?;
            if let Some(y) = o.year
                && b.year != y
            {
                return Err(bad(format!(
                    "region {} has hourly data for {} only, not {y} (--year)",
                    b.id, b.year
                )));
            }
            vec![b]
        };
        for b in found {
            if !out.iter().any(|x| x.id == b.id) {
                out.push(b);
            }
        }
    }
    if out.is_empty() {
        return Err(bad(format!(
            "no bundled profile for year {:?}; bundled: {}",
            o.year,
            known()
        )));
    }
    Ok(out)
}

/// The run's (or one trial's) windows as spans of gross IT energy.
pub fn spans(run: &Run, trial: Option<&str>) -> Result<Vec<Span>, AnalysisError> {
    let recs: Vec<_> = run
        .records
        .iter()
        .filter(|r| trial.is_none_or(|t| r.key.to_string() == t))
        .collect();
    if recs.is_empty() {
        return Err(AnalysisError::File {
            path: run.dir.clone(),
            message: match trial {
                Some(t) => format!(
                    "no trial {:?} in this run (keys look like mlp/b32/s1/r0)",
                    crate::util::clip(t)
                ),
                None => "no records".into(),
            },
        });
    }
    let mut out = Vec::new();
    for r in recs {
        for w in r.windows() {
            let Some(start) = w.started_unix else {
                return Err(AnalysisError::File {
                    path: run.dir.clone(),
                    message: format!(
                        "trial {}: window {} has no wall-clock start (a record from before joulebench recorded them); rerun to use schedule",
                        r.key, w.window
                    ),
                });
            };
            out.push(Span {
                start_unix: start,
                seconds: w.seconds.0,
                joules: w.joules.0,
            });
        }
    }
    Ok(out)
}

/// The run's PUE (its impact settings), else the default.
fn pue(run: &Run) -> f64 {
    run.manifest
        .as_ref()
        .and_then(|m| m.impact.as_ref())
        .map_or(crate::impact::DEFAULT_PUE, |i| i.pue)
}

/// Load and what-ifs for the options.
pub fn compute(run: &Run, o: &ScheduleOptions) -> Result<(Load, Vec<WhatIf>), AnalysisError> {
    let chosen = profiles(run, o)?;
    let load = Load::from_spans(&spans(run, o.trial.as_deref())?, pue(run)).map_err(|message| {
        AnalysisError::File {
            path: run.dir.clone(),
            message,
        }
    })?;
    let mut out = Vec::new();
    for b in chosen {
        let p = b.load().map_err(|e| AnalysisError::File {
            path: PathBuf::from(b.file),
            message: e.to_string(),
        })?;
        out.push(what_if(&p, &load, o.within_hours));
    }
    Ok((load, out))
}

/// Grams with a unit that keeps 3 significant digits readable.
pub fn grams(g: f64) -> String {
    if g >= 1.0 {
        format!("{g:.3} g")
    } else if g >= 1e-3 {
        format!("{:.3} mg", g * 1e3)
    } else {
        format!("{:.3} µg", g * 1e6)
    }
}

/// The summary table, one row per region.
pub fn table(whatifs: &[WhatIf]) -> String {
    let mut o = String::new();
    let within = whatifs.first().map_or(0, |w| w.within.hours);
    let _ = writeln!(
        o,
        "| region | data year | best start (UTC) | min | p10 | median | p90 | max (worst start) | best within {within} h vs now: mean saving | p10 / median / p90 saving | mean wait |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|");
    for w in whatifs {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} ({}) | {:.1}% | {:.1}% / {:.1}% / {:.1}% | {:.1} h |",
            w.region,
            w.year,
            w.best_start,
            grams(w.min),
            grams(w.p10),
            grams(w.median),
            grams(w.p90),
            grams(w.max),
            w.worst_start,
            w.within.mean_pct,
            w.within.p10_pct,
            w.within.median_pct,
            w.within.p90_pct,
            w.within.mean_delay_h
        );
    }
    o
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Writes `<run>/schedule/schedule.md`, `schedule.csv` (grams per start hour
/// per region) and the two charts; returns the markdown path.
pub fn write(run: &Run, o: &ScheduleOptions) -> Result<(PathBuf, String), AnalysisError> {
    let (load, whatifs) = compute(run, o)?;
    let dir = run.dir.join("schedule");
    std::fs::create_dir_all(&dir).map_err(|e| AnalysisError::File {
        path: dir.clone(),
        message: e.to_string(),
    })?;
    let files = super::plots::schedule_plots(&whatifs, &dir, run.modelled())?;
    let mut md = String::new();
    let _ = writeln!(md, "# Carbon-aware scheduling what-if\n");
    let _ = writeln!(
        md,
        "Run `{}`{}: {} of facility energy (IT energy x PUE {}) over {:.1} h, laid out hour by hour as measured. \
         For every start hour of each region's data year, the CO2e that load would have caused (starts in late December wrap to January). \
         Hourly intensities are life-cycle values; the data families differ in method (README: data/carbon-hourly).\n",
        run.dir.display(),
        o.trial
            .as_deref()
            .map_or(String::new(), |t| format!(", trial `{t}`")),
        format_kwh(load.kwh()),
        pue(run),
        load.seconds / 3600.0
    );
    if run.modelled() {
        let _ = writeln!(
            md,
            "> The energy is **ESTIMATED** (modelled, not measured); the ratios between start hours hold, the grams are as uncertain as the estimate.\n"
        );
    }
    md.push_str(&table(&whatifs));
    let _ = writeln!(md, "\n## Best start hour (UTC) by month\n");
    let _ = writeln!(md, "| region | {} |", MONTHS.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(12));
    for w in &whatifs {
        let cells: Vec<String> = w
            .best_hour_by_month
            .iter()
            .map(|(_, h, g)| format!("{h:02}:00 ({})", grams(*g)))
            .collect();
        let _ = writeln!(md, "| {} | {} |", w.region, cells.join(" | "));
    }
    let _ = writeln!(md, "\n## Files\n");
    let _ = writeln!(
        md,
        "- `schedule.csv`: grams CO2e for each start hour of the data year, one column per region"
    );
    for f in &files {
        if let Some(n) = f.file_name() {
            let _ = writeln!(md, "- `{}`", n.to_string_lossy());
        }
    }
    let _ = writeln!(md, "\nData: {}", attributions(&whatifs));
    let mut csv = String::from("start_hour_of_year");
    for w in &whatifs {
        let _ = write!(csv, ",{}_{}_g_co2e", w.region, w.year);
    }
    csv.push('\n');
    let n = whatifs.iter().map(|w| w.per_start.len()).max().unwrap_or(0);
    for h in 0..n {
        let _ = write!(csv, "{h}");
        for w in &whatifs {
            let _ = write!(
                csv,
                ",{}",
                w.per_start
                    .get(h)
                    .map_or(String::new(), |g| format!("{g:.6e}"))
            );
        }
        csv.push('\n');
    }
    let write_file = |p: PathBuf, text: &str| {
        std::fs::write(&p, text).map_err(|e| AnalysisError::File {
            path: p.clone(),
            message: e.to_string(),
        })
    };
    write_file(dir.join("schedule.csv"), &csv)?;
    let path = dir.join("schedule.md");
    write_file(path.clone(), &md)?;
    Ok((path, table(&whatifs)))
}

fn format_kwh(kwh: f64) -> String {
    if kwh >= 1.0 {
        format!("{kwh:.3} kWh")
    } else {
        format!("{:.3} Wh", kwh * 1000.0)
    }
}

/// The required attributions of the families used.
fn attributions(whatifs: &[WhatIf]) -> String {
    let mut fams: Vec<hourly::Family> = Vec::new();
    for w in whatifs {
        if let Some(b) = hourly::find(&w.region)
            && !fams.contains(&b.family)
        {
            fams.push(b.family);
        }
    }
    fams.iter()
        .map(|f| f.attribution())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The report's carbon-by-start-time study (runs with an hourly profile).
pub struct CarbonByStartTime;

impl Study for CarbonByStartTime {
    fn name(&self) -> &'static str {
        "carbon-by-start-time"
    }

    fn section(&self, ctx: &Ctx, o: &mut String) {
        report_section(o, ctx.run);
    }
}

/// The report's short section when the run's region has an hourly profile.
fn report_section(o: &mut String, run: &Run) {
    let Some(h) = run
        .manifest
        .as_ref()
        .and_then(|m| m.impact.as_ref())
        .filter(|i| i.intensity == crate::impact::Intensity::Hourly)
        .and_then(|i| i.hourly.as_ref())
    else {
        return;
    };
    let opts = ScheduleOptions {
        regions: vec![h.id.clone()],
        within_hours: 24,
        ..Default::default()
    };
    let Ok((_, whatifs)) = compute(run, &opts) else {
        return;
    };
    let hourly: f64 = run
        .records
        .iter()
        .filter_map(|r| r.impact.as_ref()?.hourly.as_ref())
        .map(|i| i.gross_co2e_g)
        .sum();
    let annual: f64 = run
        .records
        .iter()
        .filter_map(|r| r.impact.as_ref())
        .map(|i| i.gross.co2e_g)
        .sum();
    let _ = writeln!(o, "\n## Carbon by start time ({} {})\n", h.id, h.year);
    let _ = writeln!(
        o,
        "This run's CO2e from the intensity of the hours it ran in: {} (the yearly average would say {}). \
         Had it started at another hour of {}, the same load would have caused:\n",
        grams(hourly),
        grams(annual),
        h.year
    );
    o.push_str(&table(&whatifs));
    let _ = writeln!(
        o,
        "\nOther regions, per-month best hours and charts: `joulebench schedule {} --region all`.",
        run.dir.display()
    );
}
