//! Analysis: statistics against independent reference values, plots, the
//! report and CSV (golden files), and compare's regression gate.

mod common;

use joulebench::analysis::STUDIES;
use joulebench::analysis::aggregate::{energy_to_accuracy, paired, summarize};
use joulebench::analysis::stats::{Estimate, median, modified_z, outliers, t_975};
use joulebench::analysis::study::Ctx;
use joulebench::analysis::{Run, compare, csv_export, plots, report, series};
use joulebench::meter::Provenance;
use std::path::Path;

#[test]
fn statistics_match_reference_values() {
    // Reference: scipy.stats (t.ppf(0.975, df)) and numpy for the sample below.
    // scipy: t.ppf(0.975, 1) = 12.706205, (9) = 2.262157, (60) = 2.000298,
    // (1000) = 1.962339 (the quantiles come from statrs now, not a 3-decimal table).
    assert!((t_975(1) - 12.706205).abs() < 1e-5, "{}", t_975(1));
    assert!((t_975(9) - 2.262157).abs() < 1e-5, "{}", t_975(9));
    assert!((t_975(60) - 2.000298).abs() < 1e-5, "{}", t_975(60));
    assert!((t_975(1000) - 1.962339).abs() < 1e-5, "{}", t_975(1000));
    let xs = [10.0, 12.0, 9.0, 11.0, 13.0];
    let e = Estimate::of(&xs);
    // mean 11, sd = sqrt(2.5) = 1.5811, ci = 2.776 * 1.5811 / sqrt(5) = 1.9630
    assert!((e.mean - 11.0).abs() < 1e-12);
    assert!((e.sd - 1.5811388).abs() < 1e-6);
    assert!((e.ci95 - 1.9629).abs() < 1e-3, "{}", e.ci95);
    assert!(e.excludes_zero());
    assert!(Estimate::of(&[1.0]).ci95.is_nan());
    assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
    // MAD of [1,2,3,4,100] = 1 (deviations 2,1,0,1,97); z(100) = 0.6745*97 = 65.4
    let z = modified_z(&[1.0, 2.0, 3.0, 4.0, 100.0]);
    assert!((z[4] - 65.4265).abs() < 1e-3, "{z:?}");
    assert_eq!(outliers(&[1.0, 2.0, 3.0, 4.0, 100.0]), vec![4]);
    assert!(outliers(&[1.0, 2.0, 3.0, 4.0, 5.0]).is_empty());
}

#[test]
fn summaries_and_paired_savings_from_a_fixture_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::load(&common::fixture_run(
        dir.path(),
        0.5,
        -0.01,
        Provenance::Counter,
    ))
    .unwrap();
    let s = summarize(&run.records);
    assert_eq!(s.len(), 2);
    let base = &s[0];
    assert_eq!((base.variant.as_str(), base.completed), ("base", 4));
    // Per trial: 3 epochs x (100*w + 5) + test 4 + inference 2, w = 1.01..1.04 -> mean w = 1.025
    let want = 3.0 * (100.0 * 1.025 + 5.0) + 6.0;
    assert!(
        (base.gross_j.mean - want).abs() < 1e-9,
        "{}",
        base.gross_j.mean
    );
    let p = &paired(&run.records, "base")[0];
    assert_eq!(p.pairs, 4);
    // fast: training and validation energy halved -> ratio f / b with
    // b = 300w+15+6 and f = 0.5*(300w+15)+6, paired on the log scale.
    let logs: Vec<f64> = (1..=4)
        .map(|s| {
            let w = 1.0 + 0.01 * s as f64;
            let b = 300.0 * w + 15.0 + 6.0;
            let f = 0.5 * (300.0 * w + 15.0) + 6.0;
            (f / b).ln()
        })
        .collect();
    let want = Estimate::of(&logs);
    assert!((p.energy.log.mean - want.mean).abs() < 1e-12);
    assert!((p.energy.log.ci95 - want.ci95).abs() < 1e-12);
    // Saved % = 100 (1 - exp(mean log ratio)): about 48.5 % here.
    let saved = -p.energy.change_pct();
    assert!(
        (saved - 100.0 * (1.0 - want.mean.exp())).abs() < 1e-9,
        "{saved}"
    );
    assert!(p.energy.excludes_zero() && p.energy_verdict(5.0) == "saves");
    assert!(
        (p.accuracy_delta_pp.mean + 1.0).abs() < 1e-9,
        "{}",
        p.accuracy_delta_pp.mean
    );
    // Time: 30 s vs 15 s of training.
    assert!((p.train_time.change_pct() + 50.0).abs() < 1e-9);
    // ETA: val acc per epoch = acc0 - 0.10, acc0 - 0.05, acc0; target 0.75 reached at epoch 2 for seed 1 base (0.802-0.05)
    let r0 = &run.records[0];
    let (j, s) = energy_to_accuracy(r0, 0.75).unwrap();
    assert!((j.0 - 2.0 * (101.0 + 5.0)).abs() < 1e-9, "{j}");
    assert!((s.0 - 21.0).abs() < 1e-9);
    assert!(energy_to_accuracy(r0, 0.99).is_none());
}

#[test]
fn pareto_frontier_keeps_only_undominated_points() {
    let pts = [
        (10.0, 0.8),
        (5.0, 0.7),
        (12.0, 0.79),
        (20.0, 0.9),
        (6.0, 0.65),
    ];
    let mut f = series::pareto(&pts);
    f.sort();
    assert_eq!(f, vec![0, 1, 3]);
}

fn svg_of(files: &[std::path::PathBuf], stem: &str) -> String {
    let f = files
        .iter()
        .find(|f| f.ends_with(format!("{stem}.svg")))
        .unwrap_or_else(|| panic!("{stem}.svg not written"));
    std::fs::read_to_string(f).unwrap()
}

#[test]
fn every_plot_renders_with_its_series_and_axis_labels_and_estimates_are_marked() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::load(&common::fixture_run(
        dir.path(),
        0.5,
        0.0,
        Provenance::Estimated,
    ))
    .unwrap();
    let files = plots::draw_all(&run, &dir.path().join("plots"), 0.78).unwrap();
    // An SVG and a PNG per registered chart that applies, and none of the others.
    let ctx = Ctx {
        run: &run,
        target: 0.78,
    };
    let applies: Vec<&str> = plots::applicable(&ctx).map(|c| c.stem()).collect();
    assert_eq!(files.len(), 2 * applies.len(), "{files:?}");
    for c in plots::CHARTS {
        for ext in ["svg", "png"] {
            let f = dir.path().join("plots").join(format!("{}.{ext}", c.stem()));
            assert_eq!(files.contains(&f), applies.contains(&c.stem()), "{f:?}");
            assert_eq!(f.is_file(), applies.contains(&c.stem()), "{f:?}");
        }
    }
    // The fixture has no sparse-execution records and no transformer sweep.
    for stem in ["sparsity-sweep", "context-sweep"] {
        assert!(plots::CHARTS.iter().any(|c| c.stem() == stem), "{stem}");
        assert!(!applies.contains(&stem), "{stem}");
    }
    for f in &files {
        assert!(
            std::fs::metadata(f).unwrap().len() > 1000,
            "{} is tiny",
            f.display()
        );
    }
    let checks: [(&str, &[&str]); 6] = [
        (
            "energy-per-variant",
            &[
                "mlp/base",
                "mlp/fast",
                "energy per trial, all windows (J)",
                "idle (baseline W x duration)",
                "ESTIMATED",
            ],
        ),
        (
            "energy-vs-accuracy",
            &[
                "Pareto frontier",
                "test accuracy (%)",
                "mlp/fast",
                "ESTIMATED",
            ],
        ),
        (
            "energy-to-accuracy",
            &[
                "target 78.0%",
                "validation accuracy (%)",
                "cumulative training + validation energy (J)",
                "mlp/base",
            ],
        ),
        (
            "power-timeline",
            &[
                "power (W)",
                "cpu-package:0 (window average, estimated)",
                "mlp/base/s1/r0",
            ],
        ),
        (
            "batch-size-sweep",
            &[
                "batch size (log scale)",
                "training energy (J)",
                "training time (s)",
                "mlp",
            ],
        ),
        ("impact-by-region", &["FRA", "IND", "WORLD", "CO2e"]),
    ];
    for (stem, wants) in checks {
        let svg = svg_of(&files, stem);
        for w in wants {
            assert!(svg.contains(w), "{stem}.svg lacks {w:?}");
        }
    }
    // Measured energy is not marked as estimated.
    let dir2 = tempfile::tempdir().unwrap();
    let run = Run::load(&common::fixture_run(
        dir2.path(),
        0.5,
        0.0,
        Provenance::Counter,
    ))
    .unwrap();
    let files = plots::draw_all(&run, &dir2.path().join("plots"), 0.78).unwrap();
    assert!(!svg_of(&files, "energy-per-variant").contains("ESTIMATED"));
}

fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        got, want,
        "{name} differs from the golden file (UPDATE_GOLDEN=1 to accept)"
    );
}

#[test]
fn report_and_csv_match_golden_files() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = common::fixture_run(dir.path(), 0.5, -0.01, Provenance::Estimated);
    let run = Run::load(&run_dir).unwrap();
    let w = report::write_report(&run, Some(0.78)).unwrap();
    let md = std::fs::read_to_string(&w.report)
        .unwrap()
        .replace(&run_dir.display().to_string(), "<RUN>");
    golden("report.md", &md);
    let csv = std::fs::read_to_string(&w.csv).unwrap();
    golden("trials.csv", &csv);
    assert_eq!(csv, csv_export::to_csv(&run.records));
    // The CSV is rectangular and parses.
    let mut rdr = csv::Reader::from_reader(csv.as_bytes());
    let n = rdr.headers().unwrap().len();
    let rows: Vec<_> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r.len() == n));
    // The studies' columns close the header, in registry order, and every
    // study gives one cell per column it declares.
    let theirs: Vec<&str> = STUDIES
        .iter()
        .flat_map(|s| s.csv_columns().iter().copied())
        .collect();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[n - theirs.len()..], theirs[..]);
    for s in STUDIES {
        for r in &run.records {
            let m = joulebench::analysis::aggregate::metrics(r);
            assert_eq!(
                s.csv_cells(r, &m).len(),
                s.csv_columns().len(),
                "{}",
                s.name()
            );
        }
    }
}

#[test]
fn report_works_on_a_partial_run_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = common::fixture_run(dir.path(), 0.5, 0.0, Provenance::Counter);
    let text = std::fs::read_to_string(run_dir.join("trials.jsonl")).unwrap();
    let keep: Vec<&str> = text.lines().take(3).collect();
    std::fs::write(
        run_dir.join("trials.jsonl"),
        format!("{}\n{{\"half", keep.join("\n")),
    )
    .unwrap();
    let run = Run::load(&run_dir).unwrap();
    let md = report::markdown(&run, 0.78, &[]);
    assert!(
        md.contains("Partial run: 3 of 8 planned trials recorded."),
        "{md}"
    );
    assert!(md.contains("half-written last record"), "{md}");
}

#[test]
fn compare_flags_a_planted_regression_and_not_a_planted_no_change() {
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = Run::load(&common::fixture_run(
        da.path(),
        0.5,
        0.0,
        Provenance::Counter,
    ))
    .unwrap();
    let same = Run::load(&common::fixture_run(
        db.path(),
        0.5,
        0.0,
        Provenance::Counter,
    ))
    .unwrap();
    let worse = Run::load(&common::fixture_run(
        dc.path(),
        0.8,
        -0.03,
        Provenance::Counter,
    ))
    .unwrap();
    let th = compare::Thresholds {
        pct: 5.0,
        accuracy_pp: 1.0,
    };
    let rows = compare::compare(&a, &same, th);
    assert_eq!(rows.len(), 2);
    // Identical runs: every change is 0 with no spread, well below +5 %.
    assert!(
        rows.iter().all(|r| r.verdict == compare::Verdict::Ok),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| r.pairs == 4 && r.energy.change.mean.abs() < 1e-12)
    );
    let rows = compare::compare(&a, &worse, th);
    let fast = rows.iter().find(|r| r.variant == "fast").unwrap();
    assert_eq!(fast.verdict, compare::Verdict::Regression, "{fast:?}");
    assert!(
        fast.reasons.iter().any(|s| s.starts_with("energy +")),
        "{:?}",
        fast.reasons
    );
    assert!(
        fast.reasons
            .iter()
            .any(|s| s.starts_with("accuracy -3.0 pp")),
        "{:?}",
        fast.reasons
    );
    let base = rows.iter().find(|r| r.variant == "base").unwrap();
    assert_eq!(base.verdict, compare::Verdict::Ok, "{base:?}");
    let table = compare::table(&rows, th);
    assert!(table.contains("REGRESSION"), "{table}");
}

#[test]
fn cli_compare_exits_non_zero_on_regression_with_the_flag() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = common::fixture_run(da.path(), 0.5, 0.0, Provenance::Counter);
    let b = common::fixture_run(db.path(), 0.8, 0.0, Provenance::Counter);
    let bin = env!("CARGO_BIN_EXE_joulebench");
    let o = std::process::Command::new(bin)
        .args(["compare"])
        .arg(&a)
        .arg(&b)
        .arg("--fail-on-regression")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = std::process::Command::new(bin)
        .args(["compare"])
        .arg(&a)
        .arg(&a)
        .arg("--fail-on-regression")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let o = std::process::Command::new(bin)
        .args(["report"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(a.join("report.md").is_file() && a.join("plots/energy-per-variant.png").is_file());
}

/// Rewrites a fixture run's records through `f`.
fn edit_records(run: &Path, f: impl Fn(&mut joulebench::record::TrialRecord)) {
    let p = run.join("trials.jsonl");
    let (mut recs, _, _) = joulebench::runfolder::store::read_records(&p).unwrap();
    let mut out = String::new();
    for r in &mut recs {
        f(r);
        out.push_str(&serde_json::to_string(r).unwrap());
        out.push('\n');
    }
    std::fs::write(&p, out).unwrap();
}

#[test]
fn invalid_trials_are_left_out_and_disturbed_runs_cannot_be_judged() {
    use joulebench::meter::interference::Interference;
    use joulebench::meter::validity::{Finding, Rule, Validity, Verdict};
    use joulebench::util::units::Seconds;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = common::fixture_run(da.path(), 0.5, 0.0, Provenance::Counter);
    let b = common::fixture_run(db.path(), 0.8, 0.0, Provenance::Counter);
    let finding = |rule, verdict, detail: &str| Finding {
        rule,
        verdict,
        detail: detail.into(),
        window: Some("train/epoch-1".into()),
    };
    // Run A: seed 1's `fast` trial is invalid (energy <= 0).
    edit_records(&a, |r| {
        if r.key.variant == "fast" && r.key.seed == 1 {
            r.validity = Some(Validity::of(vec![finding(
                Rule::Power,
                Verdict::Invalid,
                "energy <= 0",
            )]));
        }
    });
    let run_a = Run::load(&a).unwrap();
    let s = summarize(&run_a.records);
    let fast = s.iter().find(|v| v.variant == "fast").unwrap();
    assert_eq!((fast.completed, fast.invalid, fast.trials), (3, 1, 4));
    assert_eq!(paired(&run_a.records, "base")[0].pairs, 3);
    let md = report::markdown(&run_a, 0.78, &[]);
    assert!(
        md.contains("## Validity") && md.contains("1 trial(s) invalid"),
        "{md}"
    );
    assert!(
        md.contains("| mlp/fast/s1/r0 | invalid | power | train/epoch-1 | energy <= 0 |"),
        "{md}"
    );
    let csv = csv_export::to_csv(&run_a.records);
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",validity,validity_rules"),
        "{csv}"
    );
    assert!(csv.lines().any(|l| l.contains(",invalid,power")), "{csv}");
    // Run B (a real +60 % regression of `fast`) with every trial disturbed:
    // other processes took 48 % of the CPUs. Not "regression": cannot judge.
    edit_records(&b, |r| {
        r.validity = Some(Validity::of(vec![finding(
            Rule::Interference,
            Verdict::Flagged,
            "other processes used 48%",
        )]));
        r.epochs[0].train.interference = Some(Interference {
            other_cpu: Seconds(14.4),
            other_share: 0.48,
            own_cpu: Seconds(15.0),
            cpus: 2,
            resolution: Seconds(0.04),
        });
    });
    let th = compare::Thresholds {
        pct: 5.0,
        accuracy_pp: 1.0,
    };
    let rows = compare::compare(&Run::load(&a).unwrap(), &Run::load(&b).unwrap(), th);
    let f = rows.iter().find(|r| r.variant == "fast").unwrap();
    assert_eq!(f.verdict, compare::Verdict::CannotJudge, "{f:?}");
    assert!(
        f.reasons[0]
            == "run B was disturbed (other processes used up to 48% of the CPUs during 3 trial(s))",
        "{:?}",
        f.reasons
    );
    let bin = env!("CARGO_BIN_EXE_joulebench");
    let o = std::process::Command::new(bin)
        .args(["compare"])
        .arg(&a)
        .arg(&b)
        .arg("--fail-on-regression")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
