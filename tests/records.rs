//! Records round-trip; run folders survive crashes; resume checks the suite.

mod common;

use joulebench::meter::interference::Interference;
use joulebench::meter::validity::{Finding, Rule, Validity, Verdict};
use joulebench::meter::window::{Band, DomainEnergy};
use joulebench::meter::{EnergyReading, MeterInfo, Provenance};
use joulebench::record::{EpochRecord, TrialRecord, TrialStatus};
use joulebench::runfolder::manifest::Manifest;
use joulebench::runfolder::store::{RunDir, StoreError, read_records};
use joulebench::suite::Suite;
use joulebench::util::units::{Joules, Seconds, Watts};
use std::path::Path;

fn reading(name: &str, j: f64, s: f64) -> EnergyReading {
    EnergyReading {
        window: name.into(),
        started_unix: None,
        seconds: Seconds(s),
        joules: Joules(j),
        avg_watts: Watts(j / s),
        domains: vec![DomainEnergy {
            domain: "cpu-process".into(),
            meter: "estimate".into(),
            provenance: Provenance::Estimated,
            joules: Joules(j),
            avg_watts: Watts(j / s),
            peak_watts: Some(Watts(j / s * 1.5)),
            idle_joules: Some(Joules(j * 0.25)),
            net_joules: Some(Joules(j * 0.75)),
            band: Some(Band {
                low: Joules(j * 0.6),
                high: Joules(j * 1.7),
            }),
            net_band: Some(Band {
                low: Joules(j * 0.45),
                high: Joules(j * 1.3),
            }),
            cross_check_joules: Some(Joules(j * 1.01)),
            charged_seconds: Some(Seconds(s * 0.9)),
        }],
        idle_joules: Some(Joules(j * 0.25)),
        net_joules: Some(Joules(j * 0.75)),
        band: Some(Band {
            low: Joules(j * 0.6),
            high: Joules(j * 1.7),
        }),
        net_band: Some(Band {
            low: Joules(j * 0.45),
            high: Joules(j * 1.3),
        }),
        flags: vec!["a caveat".into()],
        timeline: vec![joulebench::meter::PowerSample {
            t: 0.5,
            domain: "cpu-process".into(),
            watts: Watts(3.0),
        }],
        gpu_states: vec![joulebench::gpu::api::GpuState {
            domain: "gpu:0".into(),
            compute_pids: Some(vec![7, 4242]),
            throttle_reasons: Some(vec!["sw-thermal-slowdown".into()]),
            ..Default::default()
        }],
        interference: Some(Interference {
            other_cpu: Seconds(s * 0.5),
            other_share: 0.25,
            own_cpu: Seconds(s),
            cpus: 2,
            resolution: Seconds(0.04),
        }),
        validity: Some(Validity::of(vec![Finding {
            rule: Rule::Interference,
            verdict: Verdict::Flagged,
            detail: "other processes used 25% of the machine's CPU time".into(),
            window: None,
        }])),
    }
}

fn suite() -> Suite {
    Suite::parse(
        Path::new("s.toml"),
        "name = \"rt\"\n[defaults]\nseeds = [1, 2]\n[[workload]]\nname = \"mlp\"\n",
    )
    .unwrap()
}

fn record(s: &Suite, i: usize) -> TrialRecord {
    let spec = &s.plan().unwrap().trials[i];
    TrialRecord {
        schema_version: joulebench::record::SCHEMA_VERSION,
        suite: s.name.clone(),
        trial_index: i,
        trial_id: spec.id(),
        key: spec.key.clone(),
        config: spec.config.clone(),
        device: "cpu".into(),
        meter: "estimate".into(),
        status: if i == 0 {
            TrialStatus::Completed
        } else {
            TrialStatus::Diverged { epoch: 1 }
        },
        started_at: "2026-01-01T00:00:00.000Z".into(),
        finished_at: "2026-01-01T00:00:01.000Z".into(),
        parameters: 535_818,
        macs_per_sample: 535_040,
        flops_per_train_sample: 6 * 535_040,
        flops_per_inference_unit: 2 * 535_040,
        data: None,
        epochs: vec![EpochRecord {
            epoch: 1,
            steps: 10,
            samples: 1280,
            train_loss: if i == 0 { Some(0.5) } else { None },
            train: reading("train/epoch-1", 12.5, 1.25),
            train_samples_per_second: 1024.0,
            validation: reading("validation/epoch-1", 1.0, 0.1),
            val_loss: Some(0.6),
            val_accuracy: Some(0.8),
            phases: None,
            batch: None,
        }],
        training: Some(reading("training", 12.5, 1.25)),
        train_samples_per_second: Some(1024.0),
        test: None,
        inference: None,
        idle: Some(reading("idle", 2.0, 2.0)),
        impact: None,
        evaluations: vec![],
        precision: None,
        stop: None,
        quantization: None,
        sparse: None,
        pruning: None,
        structured: None,
        distillation: None,
        weights_file: None,
        gpu_self_check: vec![],
        validity: Some(Validity::combine([(
            "train/epoch-1",
            &Validity::of(vec![Finding {
                rule: Rule::Throttle,
                verdict: Verdict::Flagged,
                detail: "gpu:0: the GPU slowed its clocks during the window: hw-slowdown".into(),
                window: None,
            }]),
        )])),
        warmup: None,
        gpu_settings: None,
        placement: None,
    }
}

#[test]
fn record_round_trips_through_json() {
    let s = suite();
    for i in 0..2 {
        let r = record(&s, i);
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        let back = TrialRecord::from_json_line(&line).unwrap();
        assert_eq!(back, r);
    }
    let v: serde_json::Value = serde_json::to_value(record(&s, 1)).unwrap();
    assert_eq!(v["status"]["state"], "diverged");
    assert_eq!(
        v["epochs"][0]["train"]["domains"][0]["provenance"],
        "estimated"
    );
    // The validity fields as docs/records.md names them.
    assert_eq!(v["validity"]["verdict"], "flagged");
    assert_eq!(v["validity"]["findings"][0]["rule"], "throttle");
    assert_eq!(v["validity"]["findings"][0]["window"], "train/epoch-1");
    let train = &v["epochs"][0]["train"];
    assert_eq!(train["validity"]["findings"][0]["rule"], "interference");
    assert_eq!(train["interference"]["other_share"], 0.25);
    assert_eq!(train["gpu_states"][0]["compute_pids"][1], 4242);
    assert!(train["domains"][0]["charged_seconds"].is_number());
    // Records written before these fields load with them absent.
    let mut old = v.clone();
    for w in ["train", "validation"] {
        let o = old["epochs"][0][w].as_object_mut().unwrap();
        o.remove("validity");
        o.remove("interference");
    }
    old.as_object_mut().unwrap().remove("validity");
    let back = TrialRecord::from_json_line(&old.to_string()).unwrap();
    assert!(back.validity.is_none() && back.epochs[0].train.validity.is_none());
    let mut v2 = v.clone();
    v2["schema_version"] = 99.into();
    let e = TrialRecord::from_json_line(&v2.to_string()).unwrap_err();
    assert!(e.contains("schema_version 99 is not supported"), "{e}");
}

fn manifest(s: &Suite) -> Manifest {
    Manifest::new(
        s,
        "cpu",
        MeterInfo {
            name: "estimate".into(),
            domains: vec![],
            update_period: None,
            cpu: None,
        },
        Path::new("/data"),
    )
}

#[test]
fn run_folder_appends_and_resume_discards_a_half_written_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = suite();
    let mut run = RunDir::create(dir.path(), &s, &manifest(&s)).unwrap();
    assert!(run.path.starts_with(dir.path().join("rt")));
    run.append(&record(&s, 0)).unwrap();
    let path = run.trials_path();
    drop(run);
    let intact = std::fs::read(&path).unwrap();
    // A crash mid-append leaves a line without its newline.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"schema_version\":1,\"suite\":\"rt\",\"tri").unwrap();
    drop(f);
    let run_path = path.parent().unwrap().to_path_buf();
    let r = RunDir::resume(&run_path, &s).unwrap();
    assert_eq!(r.records.len(), 1);
    assert_eq!(r.discarded_bytes, 37);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        intact,
        "partial line must be cut off"
    );
    let mut run = r.run;
    run.append(&record(&s, 1)).unwrap();
    let (recs, _, discarded) = read_records(&path).unwrap();
    assert_eq!(discarded, 0);
    assert_eq!(
        recs.iter().map(|r| r.trial_index).collect::<Vec<_>>(),
        vec![0, 1]
    );
    // Manifest and suite copy are there.
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_path.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["suite"], "rt");
    assert!(m["host"]["logical_cores"].as_u64().unwrap() >= 1);
    assert_eq!(
        std::fs::read_to_string(run_path.join("suite.toml")).unwrap(),
        s.source
    );
}

#[test]
fn corrupt_middle_line_is_an_error_not_silently_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = suite();
    let mut run = RunDir::create(dir.path(), &s, &manifest(&s)).unwrap();
    let path = run.trials_path();
    run.append(&record(&s, 0)).unwrap();
    drop(run);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.insert_str(0, "{not json}\n");
    std::fs::write(&path, &text).unwrap();
    let e = RunDir::resume(path.parent().unwrap(), &s).err().unwrap();
    assert!(matches!(e, StoreError::Corrupt { line: 1, .. }), "{e}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "file must be left untouched"
    );
}

#[test]
fn resume_with_another_suite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = suite();
    let run = RunDir::create(dir.path(), &s, &manifest(&s)).unwrap();
    let other = Suite::parse(
        Path::new("other.toml"),
        "name = \"rt\"\n[defaults]\nseeds = [1, 3]\n[[workload]]\nname = \"mlp\"\n",
    )
    .unwrap();
    let e = RunDir::resume(&run.path, &other).err().unwrap().to_string();
    assert!(
        e.contains("differs from the one this run started with"),
        "{e}"
    );
    // Same suite text under another path and with other comments is accepted.
    let same = Suite::parse(
        Path::new("elsewhere.toml"),
        "# comment\nname = \"rt\"\n[defaults]\nseeds = [1, 2]\n[[workload]]\nname = \"mlp\"\n",
    )
    .unwrap();
    assert!(RunDir::resume(&run.path, &same).is_ok());
    let e = RunDir::resume(dir.path(), &s).err().unwrap().to_string();
    assert!(
        e.contains("is not a run folder: suite.toml is missing"),
        "{e}"
    );
}

#[test]
fn unwritable_results_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let s = suite();
    let e = RunDir::create(&blocker, &s, &manifest(&s))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("cannot create the results folder") && e.contains("file/rt"),
        "{e}"
    );
}

/// Every scalar of `old` is in `new` at the same place and writes the same
/// JSON text (so a number keeps every bit); `new` may only add fields.
fn same_values(path: &str, old: &serde_json::Value, new: &serde_json::Value) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in o {
                let Some(nv) = n.get(k) else {
                    panic!("{path}.{k} is lost on re-writing");
                };
                same_values(&format!("{path}.{k}"), v, nv);
            }
        }
        (Value::Array(o), Value::Array(n)) => {
            assert_eq!(o.len(), n.len(), "{path}: length");
            for (i, (a, b)) in o.iter().zip(n).enumerate() {
                same_values(&format!("{path}[{i}]"), a, b);
            }
        }
        _ => assert_eq!(old.to_string(), new.to_string(), "{path}"),
    }
}

/// `tests/golden/trials-schema1.jsonl`: four trials written by joulebench at
/// commit dc3fb4a (suite `trials-schema1.toml`, fake meter: phases, early
/// stop, pruning + CSR, structured + int8, distillation) still load, keep
/// every value when written again, and keep their trial ids.
#[test]
fn records_written_by_older_versions_load_and_rewrite_value_for_value() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/trials-schema1.jsonl"),
    )
    .unwrap();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let r = TrialRecord::from_json_line(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        let again = serde_json::to_string(&r).unwrap();
        let (old, new): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(line).unwrap(),
            serde_json::from_str(&again).unwrap(),
        );
        same_values(&format!("line {}", i + 1), &old, &new);
        assert_eq!(
            joulebench::config::plan::trial_id(&r.key, &r.config),
            r.trial_id,
            "line {}: the id this version computes for the record's key and config",
            i + 1
        );
        n += 1;
    }
    assert_eq!(n, 4);
}
