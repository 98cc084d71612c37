//! `joulebench reproduce`: runs claim suites and writes one
//! `reproduction.md` with a verdict per claim and a measured-vs-published plot.

use crate::analysis::claims::{self, Outcome};
use crate::analysis::plots::png_font_available;
use crate::harness::options::RunOptions;
use crate::harness::runner::{self, RunError};
use crate::suite::Suite;
use crate::train::Progress;
use std::fmt::Write;
use std::path::{Path, PathBuf};

impl From<RunError> for ReproduceError {
    fn from(e: RunError) -> Self {
        ReproduceError::Run(Box::new(e))
    }
}

/// Why claim suites could not be found, run or written up.
#[derive(Debug, thiserror::Error)]
pub enum ReproduceError {
    #[error(transparent)]
    Run(Box<RunError>),
    #[error(transparent)]
    Suite(#[from] crate::suite::SuiteError),
    #[error(transparent)]
    Analysis(#[from] crate::analysis::AnalysisError),
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}/suite.toml has no [claim] section: it is not a claim suite's run")]
    NotAClaim(PathBuf),
    #[error("unknown claim `{id}`; known: {known}")]
    UnknownClaim { id: String, known: String },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// A claim suite on disk.
pub struct ClaimSuite {
    pub path: PathBuf,
    pub suite: Suite,
}

/// Loads the claim suites in `dir` (sorted by file name), optionally only some ids.
pub fn discover(
    dir: &Path,
    ids: &[String],
    quick: bool,
) -> Result<Vec<ClaimSuite>, ReproduceError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| ReproduceError::Io {
            action: "read the claims folder",
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let suite = Suite::load_with(&path, quick)?;
        let Some(c) = &suite.claim else { continue };
        if ids.is_empty() || ids.contains(&c.id) {
            out.push(ClaimSuite { path, suite });
        }
    }
    let found: Vec<String> = out
        .iter()
        .filter_map(|c| c.suite.claim.as_ref().map(|c| c.id.clone()))
        .collect();
    if let Some(missing) = ids.iter().find(|i| !found.contains(i)) {
        let all = discover(dir, &[], quick)?;
        let known: Vec<String> = all
            .iter()
            .filter_map(|c| c.suite.claim.as_ref().map(|c| c.id.clone()))
            .collect();
        return Err(ReproduceError::UnknownClaim {
            id: missing.to_string(),
            known: known.join(", "),
        });
    }
    Ok(out)
}

/// One claim's outcome with the run it came from.
pub struct Reproduced {
    pub outcome: Outcome,
    pub run_dir: PathBuf,
}

/// Judges claims from runs already made (a sharded run is read as one run):
/// each run folder's suite copy names its claim.
pub fn judge_runs(dirs: &[PathBuf]) -> Result<Vec<Reproduced>, ReproduceError> {
    let mut out = Vec::new();
    for d in dirs {
        let run = crate::analysis::Run::load(d)?;
        let Some(claim) = run.suite.as_ref().and_then(|s| s.claim.clone()) else {
            return Err(ReproduceError::NotAClaim(d.clone()));
        };
        if !run.missing.is_empty() {
            tracing::warn!(
                "{}: {} planned trial(s) missing; the verdict uses the {} present",
                d.display(),
                run.missing.len(),
                run.records.len()
            );
        }
        out.push(Reproduced {
            outcome: claims::verdict(&claim, &run.records),
            run_dir: d.clone(),
        });
    }
    Ok(out)
}

/// Runs every claim suite and judges it.
pub fn run_all(
    suites: &[ClaimSuite],
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<Vec<Reproduced>, RunError> {
    let mut out = Vec::new();
    for cs in suites {
        let Some(claim) = &cs.suite.claim else {
            continue;
        };
        tracing::info!("claim {}: {}", claim.id, cs.path.display());
        // A claim about GPU settings runs only where they may change.
        let changes_gpu = cs
            .suite
            .plan()
            .is_ok_and(|p| p.trials.iter().any(|t| t.config.changes_gpu_settings()));
        if changes_gpu
            && (!opts.allow_gpu_settings || opts.device == crate::util::device::DeviceSpec::Cpu)
        {
            let mut outcome = claims::verdict(claim, &[]);
            outcome.verdict = claims::Verdict::NotApplicable;
            outcome.reason =
                "changes the GPU power limit: needs a GPU and --allow-gpu-settings (not run)"
                    .into();
            out.push(Reproduced {
                outcome,
                run_dir: PathBuf::new(),
            });
            continue;
        }
        let summary = runner::run_suite(&cs.suite, opts, progress)?;
        if let Some(sig) = summary.interrupted {
            return Err(RunError::Interrupted {
                signal: crate::util::interrupt::name(sig),
                run: summary.run_dir,
            });
        }
        out.push(Reproduced {
            outcome: claims::verdict(claim, &summary.records),
            run_dir: summary.run_dir,
        });
    }
    Ok(out)
}

fn fmt_ratio(o: &Outcome) -> String {
    let e = &o.ratio;
    if !e.mean.is_finite() {
        "-".into()
    } else if e.ci95.is_finite() {
        format!("{:.3} ± {:.3}", e.mean, e.ci95)
    } else {
        format!("{:.3} (n = 1)", e.mean)
    }
}

/// The verdict table (also used in the README).
pub fn table(results: &[Reproduced]) -> String {
    let mut o = String::from(
        "| # | claim | metric (treatment / baseline) | measured ratio (95% CI) | published | verdict | device, energy |\n|---|---|---|---|---|---|---|\n",
    );
    for (i, r) in results.iter().enumerate() {
        let c = &r.outcome.claim;
        let _ = writeln!(
            o,
            "| {} | {} | {}: {} / {} | {} | {} | **{}** | {}, {} |",
            i + 1,
            c.id,
            c.metric.name(),
            c.treatment,
            c.baseline,
            fmt_ratio(&r.outcome),
            c.published_ratio.map_or("-".into(), |p| format!("{p}")),
            r.outcome.verdict.label(),
            r.outcome.device,
            r.outcome.provenance
        );
    }
    o
}

/// Writes `reproduction.md`, `claims.json` and the plot into `dir`.
pub fn write(dir: &Path, results: &[Reproduced], quick: bool) -> Result<PathBuf, ReproduceError> {
    std::fs::create_dir_all(dir).map_err(|source| ReproduceError::Io {
        action: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Reproduction of published comparisons{}\n",
        if quick { " (quick, CPU-sized)" } else { "" }
    );
    let _ = writeln!(
        o,
        "Each claim ran as its own suite with paired trials (same seeds). Ratio = treatment / baseline of the metric per pair; mean and 95% Student-t interval over pairs. Verdicts: `reproduced` (the interval lies on the claimed side), `not reproduced` (it lies on the other side), `inconclusive` (it straddles the boundary, or too few pairs), `not applicable` (the claim needs a GPU or measured energy this run did not have). A claim made on a GPU that fails on a CPU is a result, not a failure of the tool.\n"
    );
    o.push_str(&table(results));
    let _ = writeln!(
        o,
        "\n![measured vs published](plots/measured-vs-published.{})\n",
        if png_font_available() { "png" } else { "svg" }
    );
    for (i, r) in results.iter().enumerate() {
        let c = &r.outcome.claim;
        let _ = writeln!(o, "## {}. {}\n", i + 1, c.id);
        let _ = writeln!(o, "- Claim: {}", c.statement);
        let _ = writeln!(o, "- Source: {}", c.source);
        let _ = writeln!(o, "- Published: {}", c.published);
        let _ = writeln!(
            o,
            "- Measured: ratio {} over {} pair(s) on {} ({} energy)",
            fmt_ratio(&r.outcome),
            r.outcome.pairs,
            r.outcome.device,
            r.outcome.provenance
        );
        let _ = writeln!(
            o,
            "- Verdict: **{}** — {}",
            r.outcome.verdict.label(),
            r.outcome.reason
        );
        if !c.notes.is_empty() {
            let _ = writeln!(o, "- Notes: {}", c.notes);
        }
        let _ = writeln!(
            o,
            "- Run: `{}` (its `report.md` has every number)\n",
            r.run_dir.display()
        );
    }
    let md = dir.join("reproduction.md");
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text).map_err(|source| ReproduceError::Io {
            action: "write",
            path,
            source,
        })
    };
    write(md.clone(), o)?;
    let outcomes: Vec<&Outcome> = results.iter().map(|r| &r.outcome).collect();
    let json =
        serde_json::to_string_pretty(&outcomes).map_err(|source| ReproduceError::Encode {
            what: "the claim outcomes",
            source,
        })?;
    write(dir.join("claims.json"), json)?;
    crate::analysis::plots::claims_plot(&outcomes, &dir.join("plots"))?;
    Ok(md)
}
