//! `report.md` (+ `trials.csv` and the plots) for a run folder.

use super::aggregate::{paired, summarize};
use super::plots::draw_all;
use super::series;
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

/// The report's Markdown text: one function per `##` section.
pub fn markdown(run: &Run, target: f64, files: &[PathBuf]) -> String {
    let mut o = String::new();
    header(&mut o, run);
    let peak_rows = variants(&mut o, run);
    phases(&mut o, run);
    peaks(&mut o, &peak_rows);
    against_baseline(&mut o, run);
    estimate_band(&mut o, run);
    energy_to_accuracy(&mut o, run, target);
    super::batch_schedules::report_section(&mut o, run);
    super::power_limit::report_section(&mut o, run, target);
    super::schedule::report_section(&mut o, run);
    super::context_sweep::report_section(&mut o, run);
    super::sparsity_sweep::report_section(&mut o, run);
    plots(&mut o, run, files);
    let _ = writeln!(
        o,
        "## Files\n\n- `trials.csv`: one row per trial (columns in `src/analysis/csv_export.rs` and docs/records.md)\n- `trials.jsonl`: the raw records\n- `plots/`: SVG and PNG of every plot"
    );
    o
}

/// Title, the estimated-energy warning and the provenance table.
fn header(o: &mut String, run: &Run) {
    let suite = run.records.first().map_or("?", |r| r.suite.as_str());
    let _ = writeln!(o, "# joulebench report: suite `{suite}`\n");
    let _ = writeln!(o, "Run folder: `{}`", run.dir.display());
    if run.modelled() {
        let _ = writeln!(
            o,
            "\n> **Energy in this run is ESTIMATED** (provenance `{}`): it is modelled from CPU utilisation and \
             memory × rated power, not measured by a hardware counter. Compare variants within the run; do \
             not quote the joules as measurements.\n",
            run.provenance()
        );
    }
    let shared = run
        .records
        .iter()
        .filter(|r| {
            r.placement
                .as_ref()
                .is_some_and(|p| p.shared_node_cpu_energy)
        })
        .count();
    if shared > 0 {
        let _ = writeln!(
            o,
            "\n> **{shared} trial(s) measured CPU energy with RAPL on a node shared with other jobs**: RAPL counts whole sockets, so their CPU joules include the other jobs' work. Submit with `--exclusive`.\n"
        );
    }
    if let Some(m) = &run.manifest {
        let _ = writeln!(o, "\n## Provenance\n");
        let _ = writeln!(o, "| item | value |\n|---|---|");
        let _ = writeln!(o, "| created | {} |", m.created_at);
        let _ = writeln!(
            o,
            "| joulebench | {} (git {} , {}) |",
            m.joulebench_version, m.git_commit, m.git_state
        );
        let _ = writeln!(o, "| candle | {} |", m.candle_version);
        let _ = writeln!(
            o,
            "| host | {} — {}, {} logical cores, {:.1} GiB, {} |",
            m.host.hostname,
            m.host.cpu_model,
            m.host.logical_cores,
            m.host.memory_bytes as f64 / (1u64 << 30) as f64,
            m.host.os
        );
        let _ = writeln!(o, "| device | {} |", m.device);
        for c in m.kernel_checks.iter().filter(|c| !c.passed) {
            let _ = writeln!(o, "| kernel {} ({}) | {} |", c.kernel, c.build, c.action);
        }
        if let Some(a) = &m.allocator {
            let _ = writeln!(o, "| allocator | {} |", a.describe());
        }
        if let Some(d) = &m.gpu_driver {
            let _ = writeln!(o, "| GPU driver | {d} |");
        }
        for g in &m.gpus {
            let _ = writeln!(
                o,
                "| GPU {} | {} (power limit {} W, {} °C at start) |",
                g.domain,
                g.name,
                g.power_limit_w.map_or("?".into(), |w| format!("{w:.0}")),
                g.temperature_c.map_or("?".into(), |t| t.to_string())
            );
        }
        shards_row(o, run);
        if !m.filters.is_empty() {
            let _ = writeln!(
                o,
                "| filters | a filtered run: {} (other workloads/variants were not run) |",
                m.filters
            );
        }
        let _ = writeln!(o, "| meter | {} |", m.meter.name);
        for d in &m.meter.domains {
            let _ = writeln!(
                o,
                "| domain `{}` | {} — {} |",
                d.domain,
                d.provenance.label(),
                d.method
            );
        }
        if let Some(c) = &m.meter.cpu {
            let _ = writeln!(
                o,
                "| CPU for the estimate | {}{}; TDP {}; threads {}; {} usable; {} |",
                c.model.as_deref().unwrap_or("(no model name)"),
                if c.virtualised { " (virtualised)" } else { "" },
                c.tdp_text(),
                c.threads_text(),
                c.vcpus,
                c.table
            );
        }
        for u in &m.unavailable_meters {
            let _ = writeln!(o, "| unavailable: {} | {} |", u.meter, u.reason);
        }
        let _ = writeln!(
            o,
            "| idle baseline | {} s before each trial (cool-down {} s) |",
            m.idle_seconds, m.cooldown_seconds
        );
        if let Some(i) = &m.impact {
            impact_rows(o, i);
        }
    }
}

/// The provenance table's row for a sharded run: shard folders, nodes, requeues.
fn shards_row(o: &mut String, run: &Run) {
    if !run.shards.is_empty() {
        let mut nodes: Vec<&str> = run
            .records
            .iter()
            .filter_map(|r| r.placement.as_ref().map(|p| p.hostname.as_str()))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        let restarted = run
            .records
            .iter()
            .filter(|r| r.placement.as_ref().is_some_and(|p| p.restart_count > 0))
            .count();
        let _ = writeln!(
            o,
            "| shards | a sharded run: {} shard folder(s) merged (the host above is shard {}'s); nodes {}; {} trial(s) recorded after a requeue |",
            run.shards.len(),
            run.shards[0],
            nodes.join(", "),
            restarted
        );
    }
}

/// The provenance table's rows for CO2e and water: intensity (annual and
/// hourly), dataset, PUE, WUE.
fn impact_rows(o: &mut String, i: &crate::impact::ImpactSettings) {
    let _ = writeln!(
        o,
        "| carbon intensity | {} ({}): {} gCO2e/kWh, {} — {} |",
        i.region.code,
        i.region.name,
        i.region.g_co2e_per_kwh,
        i.region.year.map_or("no year".into(), |y| y.to_string()),
        i.region.source
    );
    let _ = writeln!(o, "| carbon dataset | {} |", i.dataset);
    if let Some(h) = &i.hourly {
        let _ = writeln!(
            o,
            "| hourly intensity | {}: CO2e uses profile {} ({}, {}), each UTC hour of the run matched to the same calendar hour of {}; {}; licence {} |",
            match i.intensity {
                crate::impact::Intensity::Hourly => "on",
                crate::impact::Intensity::Annual => "off",
            },
            h.id,
            h.name,
            h.year,
            h.year,
            h.source,
            h.licence
        );
    }
    let _ = writeln!(o, "| PUE | {} |", i.pue);
    let _ = writeln!(
        o,
        "| water | on-site WUE {} L/kWh, off-site {} L/kWh |",
        i.wue_onsite_l_per_kwh, i.water_offsite_l_per_kwh
    );
}

/// The variants table; returns the rows of the peak-efficiency table.
fn variants(o: &mut String, run: &Run) -> Vec<String> {
    let _ = writeln!(o, "\n## Variants\n");
    if !run.missing.is_empty() {
        let shown: Vec<String> = run
            .missing
            .iter()
            .take(20)
            .map(|k| format!("`{k}`"))
            .collect();
        let _ = writeln!(
            o,
            "Partial run: {} of {} planned trials recorded. Missing: {}{}.\n",
            run.records.len(),
            run.records.len() + run.missing.len(),
            shown.join(", "),
            if run.missing.len() > 20 {
                format!(" and {} more", run.missing.len() - 20)
            } else {
                String::new()
            }
        );
    }
    if run.discarded_bytes > 0 {
        let _ = writeln!(
            o,
            "A half-written last record ({} bytes) was ignored.\n",
            run.discarded_bytes
        );
    }
    let _ = writeln!(
        o,
        "Mean ± 95% confidence half-width (Student t) over completed trials. Energy is per trial over all windows (training, validation, test, inference) unless named otherwise; net = gross − idle power × duration.\n"
    );
    let _ = writeln!(
        o,
        "| workload | variant | n | test acc (%) | train s | gross J | idle J | net J | train J/sample | train FLOP/J | inference J/1k | CO2e g | provenance | outliers |"
    );
    let _ = writeln!(
        o,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut peak_rows: Vec<String> = Vec::new();
    let peak = run.manifest.as_ref().and_then(|m| {
        m.gpus
            .iter()
            .find_map(|g| crate::analysis::peaks::lookup(&g.name))
    });
    for v in summarize(&run.records) {
        if let Some(p) = peak
            && let Some(r) = run
                .records
                .iter()
                .find(|r| r.key.workload == v.workload && r.key.variant == v.variant)
        {
            peak_rows.push(format!(
                "| {} | {} | {} | {:.3e} | {:.2e} |",
                v.workload,
                v.variant,
                p.device,
                p.flop_per_joule(r.config.precision),
                v.flop_per_j.mean / p.flop_per_joule(r.config.precision)
            ));
        }
        let acc = super::stats::Estimate {
            mean: v.accuracy.mean * 100.0,
            ci95: v.accuracy.ci95 * 100.0,
            ..v.accuracy
        };
        let _ = writeln!(
            o,
            "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.workload,
            v.variant,
            v.completed,
            v.trials,
            est(&acc),
            est(&v.train_s),
            est(&v.gross_j),
            est(&v.idle_j),
            est(&v.net_j),
            est(&v.j_per_sample),
            est(&v.flop_per_j),
            est(&v.inference_j_per_1k),
            est(&v.co2e_g),
            v.provenance,
            if v.outliers.is_empty() {
                "-".into()
            } else {
                v.outliers.join(", ")
            }
        );
    }
    peak_rows
}

/// Where the training time went, per phase.
fn phases(o: &mut String, run: &Run) {
    let phase_rows: Vec<String> = summarize(&run.records)
        .iter()
        .filter_map(|v| {
            let ps: Vec<crate::record::PhaseTimes> = run
                .records
                .iter()
                .filter(|r| r.key.workload == v.workload && r.key.variant == v.variant)
                .flat_map(|r| r.epochs.iter().filter_map(|e| e.phases))
                .collect();
            if ps.is_empty() {
                return None;
            }
            let n = ps.len() as f64;
            let mean = |f: fn(&crate::record::PhaseTimes) -> f64| ps.iter().map(f).sum::<f64>() / n;
            let (d, f, b, o) = (
                mean(|p| p.data_s.0),
                mean(|p| p.forward_s.0),
                mean(|p| p.backward_s.0),
                mean(|p| p.optimizer_s.0),
            );
            let t = (d + f + b + o).max(1e-12);
            Some(format!(
                "| {} | {} | {:.3} ({:.0}%) | {:.3} ({:.0}%) | {:.3} ({:.0}%) | {:.3} ({:.0}%) |",
                v.workload,
                v.variant,
                d,
                100.0 * d / t,
                f,
                100.0 * f / t,
                b,
                100.0 * b / t,
                o,
                100.0 * o / t
            ))
        })
        .collect();
    if !phase_rows.is_empty() {
        let _ = writeln!(
            o,
            "\nWhere training time goes (seconds per epoch, mean over trials):\n"
        );
        let _ = writeln!(
            o,
            "| workload | variant | data | forward | backward | optimizer |\n|---|---|---|---|---|---|"
        );
        for row in &phase_rows {
            let _ = writeln!(o, "{row}");
        }
    }
}

/// Achieved FLOP/s and FLOP/J against the device peak.
fn peaks(o: &mut String, peak_rows: &[String]) {
    if !peak_rows.is_empty() {
        let _ = writeln!(
            o,
            "\nTraining FLOP/J against the device's peak dense FLOP/J at rated power (`src/peaks.rs`, vendors' datasheets):\n"
        );
        let _ = writeln!(
            o,
            "| workload | variant | device | peak FLOP/J | fraction of peak |\n|---|---|---|---|---|"
        );
        for row in peak_rows {
            let _ = writeln!(o, "{row}");
        }
    }
}

/// Paired deltas against the baseline variant.
fn against_baseline(o: &mut String, run: &Run) {
    if let Some(base) = run.baseline() {
        let ps = paired(&run.records, &base);
        if !ps.is_empty() {
            let _ = writeln!(
                o,
                "\n## Against the baseline `{base}` (paired on seed and repeat)\n"
            );
            let _ = writeln!(
                o,
                "Positive savings mean the variant used less. ✱ marks an interval that excludes zero.\n"
            );
            let _ = writeln!(
                o,
                "| workload | variant | pairs | energy saved % (gross) | train energy saved % (net) | time saved % | Δ test accuracy (pp) |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|---|");
            let star = |e: &super::stats::Estimate| {
                format!("{}{}", est(e), if e.excludes_zero() { " ✱" } else { "" })
            };
            for p in ps {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    p.workload,
                    p.variant,
                    p.pairs,
                    star(&p.energy_saved_pct),
                    star(&p.net_train_energy_saved_pct),
                    star(&p.time_saved_pct),
                    star(&p.accuracy_delta_pp)
                );
            }
        }
    }
}

/// Modelled runs: each variant's energy with the estimate's band, and
/// whether the band leaves a paired saving open.
fn estimate_band(o: &mut String, run: &Run) {
    let rows: Vec<_> = summarize(&run.records)
        .into_iter()
        .filter(|v| v.gross_j_low.n > 0)
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## Estimated energy with its band\n");
    let _ = writeln!(
        o,
        "The estimate's figure under its central model, with the range from its lowest to its highest published model (`joulebench meters` lists them). The band is a model error shared by every trial of the run, so it does not shrink with more seeds.\n"
    );
    let _ = writeln!(o, "| workload | variant | gross J (band) |\n|---|---|---|");
    for v in &rows {
        let _ = writeln!(
            o,
            "| {} | {} | ≈ {} ({}–{}) |",
            v.workload,
            v.variant,
            fmt_sig(v.gross_j.mean),
            fmt_sig(v.gross_j_low.mean),
            fmt_sig(v.gross_j_high.mean)
        );
    }
    let Some(base) = run.baseline() else { return };
    let ps: Vec<_> = paired(&run.records, &base)
        .into_iter()
        .filter(|p| p.band_makes_inconclusive().is_some())
        .collect();
    if ps.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\nGross energy saved against `{base}` with every trial under the band's lowest and under its highest model:\n"
    );
    let _ = writeln!(
        o,
        "| workload | variant | saved % (central) | saved % (low model) | saved % (high model) | verdict |\n|---|---|---|---|---|---|"
    );
    for p in ps {
        let verdict = match p.band_makes_inconclusive() {
            Some(true) => "inconclusive: the band, not only the seeds, leaves the sign open",
            _ if p.energy_saved_pct.excludes_zero() => "holds across the band",
            _ => "inconclusive (seed-to-seed CI includes zero)",
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            p.workload,
            p.variant,
            est(&p.energy_saved_pct),
            est(&p.energy_saved_pct_low_model),
            est(&p.energy_saved_pct_high_model),
            verdict
        );
    }
}

/// Energy and time to the target accuracy.
fn energy_to_accuracy(o: &mut String, run: &Run, target: f64) {
    let _ = writeln!(
        o,
        "\n## Energy to accuracy (target {:.1}% validation accuracy)\n",
        target * 100.0
    );
    let _ = writeln!(
        o,
        "Cumulative training + validation energy and time until the first evaluation at or above the target (evaluations once per epoch).\n"
    );
    let _ = writeln!(
        o,
        "| workload | variant | reached | energy to target (J) | time to target (s) |\n|---|---|---|---|---|"
    );
    let eta = series::eta_table(run, target);
    for v in summarize(&run.records) {
        let prefix = format!("{}/{}/", v.workload, v.variant);
        let these: Vec<&Option<(f64, f64)>> = eta
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, e)| e)
            .collect();
        let hit: Vec<(f64, f64)> = these.iter().filter_map(|e| **e).collect();
        let ej = super::stats::Estimate::of(&hit.iter().map(|h| h.0).collect::<Vec<_>>());
        let es = super::stats::Estimate::of(&hit.iter().map(|h| h.1).collect::<Vec<_>>());
        let _ = writeln!(
            o,
            "| {} | {} | {}/{} | {} | {} |",
            v.workload,
            v.variant,
            hit.len(),
            these.len(),
            est(&ej),
            est(&es)
        );
    }
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
