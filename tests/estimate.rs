//! The CPU estimate: TDP lookup (exact, fuzzy, unknown), the load curve,
//! threads, the banded power models, the meter's integration, the band's way
//! into readings, the report and the CSV, and calibration against a fake
//! powercap tree whose counters follow a known load.

mod common;

use joulebench::meter::calibrate::{Step, ladder};
use joulebench::meter::cpu_power::{
    CCF_LINES, CpuInfo, CpuModel, CpuOverrides, CpuProfile, MatchKind, ThreadSource, architecture,
    curve, lookup, normalise, parse_cpuinfo,
};
use joulebench::meter::estimate::EstimateMeter;
use joulebench::meter::rapl::{RaplMeter, SysfsReader};
use joulebench::meter::window::{Band, apply_idle, reading};
use joulebench::meter::{EnergyMeter, EnergyReading, Provenance};
use joulebench::util::units::{Joules, Watts};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn lookup_matches_exact_names_through_vendor_marks() {
    let m = lookup("AMD EPYC 7763 64-Core Processor").unwrap();
    assert_eq!(
        (m.row.as_str(), m.tdp, m.kind),
        ("AMD EPYC 7763", Watts(280.0), MatchKind::Exact)
    );
    let m = lookup("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz").unwrap();
    assert_eq!(
        (m.row.as_str(), m.tdp, m.kind),
        ("Intel Xeon Platinum 8380", Watts(270.0), MatchKind::Exact)
    );
    assert_eq!(
        normalise("Intel(R) Core(TM) i7-12700K CPU @ 3.60GHz"),
        ["intel", "core", "i7-12700k"]
    );
}

#[test]
fn lookup_falls_back_to_the_longest_row_contained_in_the_name() {
    // Extra words around a known model: every word of the row is in the name.
    let m = lookup("13th Gen Intel(R) Core(TM) i7-12700K").unwrap();
    assert_eq!(m.kind, MatchKind::Fuzzy);
    assert_eq!(m.row, "Intel Core i7-12700K");
    // The longer row wins over a shorter one that also matches ("8380H" vs "8380").
    let m = lookup("Intel Xeon Platinum 8380H Processor (Cooper Lake) rev 2").unwrap();
    assert_eq!(
        (m.row.as_str(), m.kind),
        ("Intel Xeon Platinum 8380H", MatchKind::Fuzzy)
    );
}

#[test]
fn a_generic_or_unknown_name_matches_nothing() {
    // What this project's VMs show: no model number, so no guess.
    assert_eq!(lookup("Intel(R) Xeon(R) Processor"), None);
    assert_eq!(lookup("QEMU Virtual CPU version 2.5+"), None);
    assert_eq!(lookup(""), None);
}

#[test]
fn the_load_curve_passes_through_the_published_points_and_interpolates() {
    for (u, f) in [(0.0, 0.12), (0.1, 0.32), (0.5, 0.75), (1.0, 1.02)] {
        assert!((curve(u) - f).abs() < 1e-12, "{u}: {}", curve(u));
    }
    assert!((curve(0.05) - 0.22).abs() < 1e-12);
    assert!((curve(0.3) - 0.535).abs() < 1e-12);
    assert_eq!(curve(-1.0), 0.12);
    assert_eq!(curve(7.0), 1.02);
}

#[test]
fn architectures_are_recognised_from_names() {
    let a = |n: &str| architecture(n).map(|l| l.architecture);
    assert_eq!(a("AMD EPYC 7763 64-Core Processor"), Some("EPYC 3rd Gen"));
    assert_eq!(a("AMD EPYC 7R32"), Some("EPYC 2nd Gen"));
    assert_eq!(a("AMD EPYC 7551 32-Core Processor"), Some("EPYC 1st Gen"));
    assert_eq!(
        a("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz"),
        Some("Cascade Lake")
    );
    assert_eq!(
        a("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz"),
        Some("Skylake")
    );
    assert_eq!(
        a("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz"),
        Some("Broadwell")
    );
    assert_eq!(a("Intel(R) Xeon(R) Processor"), None);
}

fn info(model: &str, virtualised: bool, siblings: Option<u32>) -> CpuInfo {
    CpuInfo {
        model_name: Some(model.into()),
        virtualised,
        threads_per_package: siblings,
    }
}

#[test]
fn threads_come_from_settings_topology_or_the_name_and_never_from_a_vm() {
    let none = CpuOverrides::default();
    let p = CpuProfile::new(
        &info("AMD Ryzen 7 5800X 8-Core Processor", false, Some(16)),
        &none,
        16,
    );
    assert_eq!(
        (p.threads, p.threads_source),
        (Some(16), Some(ThreadSource::Topology))
    );
    // In a VM the visible siblings are the VM's: the name's core count is used instead.
    let p = CpuProfile::new(
        &info("AMD EPYC 7763 64-Core Processor", true, Some(2)),
        &none,
        2,
    );
    assert_eq!(
        (p.threads, p.threads_source),
        (Some(128), Some(ThreadSource::ModelName))
    );
    let p = CpuProfile::new(
        &info(
            "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
            true,
            Some(2),
        ),
        &none,
        2,
    );
    assert_eq!(
        p.threads, None,
        "an Intel name has no core count and the VM hides the host"
    );
    let set = CpuOverrides {
        threads: Some(64),
        ..Default::default()
    };
    let p = CpuProfile::new(
        &info(
            "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
            true,
            Some(2),
        ),
        &set,
        2,
    );
    assert_eq!(
        (p.threads, p.threads_source),
        (Some(64), Some(ThreadSource::Configured))
    );
    let parsed = parse_cpuinfo(
        "processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\nsiblings\t: 2\nflags\t\t: fpu sse hypervisor avx2\n",
    );
    assert_eq!(
        parsed,
        info("AMD EPYC 7763 64-Core Processor", true, Some(2))
    );
}

#[test]
fn models_give_an_ordered_band_and_the_curve_where_tdp_and_threads_are_known() {
    let none = CpuOverrides::default();
    // A 2-vCPU slice of a 280 W, 128-thread part: 2.19 W per thread at TDP.
    let p = CpuProfile::new(
        &info("AMD EPYC 7763 64-Core Processor", true, Some(2)),
        &none,
        2,
    );
    let m = CpuModel::new(&p, None);
    assert!(matches!(m, CpuModel::Curve { .. }), "{m:?}");
    let full = m.per_vcpu(1.0);
    assert!(
        (full.central - 280.0 / 128.0 * 1.02).abs() < 1e-9,
        "{full:?}"
    );
    let idle = m.per_vcpu(0.0);
    assert!(
        (idle.central - 280.0 / 128.0 * 0.12).abs() < 1e-9,
        "{idle:?}"
    );
    // The band includes Milan's linear line (0.45 W idle, 2.02 W busy).
    assert!(
        (idle.high - 0.45).abs() < 1e-9 && (full.low - 2.02).abs() < 1e-9,
        "{idle:?} {full:?}"
    );
    // Unknown CPU: the central line is the table's mean, the band its extremes.
    let p = CpuProfile::new(&info("Intel(R) Xeon(R) Processor", true, Some(2)), &none, 2);
    let m = CpuModel::new(&p, None);
    let b = m.per_vcpu(1.0);
    let maxes: Vec<f64> = CCF_LINES.iter().map(|l| l.max_w).collect();
    assert_eq!(b.low, maxes.iter().copied().fold(f64::INFINITY, f64::min));
    assert_eq!(b.high, maxes.iter().copied().fold(0.0, f64::max));
    for u in [0.0, 0.05, 0.3, 0.7, 1.0] {
        let b = m.per_vcpu(u);
        assert!(b.low <= b.central && b.central <= b.high, "{u}: {b:?}");
    }
    // The flat model is the user's explicit choice: busy cores x W, no band.
    let f = CpuModel::new(&p, Some(Watts(10.0))).per_vcpu(0.5);
    assert_eq!((f.low, f.central, f.high), (5.0, 5.0, 5.0));
}

#[test]
fn the_meter_charges_idle_time_at_the_models_idle_power_with_its_band() {
    let p = CpuProfile::new(
        &info("Intel(R) Xeon(R) Processor", true, Some(2)),
        &CpuOverrides::default(),
        2,
    );
    let model = CpuModel::new(&p, None);
    let expect = model.per_vcpu(0.0).scale(2.0);
    let model_full = model.per_vcpu(1.0);
    let mut m = EstimateMeter::new(p, model, None, true, false);
    let a = m.snapshot().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let b = m.snapshot().unwrap();
    let r = reading(&m.info(), "idle", &a, &b);
    let w = r.joules.0 / r.seconds.0;
    // This thread sleeps: at least the idle line over the seconds the idle
    // power is charged for. Those are the wall seconds, less the time other
    // processes displaced this one's other threads (other tests may run
    // meanwhile; estimate.rs: "On a shared machine"), so equal on a quiet
    // machine. At most the model's full-load power.
    let charged = r.domains[0].charged_seconds.unwrap().0;
    assert!(
        charged > 0.0 && charged <= r.seconds.0 * (1.0 + 1e-9),
        "{charged} of {} s",
        r.seconds.0
    );
    let full = model_full.scale(2.0);
    assert!(
        r.joules.0 / charged >= expect.central * 0.99 && w <= full.central * 1.01,
        "{w} vs idle {expect:?}, full {full:?}"
    );
    let band = r.band.unwrap();
    assert!(
        (band.low.0 / r.seconds.0) < w && (band.high.0 / r.seconds.0) > w,
        "{band:?}"
    );
    assert_eq!(r.domains[0].provenance, Provenance::Estimated);
    assert!(
        m.info().cpu.is_some(),
        "the profile travels with the meter's info"
    );
}

fn banded(name: &str, j: f64, lo: f64, hi: f64, seconds: f64) -> EnergyReading {
    let mut r = common::window(name, j, seconds, None, Provenance::Estimated);
    let b = Some(Band {
        low: Joules(lo),
        high: Joules(hi),
    });
    r.domains[0].band = b;
    r.band = b;
    r
}

#[test]
fn bands_add_over_windows_and_net_takes_each_models_own_idle() {
    let s = EnergyReading::sum(
        "two",
        [
            &banded("a", 10.0, 5.0, 20.0, 1.0),
            &banded("b", 30.0, 15.0, 60.0, 3.0),
        ],
    );
    assert_eq!(
        s.band,
        Some(Band {
            low: Joules(20.0),
            high: Joules(80.0)
        })
    );
    // Idle: 2 W central, 1 W low model, 4 W high model; a 4-s window.
    let idle = banded("idle", 2.0, 1.0, 4.0, 1.0);
    let mut w = banded("train", 40.0, 20.0, 80.0, 4.0);
    apply_idle(&mut w, &idle);
    assert_eq!(w.net_joules, Some(Joules(32.0)));
    assert_eq!(
        w.net_band,
        Some(Band {
            low: Joules(16.0),
            high: Joules(64.0)
        })
    );
    assert_eq!(w.domains[0].net_band, w.net_band);
    // A figure without a band has none, and sums treat it as exact.
    let plain = common::window("p", 7.0, 1.0, None, Provenance::Counter);
    assert_eq!(plain.band, None);
    let mixed = EnergyReading::sum("m", [&plain, &banded("a", 10.0, 5.0, 20.0, 1.0)]);
    assert_eq!(
        mixed.band,
        Some(Band {
            low: Joules(12.0),
            high: Joules(27.0)
        })
    );
}

/// Records with a band (every window scaled from its central figure), so the
/// report and CSV must show it.
fn banded_run(dir: &Path, low: f64, high: f64) -> std::path::PathBuf {
    let run = common::fixture_run(dir, 0.8, 0.0, Provenance::Estimated);
    let file = run.join("trials.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        band_all(&mut v, low, high);
        out.push_str(&serde_json::to_string(&v).unwrap());
        out.push('\n');
    }
    std::fs::write(&file, out).unwrap();
    run
}

/// Adds `band` = (low × joules, high × joules) to every reading and domain in a record.
fn band_all(v: &mut serde_json::Value, low: f64, high: f64) {
    match v {
        serde_json::Value::Object(m) => {
            if let (Some(j), true) = (
                m.get("joules").and_then(|j| j.as_f64()),
                m.contains_key("window") || m.contains_key("domain"),
            ) {
                m.insert(
                    "band".into(),
                    serde_json::json!({"low": j * low, "high": j * high}),
                );
            }
            for x in m.values_mut() {
                band_all(x, low, high);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| band_all(x, low, high)),
        _ => {}
    }
}

#[test]
fn the_band_reaches_the_report_and_the_csv() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = banded_run(dir.path(), 0.5, 2.0);
    let run = joulebench::analysis::Run::load(&run_dir).unwrap();
    let md = joulebench::analysis::report::markdown(&run, 0.8, &[]);
    assert!(md.contains("## Estimated energy with its band"), "{md}");
    // Every gross figure is shown as "≈ X (0.5 X–2 X)".
    let row = md
        .lines()
        .find(|l| l.starts_with("| mlp | base | ≈ "))
        .expect("a band row for mlp/base");
    let nums: Vec<f64> = row
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|x| x.parse().ok())
        .collect();
    let (c, lo, hi) = (nums[0], nums[1], nums[2]);
    assert!(
        (lo / c - 0.5).abs() < 0.01 && (hi / c - 2.0).abs() < 0.01,
        "{row}"
    );
    assert!(md.contains("saved % (low model)"), "{md}");
    let csv = joulebench::analysis::csv_export::to_csv(&run.records);
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let first: Vec<&str> = rows.next().unwrap().split(',').collect();
    let gross: f64 = first[col("gross_j")].parse().unwrap();
    let low: f64 = first[col("gross_j_low")].parse().unwrap();
    let high: f64 = first[col("gross_j_high")].parse().unwrap();
    assert!((low - gross * 0.5).abs() < 1e-6 && (high - gross * 2.0).abs() < 1e-6);
    assert!(!first[col("train_j_low")].is_empty());
}

#[test]
fn a_band_that_flips_a_saving_makes_it_inconclusive() {
    use joulebench::analysis::aggregate::Paired;
    use joulebench::analysis::stats::{Estimate, Ratio};
    // Log ratios (variant / baseline) of three pairs: a saving of ~10 %.
    let r = |ratios: &[f64]| Ratio {
        log: Estimate::of(&ratios.iter().map(|x: &f64| x.ln()).collect::<Vec<_>>()),
    };
    let mut p = Paired {
        workload: "w".into(),
        variant: "v".into(),
        baseline: "b".into(),
        pairs: 3,
        energy: r(&[0.90, 0.89, 0.88]),
        net_train_energy: r(&[]),
        train_time: r(&[]),
        accuracy_delta_pp: Estimate::of(&[]),
        energy_low_model: r(&[0.91, 0.90, 0.89]),
        energy_high_model: r(&[0.88, 0.87, 0.86]),
        disturbed_pairs: 0,
    };
    assert_eq!(p.band_makes_inconclusive(), Some(false));
    p.energy_high_model = r(&[1.03, 0.98, 0.96]);
    assert_eq!(p.band_makes_inconclusive(), Some(true));
    p.energy_low_model = r(&[]);
    assert_eq!(
        p.band_makes_inconclusive(),
        None,
        "no band, no verdict about it"
    );
}

/// A powercap tree in memory whose package counter grows at 10 W + 20 W per
/// busy thread, and DRAM at 3 W, the busy count set by the load function.
struct LoadFollowingTree {
    start: Instant,
    busy: AtomicUsize,
    energy: std::sync::Mutex<(Instant, f64)>,
}

impl LoadFollowingTree {
    /// Package joules so far: each stretch at the power of its busy count.
    fn package_j(&self) -> f64 {
        let mut e = self.energy.lock().unwrap();
        let now = Instant::now();
        e.1 += (10.0 + 20.0 * self.busy.load(Ordering::SeqCst) as f64) * (now - e.0).as_secs_f64();
        e.0 = now;
        e.1
    }

    fn set_busy(&self, n: usize) {
        self.package_j();
        self.busy.store(n, Ordering::SeqCst);
    }
}

impl SysfsReader for LoadFollowingTree {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let zone = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("");
        Ok(match (zone, name) {
            ("intel-rapl:0", "name") => "package-0\n".into(),
            ("intel-rapl:0:0", "name") => "dram\n".into(),
            (_, "max_energy_range_uj") => "262143328850\n".into(),
            ("intel-rapl:0", "energy_uj") => {
                let mut e = self.energy.lock().unwrap();
                let now = Instant::now();
                e.1 += (10.0 + 20.0 * self.busy.load(Ordering::SeqCst) as f64)
                    * (now - e.0).as_secs_f64();
                e.0 = now;
                format!("{}\n", (e.1 * 1e6) as u64)
            }
            ("intel-rapl:0:0", "energy_uj") => format!(
                "{}\n",
                (3.0 * self.start.elapsed().as_secs_f64() * 1e6) as u64
            ),
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    path.display().to_string(),
                ));
            }
        })
    }
}

#[test]
fn calibration_measures_each_rung_against_the_model() {
    // discover() lists the tree's folders: make them exist; the reader supplies the files.
    let dir = tempfile::tempdir().unwrap();
    for z in ["intel-rapl:0", "intel-rapl:0:0"] {
        std::fs::create_dir_all(dir.path().join(z)).unwrap();
    }
    let tree = Arc::new(LoadFollowingTree {
        start: Instant::now(),
        busy: AtomicUsize::new(0),
        energy: std::sync::Mutex::new((Instant::now(), 0.0)),
    });
    let mut rapl = RaplMeter::open_manual(dir.path(), tree.clone()).unwrap();
    let model = CpuModel::Flat(Watts(15.0));
    let load = |n: usize, d: Duration| {
        tree.set_busy(n);
        std::thread::sleep(d);
        tree.set_busy(0);
    };
    let steps: Vec<Step> = ladder(&mut rapl, &model, 4, 0.2, &load).unwrap();
    assert_eq!(steps.iter().map(|s| s.busy).collect::<Vec<_>>(), [0, 1, 4]);
    for (s, want) in steps.iter().zip([10.0, 30.0, 90.0]) {
        assert!((s.measured_cpu_w - want).abs() / want < 0.05, "{s:?}");
        assert!((s.measured_dram_w - 3.0).abs() < 0.3, "{s:?}");
        // The flat model: busy threads x 15 W.
        assert!(
            (s.estimated_w.central - 15.0 * s.busy as f64).abs() < 1e-9,
            "{s:?}"
        );
    }
    assert!((steps[2].ratio() - 60.0 / 90.0).abs() < 0.05);
    let p = CpuProfile::new(&CpuInfo::default(), &CpuOverrides::default(), 4);
    let table = joulebench::console::meters::calibration_table(&p, &steps);
    assert!(
        table.contains("4 threads") && table.contains("est/RAPL"),
        "{table}"
    );
}
