//! Claims: verdict logic on fixture results, every claim suite validates,
//! and `reproduce --quick` runs end to end on fixture-sized data.

mod common;

use joulebench::analysis::Run;
use joulebench::analysis::claims::{self, Claim, Expect, Metric, Verdict};
use joulebench::meter::Provenance;
use joulebench::suite::Suite;

fn claim(expect: Expect, min: Option<f64>, max: Option<f64>) -> Claim {
    Claim {
        id: "t".into(),
        source: "test".into(),
        statement: "test".into(),
        metric: Metric::TotalJoules,
        baseline: "mlp/base".into(),
        treatment: "mlp/fast".into(),
        expect,
        ratio_min: min,
        ratio_max: max,
        published: "-".into(),
        published_ratio: None,
        requires: None,
        target_accuracy: None,
        notes: String::new(),
    }
}

#[test]
fn verdicts_from_paired_fixture_trials() {
    let dir = tempfile::tempdir().unwrap();
    // fast = 0.5 x base energy (training and validation): a clear saving.
    let run = Run::load(&common::fixture_run(
        dir.path(),
        0.5,
        0.0,
        Provenance::Counter,
    ))
    .unwrap();
    let lower = claims::verdict(&claim(Expect::Lower, None, None), &run.records);
    assert_eq!(lower.pairs, 4);
    // Per pair: (0.5 (300w + 15) + 6) / (300w + 15 + 6), w = 1.01..1.04.
    let want: Vec<f64> = (1..=4)
        .map(|s| {
            let w = 1.0 + 0.01 * s as f64;
            (0.5 * (300.0 * w + 15.0) + 6.0) / (300.0 * w + 21.0)
        })
        .collect();
    let e = joulebench::analysis::stats::Estimate::of(&want);
    assert!((lower.ratio.mean - e.mean).abs() < 1e-12 && (lower.ratio.ci95 - e.ci95).abs() < 1e-12);
    assert_eq!(lower.verdict, Verdict::Reproduced);
    assert_eq!(
        claims::verdict(&claim(Expect::Higher, None, None), &run.records).verdict,
        Verdict::NotReproduced
    );
    // An interval straddling the boundary: inconclusive.
    let mean = lower.ratio.mean;
    let straddle = claim(Expect::Within, Some(mean), Some(10.0));
    assert_eq!(
        claims::verdict(&straddle, &run.records).verdict,
        Verdict::Inconclusive
    );
    let differs = claim(Expect::Differs, Some(0.9), Some(1.1));
    assert_eq!(
        claims::verdict(&differs, &run.records).verdict,
        Verdict::Reproduced
    );
    // Estimated energy makes a measured-energy claim not applicable; a GPU claim on a CPU too.
    let est = Run::load(&common::fixture_run(
        tempfile::tempdir().unwrap().path(),
        0.5,
        0.0,
        Provenance::Estimated,
    ))
    .unwrap();
    let mut c = claim(Expect::Lower, None, None);
    c.requires = Some(claims::Requires::MeasuredEnergy);
    assert_eq!(
        claims::verdict(&c, &est.records).verdict,
        Verdict::NotApplicable
    );
    c.requires = Some(claims::Requires::Gpu);
    let v = claims::verdict(&c, &run.records);
    assert_eq!(v.verdict, Verdict::NotApplicable);
    assert!(v.reason.contains("needs a GPU"), "{}", v.reason);
}

#[test]
fn judge_handles_single_pairs_and_ranges() {
    use joulebench::analysis::stats::Estimate;
    let one = Estimate::of(&[0.5]);
    assert_eq!(
        claims::judge(&claim(Expect::Lower, None, None), &one).0,
        Verdict::Inconclusive
    );
    let tight = Estimate::of(&[0.26, 0.265, 0.27]);
    assert_eq!(
        claims::judge(&claim(Expect::Within, Some(0.24), Some(0.29)), &tight).0,
        Verdict::Reproduced
    );
    assert_eq!(
        claims::judge(&claim(Expect::Within, Some(0.3), Some(0.4)), &tight).0,
        Verdict::NotReproduced
    );
}

#[test]
fn every_claim_suite_validates_full_and_quick() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/claims");
    let mut ids = Vec::new();
    for quick in [false, true] {
        let suites = joulebench::reproduce::discover(&dir, &[], quick).unwrap();
        assert_eq!(suites.len(), 13);
        for s in &suites {
            assert!(!s.suite.plan().unwrap().trials.is_empty());
            ids.push(s.suite.claim.as_ref().unwrap().id.clone());
        }
    }
    let e = joulebench::reproduce::discover(&dir, &["nope".into()], true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("unknown claim `nope`; known: mixed-precision"),
        "{e}"
    );
    let e = Suite::parse(
        std::path::Path::new("c.toml"),
        "name = \"c\"\n[[workload]]\nname = \"mlp\"\n[claim]\nid = \"x\"\nsource = \"s\"\nstatement = \"s\"\nmetric = \"macs\"\nbaseline = \"mlp/none\"\ntreatment = \"mlp/baseline\"\nexpect = \"lower\"\npublished = \"p\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(
            "field `claim.baseline`: unknown workload/variant `mlp/none`; known: mlp/baseline"
        ),
        "{e}"
    );
}

#[test]
fn reproduce_quick_runs_every_claim_end_to_end_on_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let words = [
        "the", "energy", "of", "a", "model", "is", "measured", "in", "joules", "%",
    ];
    let mut rng = joulebench::util::rng::Rng::new(1);
    let text: Vec<&str> = (0..5000).map(|_| words[rng.below(words.len())]).collect();
    std::fs::write(corpus.join("text"), text.join(" ")).unwrap();
    let out = dir.path().join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_joulebench"))
        .arg("reproduce")
        .arg("--quick")
        .arg("--claims-dir")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/claims"))
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(&data)
        .arg("--corpus-dir")
        .arg(&corpus)
        .args(["--meter", "fake", "--idle-seconds", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&o.stderr)
    );
    let rep = std::fs::read_dir(out.join("reproduction"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let md = std::fs::read_to_string(rep.join("reproduction.md")).unwrap();
    for id in [
        "mixed-precision",
        "batch-size",
        "mobilenet-macs",
        "unstructured-pruning-inference",
        "int8-size",
        "early-stopping",
        "distillation",
        "tdp-overcount",
        "nvml-averaging",
        "generation-vs-classification",
        "power-capping",
        "local-attention",
        "sparse-execution",
    ] {
        assert!(md.contains(id), "{id} missing");
    }
    assert!(
        md.contains("**not applicable**"),
        "GPU-only claims are not applicable on a CPU"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rep.join("claims.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 13);
    // The power-capping claim changes GPU settings: not run on a CPU, said why.
    let cap = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["claim"]["id"] == "power-capping")
        .unwrap();
    assert_eq!(cap["verdict"], "not-applicable");
    assert!(
        cap["reason"]
            .as_str()
            .unwrap()
            .contains("--allow-gpu-settings")
    );
    // The MAC count does not depend on the data: the separable twin's ratio is reproduced.
    let macs = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["claim"]["id"] == "mobilenet-macs")
        .unwrap();
    assert_eq!(macs["verdict"], "reproduced");
    assert!(rep.join("plots/measured-vs-published.svg").is_file());
}
