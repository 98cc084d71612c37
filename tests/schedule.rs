//! Hourly carbon intensity end to end: a run in a region with a profile
//! records hourly CO2e beside the annual figure; `schedule` computes the
//! start-hour what-if for several regions and writes its files; bad regions,
//! years and modes are refused with the reason; old records without window
//! starts are refused by `schedule` with the reason.

mod common;

use joulebench::analysis::Run;
use std::path::PathBuf;
use std::process::{Command, Output};

const SUITE: &str = r#"
name = "carbon"
[defaults]
seeds = [1]
epochs = 1
max_eval_samples = 100
[impact]
region = "GB"
[[workload]]
name = "mlp"
hidden = [16]
[[variant]]
name = "b64"
batch_size = 64
"#;

use common::{SuiteEnv, text};

struct Env(SuiteEnv);

impl Env {
    fn new(suite: &str) -> Env {
        Env(SuiteEnv::new(suite))
    }
    fn bin(&self) -> Command {
        self.0.bin()
    }
    fn run(&self, extra: &[&str]) -> Output {
        self.0.run_cmd("0.2").args(extra).output().unwrap()
    }
    fn run_dir(&self) -> PathBuf {
        let d = self.0.path("out/carbon");
        std::fs::read_dir(&d)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    }
}

#[test]
fn a_run_in_a_profiled_region_records_hourly_co2e_and_schedules_across_regions() {
    let env = Env::new(SUITE);
    let o = env.run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = env.run_dir();
    let run = Run::load(&dir).unwrap();
    let r = &run.records[0];
    let imp = r.impact.as_ref().unwrap();
    assert_eq!(
        imp.settings.intensity,
        joulebench::impact::Intensity::Hourly
    );
    assert_eq!(
        imp.settings.region.code, "GBR",
        "the annual row stays beside"
    );
    let h = imp.hourly.as_ref().expect("hourly CO2e");
    assert_eq!((h.profile.as_str(), h.year), ("GB", 2023));
    assert!(h.net_co2e_g.is_some(), "net from the idle baseline too");
    // The effective intensity is one of GB 2023's hours (the run is short).
    assert!((49.98..=383.32).contains(&h.g_co2e_per_kwh), "{h:?}");
    // Every window has its wall-clock start, in order.
    let starts: Vec<f64> = r.windows().map(|w| w.started_unix.unwrap()).collect();
    assert!(starts.windows(2).all(|p| p[0] <= p[1]), "{starts:?}");
    // The report says so and gives the what-if for GB.
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("| hourly intensity | on: CO2e uses profile GB"),
        "{md}"
    );
    assert!(md.contains("## Carbon by start time (GB 2023)"), "{md}");

    let o = env
        .bin()
        .arg("schedule")
        .arg(&dir)
        .args([
            "--region",
            "GB",
            "--region",
            "deu",
            "--region",
            "US-CAL-CISO",
            "--within",
            "24h",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    for region in ["| GB | 2023", "| DE | 2023", "| US-CAL-CISO | 2023"] {
        assert!(t.contains(region), "{t}");
    }
    let sched = dir.join("schedule");
    let csv = std::fs::read_to_string(sched.join("schedule.csv")).unwrap();
    assert_eq!(csv.lines().count(), 8761);
    assert!(
        csv.starts_with(
            "start_hour_of_year,GB_2023_g_co2e,DE_2023_g_co2e,US-CAL-CISO_2023_g_co2e\n"
        )
    );
    // Germany's median start emits more than France's (yearly means 395 vs 49).
    let md = std::fs::read_to_string(sched.join("schedule.md")).unwrap();
    assert!(
        md.contains("Best start hour (UTC) by month") && md.contains("Electricity Maps"),
        "{md}"
    );
    for f in [
        "co2e-by-start-hour.svg",
        "co2e-by-start-hour.png",
        "month-hour-DE.png",
    ] {
        assert!(sched.join(f).is_file(), "{f}");
    }
    // All EIA grids of 2022.
    let o = env
        .bin()
        .arg("schedule")
        .arg(&dir)
        .args(["--region", "all", "--year", "2022"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches(" | 2022 | ").count(), 5, "{}", text(&o));
    // One trial.
    let o = env
        .bin()
        .arg("schedule")
        .arg(&dir)
        .args(["--trial", "mlp/b64/s1/r0"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // Refusals.
    for (args, want) in [
        (vec!["--region", "WORLD"], "has no bundled hourly profile"),
        (
            vec!["--region", "GB", "--year", "2022"],
            "hourly data for 2023 only",
        ),
        (vec!["--within", "9999h"], "0..=720"),
        (vec!["--trial", "x/y/s1/r0"], "no trial \"x/y/s1/r0\""),
    ] {
        let o = env
            .bin()
            .arg("schedule")
            .arg(&dir)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            !o.status.success() && text(&o).contains(want),
            "{args:?}: {}",
            text(&o)
        );
    }
}

#[test]
fn intensity_modes_are_chosen_and_checked() {
    // Annual on request: no hourly figure, the report has no section.
    let env = Env::new(SUITE);
    let o = env.run(&["--intensity", "annual"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = Run::load(&env.run_dir()).unwrap();
    let imp = run.records[0].impact.as_ref().unwrap();
    assert!(
        imp.hourly.is_none() && imp.settings.intensity == joulebench::impact::Intensity::Annual
    );
    // Hourly where no profile exists is refused at validation, with the regions that have one.
    let env = Env::new(&SUITE.replace(
        "region = \"GB\"",
        "region = \"WORLD\"\nintensity = \"hourly\"",
    ));
    let o = env.bin().args(["validate", "s.toml"]).output().unwrap();
    assert!(
        !o.status.success()
            && text(&o).contains("impact.intensity")
            && text(&o).contains("GB, DE, FR"),
        "{}",
        text(&o)
    );
    let env = Env::new(&SUITE.replace("region = \"GB\"", "region = \"GB\"\nintensity = \"daily\""));
    let o = env.bin().args(["validate", "s.toml"]).output().unwrap();
    assert!(text(&o).contains("hourly | annual"), "{}", text(&o));
    // Without a profile and without windows' starts, schedule says what to do.
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::fixture_run(dir.path(), 1.0, 0.0, joulebench::meter::Provenance::Counter);
    let o = env.bin().arg("schedule").arg(&fixture).output().unwrap();
    assert!(text(&o).contains("--region"), "{}", text(&o));
    let o = env
        .bin()
        .arg("schedule")
        .arg(&fixture)
        .args(["--region", "GB"])
        .output()
        .unwrap();
    assert!(text(&o).contains("no wall-clock start"), "{}", text(&o));
}

#[test]
fn regions_lists_profiles_with_licences_and_attributions() {
    let o = Command::new(env!("CARGO_BIN_EXE_joulebench"))
        .arg("regions")
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success());
    // The hourly profiles' table: the GB row's first columns are id and year.
    assert!(
        t.lines()
            .any(|l| l.split_whitespace().take(2).eq(["GB", "2023"])),
        "{t}"
    );
    for want in [
        "US-CAL-CISO",
        "ERCO",
        "Open Database License (ODbL) v1.0",
        "U.S. Energy Information Administration, Form EIA-930",
        "MIT License, Copyright (c) 2024 Hewlett Packard Enterprise",
    ] {
        assert!(t.contains(want), "{want}\n{t}");
    }
}
