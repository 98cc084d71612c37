//! Meters through their seams: trapezoid integration, fake powercap trees,
//! scripted NVML, short windows, the idle baseline, and meter selection.

use joulebench::config::MeterChoice;
use joulebench::gpu::api::{self as gpu, GpuApi, GpuState};
use joulebench::meter::nvml::{self, NvmlMeter};
use joulebench::meter::rapl::{RaplMeter, RealFs, SysfsReader};
use joulebench::meter::window::{apply_idle, reading};
use joulebench::meter::{
    self, DomainInfo, EnergyMeter, MeterInfo, MeterOptions, Provenance, Snapshot,
};
use joulebench::util::device::DeviceSpec;
use joulebench::util::units::{Joules, Seconds, Watts};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------- integration ----------

#[test]
fn trapezoid_matches_analytic_energy_of_scripted_power_curves() {
    // P(t) = 100 + 50 sin(t) W over 0..3 s, sampled every 10 ms:
    // E = 300 + 50 (1 - cos 3) J.
    let s: Vec<(f64, f64)> = (0..=300)
        .map(|i| {
            let t = i as f64 * 0.01;
            (t, 100.0 + 50.0 * t.sin())
        })
        .collect();
    let want = 300.0 + 50.0 * (1.0 - 3f64.cos());
    let got = nvml::trapezoid(&s);
    assert!(((got - want) / want).abs() < 1e-3, "{got} vs {want}");
    // A ramp is integrated exactly, with uneven sampling.
    let ramp = [(0.0, 0.0), (0.3, 30.0), (1.0, 100.0), (2.5, 250.0)];
    assert!((nvml::trapezoid(&ramp) - 312.5).abs() < 1e-9);
    // A step sampled at 100 ms.
    let step: Vec<(f64, f64)> = (0..=20)
        .map(|i| (i as f64 * 0.1, if i < 10 { 50.0 } else { 250.0 }))
        .collect();
    let e = nvml::trapezoid(&step);
    assert!(
        (e - (50.0 * 0.9 + 150.0 * 0.1 + 250.0 * 1.0)).abs() < 1e-9,
        "{e}"
    );
}

// ---------- RAPL ----------

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("powercap");
        std::fs::create_dir_all(&root).unwrap();
        Tree { _dir: dir, root }
    }
    fn zone(&self, id: &str, name: &str, energy_uj: u64, max_uj: u64) -> &Self {
        let d = self.root.join(id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(d.join("energy_uj"), format!("{energy_uj}\n")).unwrap();
        std::fs::write(d.join("max_energy_range_uj"), format!("{max_uj}\n")).unwrap();
        self
    }
    fn set(&self, id: &str, energy_uj: u64) {
        std::fs::write(
            self.root.join(id).join("energy_uj"),
            format!("{energy_uj}\n"),
        )
        .unwrap();
    }
}

fn domains(m: &RaplMeter) -> Vec<String> {
    m.info().domains.into_iter().map(|d| d.domain).collect()
}

fn delta(m: &mut RaplMeter, a: &Snapshot) -> Vec<f64> {
    let b = m.snapshot().unwrap();
    a.energy
        .iter()
        .zip(&b.energy)
        .map(|(x, y)| (*y - *x).0)
        .collect()
}

#[test]
fn rapl_reports_packages_and_dram_without_double_counting() {
    let t = Tree::new();
    t.zone("intel-rapl:0", "package-0", 1_000_000, 262_143_328_850)
        .zone("intel-rapl:0:0", "core", 500_000, 262_143_328_850)
        .zone("intel-rapl:0:1", "dram", 2_000_000, 65_712_999_613)
        .zone("intel-rapl:1", "package-1", 0, 262_143_328_850)
        .zone("intel-rapl:1:0", "dram", 0, 65_712_999_613)
        .zone("intel-rapl:2", "psys", 0, 262_143_328_850);
    let mut m = RaplMeter::open_manual(&t.root, Arc::new(RealFs)).unwrap();
    assert_eq!(
        domains(&m),
        ["cpu-package:0", "cpu-package:1", "dram:0", "dram:1"]
    );
    assert!(
        m.info()
            .domains
            .iter()
            .all(|d| d.provenance == Provenance::Counter)
    );
    let a = m.snapshot().unwrap();
    t.set("intel-rapl:0", 13_500_000); // +12.5 J
    t.set("intel-rapl:0:0", 9_000_000); // core: not counted
    t.set("intel-rapl:0:1", 4_000_000); // +2 J
    t.set("intel-rapl:1", 7_000_000); // +7 J
    t.set("intel-rapl:2", 99_000_000); // psys: not counted
    assert_eq!(delta(&mut m, &a), [12.5, 7.0, 2.0, 0.0]);
}

#[test]
fn rapl_uses_psys_only_when_there_is_no_package() {
    let t = Tree::new();
    t.zone("intel-rapl:0", "psys", 0, 1_000_000_000);
    let m = RaplMeter::open_manual(&t.root, Arc::new(RealFs)).unwrap();
    assert_eq!(domains(&m), ["psys:0"]);
}

#[test]
fn rapl_counter_wrapping_once_and_twice_within_a_window() {
    let t = Tree::new();
    let max = 1_000_000_000; // 1 kJ range
    t.zone("intel-rapl:0", "package-0", 900_000_000, max);
    let mut m = RaplMeter::open_manual(&t.root, Arc::new(RealFs)).unwrap();
    let a = m.snapshot().unwrap();
    // Once: 900 J -> wraps -> 50 J = 150 J.
    t.set("intel-rapl:0", 50_000_000);
    assert_eq!(delta(&mut m, &a), [150.0]);
    // Twice within one window, the tracker ticking in between:
    // 50 -> 800 (+750), wrap -> 100 (+300), 100 -> 950 (+850), wrap -> 20 (+70).
    let a = m.snapshot().unwrap();
    for v in [800_000_000, 100_000_000, 950_000_000] {
        t.set("intel-rapl:0", v);
        m.poll().unwrap();
    }
    t.set("intel-rapl:0", 20_000_000);
    let d = delta(&mut m, &a)[0];
    assert!((d - 1970.0).abs() < 1e-9, "{d}");
}

#[test]
fn rapl_tracker_thread_catches_wraps_between_snapshots() {
    let t = Tree::new();
    t.zone("intel-rapl:0", "package-0", 0, 4_000_000); // 4 J range: fastest poll (10 ms)
    let mut m = RaplMeter::open(&t.root).unwrap();
    assert_eq!(m.poll_interval, Duration::from_millis(10));
    let a = m.snapshot().unwrap();
    // +3 J, wrap to 1 J (+2 J), with pauses the tracker sees.
    t.set("intel-rapl:0", 3_000_000);
    std::thread::sleep(Duration::from_millis(100));
    t.set("intel-rapl:0", 1_000_000);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(delta(&mut m, &a), [5.0]);
}

#[test]
fn rapl_missing_domain_and_missing_interface_are_explained() {
    let t = Tree::new();
    let e = RaplMeter::open_manual(&t.root, Arc::new(RealFs))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("has no RAPL package, dram or psys zone"), "{e}");
    let e = RaplMeter::open_manual(Path::new("/nonexistent/powercap"), Arc::new(RealFs))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no powercap interface"), "{e}");
    // A zone without its energy file.
    t.zone("intel-rapl:0", "package-0", 0, 1000);
    std::fs::remove_file(t.root.join("intel-rapl:0/energy_uj")).unwrap();
    let e = RaplMeter::open_manual(&t.root, Arc::new(RealFs))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("intel-rapl:0/energy_uj") && e.contains("No such file"),
        "{e}"
    );
}

/// Root reads any file, so permission errors are simulated through the seam.
struct DenyEnergy;
impl SysfsReader for DenyEnergy {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        if path.ends_with("energy_uj") {
            Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
        } else {
            std::fs::read_to_string(path)
        }
    }
}

#[test]
fn rapl_permission_denied_says_what_to_chmod_or_which_capability() {
    let t = Tree::new();
    t.zone("intel-rapl:0", "package-0", 0, 1000);
    let e = RaplMeter::open_manual(&t.root, Arc::new(DenyEnergy))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("permission denied reading"), "{e}");
    assert!(
        e.contains("chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj"),
        "{e}"
    );
    assert!(e.contains("cap_dac_read_search"), "{e}");
    // With a real file mode too, when not root.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let f = t.root.join("intel-rapl:0/energy_uj");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
        let e = RaplMeter::open(&t.root).err().unwrap().to_string();
        assert!(e.contains("permission denied"), "{e}");
    }
}

#[test]
fn auto_falls_back_to_the_estimate_per_domain_and_records_why() {
    // No powercap at all: estimate for CPU and DRAM, RAPL's and NVML's reasons kept.
    let opts = MeterOptions {
        rapl_root: "/nonexistent/powercap".into(),
        ..MeterOptions::default()
    };
    let b = meter::build(&opts, DeviceSpec::Cpu).unwrap();
    let info = b.meter.info();
    let doms: Vec<(String, Provenance)> = info
        .domains
        .iter()
        .map(|d| (d.domain.clone(), d.provenance))
        .collect();
    assert_eq!(
        doms,
        [
            ("cpu-process".into(), Provenance::Estimated),
            ("dram-process".into(), Provenance::Estimated)
        ]
    );
    let reasons: Vec<String> = b
        .unavailable
        .iter()
        .map(|u| format!("{}: {}", u.meter, u.reason))
        .collect();
    assert!(
        reasons[0].starts_with("nvml: the run uses no GPU"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("rapl: ") && reasons[1].contains("no powercap interface"),
        "{reasons:?}"
    );

    // Packages but no DRAM zone: RAPL for the CPU, the estimate for DRAM only.
    let t = Tree::new();
    t.zone("intel-rapl:0", "package-0", 0, 262_143_328_850);
    let opts = MeterOptions {
        rapl_root: t.root.clone(),
        ..MeterOptions::default()
    };
    let b = meter::build(&opts, DeviceSpec::Cpu).unwrap();
    let doms: Vec<(String, Provenance)> = b
        .meter
        .info()
        .domains
        .iter()
        .map(|d| (d.domain.clone(), d.provenance))
        .collect();
    assert_eq!(
        doms,
        [
            ("cpu-package:0".into(), Provenance::Counter),
            ("dram-process".into(), Provenance::Estimated)
        ]
    );
    // Asking for RAPL where there is none is an error, not a silent estimate.
    let opts = MeterOptions {
        choice: MeterChoice::Rapl,
        rapl_root: "/nonexistent".into(),
        ..MeterOptions::default()
    };
    assert!(meter::build(&opts, DeviceSpec::Cpu).is_err());
    let opts = MeterOptions {
        choice: MeterChoice::Nvml,
        ..MeterOptions::default()
    };
    let e = meter::build(&opts, DeviceSpec::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("nvml is unavailable: the run uses no GPU"),
        "{e}"
    );
}

// ---------- NVML through the seam ----------

struct FakeGpu {
    uuid: &'static str,
    counter: bool,
    instant: bool,
    energy_mj: Mutex<u64>,
    watts: f64,
}

struct FakeNvml {
    gpus: Vec<FakeGpu>,
}

impl GpuApi for FakeNvml {
    fn device_count(&self) -> Result<u32, String> {
        Ok(self.gpus.len() as u32)
    }
    fn uuid(&self, i: u32) -> Result<String, String> {
        Ok(self.gpus[i as usize].uuid.into())
    }
    fn name(&self, i: u32) -> Result<String, String> {
        Ok(format!("Fake GPU {i}"))
    }
    fn driver_version(&self) -> Option<String> {
        Some("580.00".into())
    }
    fn total_energy_mj(&self, i: u32) -> Result<u64, String> {
        let g = &self.gpus[i as usize];
        if !g.counter {
            return Err("Not Supported".into());
        }
        let mut e = g.energy_mj.lock().unwrap();
        *e += 7; // the counter advances on every read
        Ok(*e)
    }
    fn power_instant_mw(&self, i: u32) -> Result<u32, String> {
        let g = &self.gpus[i as usize];
        if g.instant {
            Ok((g.watts * 1000.0) as u32)
        } else {
            Err("Not Supported".into())
        }
    }
    fn power_usage_mw(&self, i: u32) -> Result<u32, String> {
        Ok((self.gpus[i as usize].watts * 1000.0) as u32)
    }
    fn state(&self, i: u32) -> GpuState {
        GpuState {
            name: format!("Fake GPU {i}"),
            temperature_c: Some(40),
            sm_clock_mhz: Some(1980),
            power_limit_w: Some(700.0),
            utilization_pct: Some(0),
            ..GpuState::default()
        }
    }
}

fn fake(gpus: Vec<(&'static str, bool, bool, f64)>) -> Arc<FakeNvml> {
    Arc::new(FakeNvml {
        gpus: gpus
            .into_iter()
            .map(|(uuid, counter, instant, watts)| FakeGpu {
                uuid,
                counter,
                instant,
                energy_mj: Mutex::new(1_000_000),
                watts,
            })
            .collect(),
    })
}

#[test]
fn cuda_visible_devices_scopes_the_measured_gpus() {
    let api = fake(vec![
        ("GPU-aaaa-1111", true, true, 80.0),
        ("GPU-bbbb-2222", true, true, 80.0),
        ("GPU-cccc-3333", true, true, 80.0),
    ]);
    assert_eq!(
        gpu::select_gpus(api.as_ref(), None, &[0, 2]).unwrap(),
        [0, 2]
    );
    assert_eq!(
        gpu::select_gpus(api.as_ref(), Some("2,0"), &[0]).unwrap(),
        [2]
    );
    assert_eq!(
        gpu::select_gpus(api.as_ref(), Some("2,0"), &[1]).unwrap(),
        [0]
    );
    assert_eq!(
        gpu::select_gpus(api.as_ref(), Some("GPU-bbbb"), &[0]).unwrap(),
        [1]
    );
    // As in CUDA, the list ends at the first invalid entry.
    let e = gpu::select_gpus(api.as_ref(), Some("1,7,2"), &[1]).unwrap_err();
    assert!(
        e.contains("cuda:1 does not exist: 1 GPU(s) visible (CUDA_VISIBLE_DEVICES=1,7,2)"),
        "{e}"
    );
    let e = gpu::select_gpus(api.as_ref(), Some("MIG-xyz"), &[0]).unwrap_err();
    assert!(e.contains("MIG instance"), "{e}");
    assert!(gpu::select_gpus(api.as_ref(), Some(""), &[0]).is_err());
}

#[test]
fn counter_present_is_used_and_absent_falls_back_to_integrated_power() {
    let api = fake(vec![
        ("GPU-a", true, true, 100.0),
        ("GPU-b", false, true, 250.0),
        ("GPU-c", false, false, 60.0),
    ]);
    let m = NvmlMeter::open(api.clone(), None, &[0, 1, 2], Duration::from_millis(5)).unwrap();
    let info = m.info();
    let p: Vec<(String, Provenance)> = info
        .domains
        .iter()
        .map(|d| (d.domain.clone(), d.provenance))
        .collect();
    assert_eq!(
        p,
        [
            ("gpu:0".into(), Provenance::Counter),
            ("gpu:1".into(), Provenance::Integrated),
            ("gpu:2".into(), Provenance::Integrated)
        ]
    );
    assert!(
        info.domains[1].method.contains("instant power"),
        "{}",
        info.domains[1].method
    );
    assert!(
        info.domains[2].method.contains("1-s average"),
        "{}",
        info.domains[2].method
    );
    // The counter advanced on every read: update period detected.
    assert!(info.update_period.is_some());
    let mut m = m;
    let a = m.snapshot().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let b = m.snapshot().unwrap();
    let dt = (b.at - a.at).as_secs_f64();
    // Integrated GPUs: constant power x time (poller granularity 5 ms).
    let e1 = (b.energy[1] - a.energy[1]).0;
    assert!(
        (e1 - 250.0 * dt).abs() < 250.0 * 0.03,
        "{e1} vs {}",
        250.0 * dt
    );
    let e2 = (b.energy[2] - a.energy[2]).0;
    assert!((e2 - 60.0 * dt).abs() < 60.0 * 0.03, "{e2}");
    // Counter GPU: mJ deltas of the scripted counter.
    assert!((b.energy[0] - a.energy[0]).0 > 0.0);
    // The poller keeps a timeline and the GPU state.
    let tl = m.timeline(a.at, b.at);
    assert!(tl.iter().filter(|s| s.domain == "gpu:1").count() > 10);
    assert!(tl.iter().all(|s| s.t >= 0.0 && s.t <= dt + 1e-6));
    std::thread::sleep(Duration::from_millis(20));
    let st = m.gpu_states();
    assert_eq!(st.len(), 3);
    assert_eq!(
        (st[0].domain.as_str(), st[0].power_limit_w),
        ("gpu:0", Some(700.0))
    );
}

#[test]
fn update_period_is_measured_from_counter_changes() {
    // A counter that changes every 100 ms of scripted time, read every 1 ms.
    let clock = std::cell::Cell::new(0.0f64);
    let period = nvml::measure_update_period(
        || Ok((clock.get() / 0.1).floor() as u64 * 1000),
        || clock.get(),
        || clock.set(clock.get() + 0.001),
        5,
        2.0,
    )
    .unwrap();
    assert!((period - 0.1).abs() < 0.002, "{period}");
    // A counter that never changes: no period.
    let clock = std::cell::Cell::new(0.0f64);
    let p = nvml::measure_update_period(
        || Ok(5),
        || clock.get(),
        || clock.set(clock.get() + 0.01),
        5,
        1.0,
    );
    assert_eq!(p, None);
}

fn counter_info(period: f64) -> MeterInfo {
    MeterInfo {
        name: "nvml".into(),
        domains: vec![DomainInfo {
            domain: "gpu:0".into(),
            meter: "nvml".into(),
            provenance: Provenance::Counter,
            method: "test".into(),
            caveat: None,
        }],
        update_period: Some(Seconds(period)),
        cpu: None,
    }
}

#[test]
fn short_window_with_zero_counter_delta_is_flagged_and_approximated() {
    let info = counter_info(0.1);
    let t0 = Instant::now();
    let a = Snapshot::new(t0, vec![Joules(500.0)], vec![Some(Watts(180.0))]);
    let b = Snapshot::new(
        t0 + Duration::from_millis(20),
        vec![Joules(500.0)],
        vec![Some(Watts(220.0))],
    );
    let r = reading(&info, "step", &a, &b);
    assert_eq!(r.flags.len(), 1, "{:?}", r.flags);
    assert!(r.flags[0].contains("shorter than the meter's update period"));
    // (180 + 220) / 2 W x 0.02 s = 4 J, not a silent zero.
    assert!((r.joules.0 - 4.0).abs() < 1e-9, "{}", r.joules.0);
    assert_eq!(r.domains[0].provenance, Provenance::Integrated);
    // A long window uses the counter as is.
    let c = Snapshot::new(
        t0 + Duration::from_secs(2),
        vec![Joules(900.0)],
        vec![Some(Watts(200.0))],
    );
    let r = reading(&info, "long", &a, &c);
    assert!(r.flags.is_empty());
    assert_eq!(r.joules, Joules(400.0));
    assert_eq!(r.domains[0].provenance, Provenance::Counter);
}

#[test]
fn idle_baseline_gives_gross_idle_and_net() {
    let info = counter_info(0.001);
    let t0 = Instant::now();
    let snap = |s: f64, j: f64| {
        Snapshot::new(t0 + Duration::from_secs_f64(s), vec![Joules(j)], vec![None])
    };
    let idle = reading(&info, "idle", &snap(0.0, 0.0), &snap(2.0, 168.0)); // 84 W idle
    let mut work = reading(&info, "train", &snap(10.0, 1000.0), &snap(15.0, 2420.0)); // 1420 J in 5 s
    apply_idle(&mut work, &idle);
    assert_eq!(work.idle_joules, Some(Joules(420.0)));
    assert_eq!(work.net_joules, Some(Joules(1000.0)));
    assert_eq!(work.domains[0].net_joules, Some(Joules(1000.0)));
}

#[test]
fn measurer_takes_an_idle_window_and_subtracts_it() {
    use joulebench::meter::fake::ConstantPowerMeter;
    let mut m = meter::Measurer::new(
        Box::new(ConstantPowerMeter::new(vec![("gpu:0".into(), Watts(50.0))])),
        candle_core::Device::Cpu,
    );
    let idle = m.measure_idle(0.05).unwrap();
    assert!(idle.seconds.0 >= 0.05 && (idle.avg_watts.0 - 50.0).abs() < 1.0);
    let w = m.begin("work").unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let r = m.end(w).unwrap();
    // Constant power: everything is idle, net ~ 0.
    assert!(
        r.net_joules.unwrap().0.abs() < 0.05 * r.joules.0,
        "{:?}",
        r.net_joules
    );
}
