//! Batch schedules: a ramp follows its geometric steps with the learning
//! rate rescaled each epoch; the adaptive rule measures the gradient noise
//! scale, grows only as it allows, and its split steps make the same update
//! as one batch; bad schedule tables are refused with their field.

mod common;

use candle_core::Device;
use joulebench::config::TrialSpec;
use joulebench::data::fashion_mnist;
use joulebench::suite::Suite;
use joulebench::train::TrainOutcome;
use std::path::Path;

fn spec(extra: &str) -> TrialSpec {
    let text = format!(
        "name = \"t\"\n[defaults]\nmax_train_samples = 600\nmax_eval_samples = 200\nlearning_rate = 0.002\n{extra}\n[[workload]]\nname = \"w\"\nmodel = \"mlp\"\nhidden = [32]\n"
    );
    let s = Suite::parse(Path::new("t.toml"), &text).unwrap();
    s.plan().unwrap().trials.remove(0)
}

fn run(spec: &TrialSpec, dir: &Path) -> TrainOutcome {
    let splits = fashion_mnist::load(dir).unwrap();
    let dev = Device::Cpu;
    let take = |s: joulebench::data::Split, n| s.take(n).to_device(&dev).unwrap();
    let train = take(splits.train, spec.config.max_train_samples);
    let val = take(splits.validation, Some(300));
    let test = take(splits.test, spec.config.max_eval_samples);
    common::train_on(spec, 10, &train, &val, &test).0
}

#[test]
fn ramp_steps_the_batch_and_rescales_the_learning_rate() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    let s = spec(
        "epochs = 4\nlr_scaling = \"linear\"\nreference_batch_size = 16\nbatch_schedule = { rule = \"ramp\", start = 16, end = 64, over_epochs = 2 }",
    );
    assert_eq!(s.config.batch_size, 16);
    let out = run(&s, &data);
    let n = out.epochs[0].samples;
    let sizes: Vec<u32> = out.epochs.iter().map(|e| e.batch.unwrap().size).collect();
    assert_eq!(sizes, [16, 32, 64, 64]);
    for e in &out.epochs {
        let b = e.batch.unwrap();
        assert!((b.learning_rate - 0.002 * b.size as f64 / 16.0).abs() < 1e-12);
        assert_eq!(e.steps, n.div_ceil(b.size as u64), "epoch {}", e.epoch);
        assert_eq!(b.noise_scale, None);
    }
    // Fixed-batch trials carry no per-epoch batch record.
    let fixed = run(&spec("epochs = 1\nbatch_size = 16"), &data);
    assert!(fixed.epochs[0].batch.is_none());
}

#[test]
fn adaptive_measures_noise_grows_within_caps_and_splits_steps_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fixture_dataset(dir.path());
    let s = spec(
        "epochs = 4\nlr_scaling = \"sqrt\"\nreference_batch_size = 8\nbatch_schedule = { rule = \"adaptive\", start = 8, end = 128 }",
    );
    let out = run(&s, &data);
    let mut prev: Option<(u32, Option<f64>)> = None;
    for e in &out.epochs {
        let b = e.batch.unwrap();
        assert!(b.noise_steps > 0, "epoch {} measured no step", e.epoch);
        assert_eq!(b.noise_steps, e.steps.min(e.samples / b.size as u64));
        if let Some(ns) = b.noise_scale {
            assert!(ns.is_finite() && ns > 0.0, "noise scale {ns}");
        }
        if let Some((size, noise)) = prev {
            assert_eq!(
                b.size,
                joulebench::train::batch_schedule::adaptive_next(size, 128, noise)
            );
            assert!(b.size >= size && b.size <= (size * 4).min(128));
        }
        assert!((b.learning_rate - 0.002 * (b.size as f64 / 8.0).sqrt()).abs() < 1e-12);
        prev = Some((b.size, b.noise_scale.or(Some(f64::INFINITY))));
    }
    assert!(
        out.epochs.last().unwrap().batch.unwrap().size > 8,
        "the batch never grew: {:?}",
        out.epochs.iter().map(|e| e.batch).collect::<Vec<_>>()
    );
    // Same seed, same schedule: the same run.
    let again = run(&s, &data);
    let sizes = |o: &TrainOutcome| {
        o.epochs
            .iter()
            .map(|e| e.batch.unwrap().size)
            .collect::<Vec<_>>()
    };
    assert_eq!(sizes(&out), sizes(&again));
    // One adaptive epoch at 16 (two micro-batches of 8 per step) makes the
    // same updates as a fixed batch of 16: the loss is a mean.
    let one = run(
        &spec("epochs = 1\nbatch_schedule = { rule = \"adaptive\", start = 16, end = 16 }"),
        &data,
    );
    let fixed = run(&spec("epochs = 1\nbatch_size = 16"), &data);
    let (a, b) = (
        one.epochs[0].val_loss.unwrap(),
        fixed.epochs[0].val_loss.unwrap(),
    );
    assert!((a - b).abs() < 1e-4 * b.abs(), "{a} vs {b}");
    assert_eq!(one.epochs[0].steps, fixed.epochs[0].steps);
}

#[test]
fn bad_schedules_are_refused_with_their_field() {
    let bad = [
        (
            "batch_size = 32\nbatch_schedule = { rule = \"ramp\", start = 8, end = 64, over_epochs = 2 }",
            &["defaults.batch_size", "not both"][..],
        ),
        (
            "batch_schedule = { rule = \"adaptive\", start = 1, end = 64 }",
            &["defaults.batch_schedule.start", "1", ">= 2"][..],
        ),
        (
            "batch_schedule = { rule = \"ramp\", start = 8, end = 64 }",
            &["batch_schedule.over_epochs", "a ramp needs over_epochs"][..],
        ),
        (
            "batch_schedule = { rule = \"adaptive\", start = 8, end = 64, over_epochs = 2 }",
            &["batch_schedule.over_epochs", "belongs to rule = \"ramp\""][..],
        ),
        (
            "batch_schedule = { rule = \"ramp\", start = 64, end = 8, over_epochs = 2 }",
            &["batch_schedule.end", "8", ">= start (64)"][..],
        ),
        (
            "batch_schedule = { rule = \"exponential\", start = 8, end = 64 }",
            &["batch_schedule", "exponential"][..],
        ),
        (
            "batch_schedule = { rule = \"ramp\", start = 8, end = 64, over_epochs = 2, every = 3 }",
            &["batch_schedule", "every"][..],
        ),
        (
            "learning_rate = 1.0\nlr_scaling = \"linear\"\nbatch_schedule = { rule = \"ramp\", start = 128, end = 4096, over_epochs = 2 }",
            &["batch_schedule.end", "4096", "(0, 10]"][..],
        ),
    ];
    for (extra, wants) in bad {
        let text = format!(
            "name = \"t\"\n[defaults]\n{extra}\n[[workload]]\nname = \"w\"\nmodel = \"mlp\"\n"
        );
        let e = Suite::parse(Path::new("exp/t.toml"), &text)
            .and_then(|s| s.plan().map(|_| ()))
            .expect_err(extra)
            .to_string();
        assert!(e.contains("exp/t.toml"), "{e}");
        for w in wants {
            assert!(e.contains(w), "`{w}` missing from: {e}");
        }
    }
}
