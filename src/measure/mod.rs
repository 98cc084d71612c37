//! The measurement settings: every meter and impact knob in one type,
//! declared once in the table below.
//!
//! A knob is one line of `measure_settings!`: its field (the suite key), its
//! command-line flag, its default, what it allows and its help text. From
//! that line come
//! - the suite's `[meter]` and `[impact]` tables (serde, unknown keys refused),
//! - the flags of `run`, `slurm`, `reproduce` and `meters` (clap, flattened),
//! - the check of a value, with one message for a suite field and for a flag,
//! - the layering (`or`: command line over suite over built-in default),
//! - the arguments written back for generated scripts (`to_args`),
//! - the lines of `joulebench list`.
//!
//! `resolve` turns the layered settings into what the meter and the impact
//! code take (`Measurement`), once per run.

mod knob;
mod resolve;

pub use knob::{Check, Knob, SettingError, Spec};
pub use resolve::{MeasureError, Measurement};

use crate::config::{GpuSelection, MeterChoice};
use std::path::PathBuf;

/// Declares the two sections, their specs and the built-in defaults.
macro_rules! measure_settings {
    ($(
        $(#[doc = $sdoc:literal])*
        $section:ident: $Section:ident {
            $(
                #[doc = $about:literal]
                $field:ident: $ty:ty, flag $flag:literal, $check:expr, $allowed:literal
                $(, default $default:expr)? $(, hide $hide:literal)?;
            )+
        }
    )+) => {
        $(
            $(#[doc = $sdoc])*
            #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, clap::Args)]
            #[serde(deny_unknown_fields)]
            pub struct $Section {
                $(
                    #[doc = $about]
                    #[arg(long = $flag, hide = false $(|| $hide)?)]
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    pub $field: Option<$ty>,
                )+
            }

            impl $Section {
                /// Each setting with its spec, in table order.
                fn knobs(&self) -> Vec<(&'static Spec, Option<&dyn Knob>)> {
                    let mut specs = SPECS.iter().filter(|s| s.section == stringify!($section));
                    vec![$(
                        (specs.next().expect("one spec per field"), self.$field.as_ref().map(|v| v as &dyn Knob)),
                    )+]
                }

                /// `self` where set, else `lower`.
                fn or(self, lower: &Self) -> Self {
                    Self { $( $field: self.$field.or_else(|| lower.$field.clone()), )+ }
                }

                /// The built-in defaults (None where the default depends on
                /// the machine or on other settings).
                fn builtin() -> Self {
                    Self { $( $field: measure_settings!(@default $($default)?), )+ }
                }
            }
        )+

        /// Every measurement setting, in the order `joulebench list` shows them.
        pub const SPECS: &[Spec] = &[$($(
            Spec {
                section: stringify!($section),
                key: stringify!($field),
                flag: $flag,
                about: $about.trim_ascii(),
                allowed: $allowed,
                check: $check,
                hidden: false $(|| $hide)?,
            },
        )+)+];
    };
    (@default) => { None };
    (@default $d:expr) => { Some($d.into()) };
}

measure_settings! {
    /// `[meter]`: which energy sources and how they are read.
    meter: MeterSection {
        /// Energy meter: auto (every real source, the estimate for the rest), nvml, rapl, estimate or fake.
        kind: MeterChoice, flag "meter", Check::Named(MeterChoice::names), "auto | nvml | rapl | estimate | fake", default MeterChoice::Auto;
        /// Rated watts of one fully busy core, for the estimate (a flat W per core instead of its CPU power model; no band).
        cpu_watts_per_core: f64, flag "cpu-watts-per-core", Check::Real { min: 0.0, min_open: true, max: 1000.0 }, "rated watts per core must be in (0, 1000]";
        /// Watts per GB of resident memory for the DRAM estimate (instead of the banded 0.284-0.392, central 0.375).
        dram_watts_per_gb: f64, flag "dram-watts-per-gb", Check::Real { min: 0.0, min_open: true, max: 10.0 }, "watts per GB must be in (0, 10]";
        /// Idle window before each trial, seconds (0 disables the baseline).
        idle_seconds: f64, flag "idle-seconds", Check::Real { min: 0.0, min_open: false, max: 600.0 }, "idle window seconds must be in [0, 600] (0 disables the baseline)", default 2.0;
        /// Pause before each trial's idle window, seconds.
        cooldown_seconds: f64, flag "cooldown-seconds", Check::Real { min: 0.0, min_open: false, max: 3600.0 }, "cool-down seconds must be in [0, 3600]", default 0.0;
        /// Before each trial, wait (at most 120 s) until the GPU is at or below this temperature, degrees C.
        cooldown_temperature_c: f64, flag "cooldown-temperature-c", Check::Real { min: 10.0, min_open: true, max: 100.0 }, "a GPU temperature in (10, 100] degrees C";
        /// Flag a window when other processes used more than this share of the machine's CPU time during it (validity rule `interference`).
        interference_limit: f64, flag "interference-limit", Check::Real { min: 0.0, min_open: false, max: 1.0 }, "a share of the machine's CPU capacity in [0, 1], e.g. 0.1", default crate::meter::validity::DEFAULT_INTERFERENCE_LIMIT;
        /// NVML power polling interval, milliseconds.
        poll_interval_ms: f64, flag "poll-interval-ms", Check::Real { min: 1.0, min_open: false, max: 1000.0 }, "polling interval in milliseconds, in [1, 1000]", default 20.0;
        /// The CPU's model name for the estimate's TDP lookup, where a VM hides it, e.g. "AMD EPYC 7763".
        cpu_model: String, flag "cpu-model", Check::Text { max: 200 }, "a CPU model name of 1-200 characters, as in /proc/cpuinfo";
        /// Hardware threads of the CPU package that share its TDP (the host's, in a VM).
        cpu_threads: u32, flag "cpu-threads", Check::Int { min: 1, max: 4096 }, "hardware threads per package, 1..=4096";
        /// GPUs NVML measures: run (the run's, default), all (every GPU of the node) or NVML indices, e.g. 0,1.
        gpus: GpuSelection, flag "gpus", Check::Any, "\"run\" (the run's GPUs), \"all\" (every GPU of the node) or a list of NVML indices, e.g. [0, 1]";
        /// NVML library to load instead of the system's (else $JOULEBENCH_NVML_LIB); in a suite, relative to the suite file.
        nvml_lib: PathBuf, flag "nvml-lib", Check::Path, "a path to libnvidia-ml.so (e.g. the stand-in of scripts/nvml-standin.sh)";
        /// Root of the powercap tree (default /sys/class/powercap; tests point it at a fake tree).
        rapl_root: PathBuf, flag "rapl-root", Check::Path, "a folder laid out like /sys/class/powercap", hide true;
    }
    /// `[impact]`: how energy becomes CO2e and water (see `impact` for the data).
    impact: ImpactSection {
        /// Grid region for CO2e: country code or name, or cloud region (`joulebench regions` lists them).
        region: String, flag "region", Check::Region, "a country code or name, or a cloud region such as gcp:europe-west1 (`joulebench regions`)";
        /// Power usage effectiveness: facility energy / IT energy.
        pue: f64, flag "pue", Check::Real { min: 1.0, min_open: false, max: 5.0 }, "PUE is facility energy / IT energy, a number in [1, 5]";
        /// On-site water usage effectiveness, L/kWh of IT energy.
        wue_onsite: f64, flag "wue", Check::Real { min: 0.0, min_open: false, max: 100.0 }, "litres per kWh, a number in [0, 100]";
        /// Off-site water intensity of electricity generation, L/kWh.
        water_offsite: f64, flag "water-offsite", Check::Real { min: 0.0, min_open: false, max: 100.0 }, "litres per kWh, a number in [0, 100]";
        /// Grid intensity: hourly (each hour's, where the region has a bundled profile; the default there) or annual (the yearly average).
        intensity: String, flag "intensity", Check::Intensity, "hourly | annual";
    }
}

/// Every measurement setting: the suite's `[meter]` and `[impact]` tables,
/// or the command line's flags. Unset means "inherit".
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, clap::Args)]
pub struct MeasureSettings {
    #[command(flatten)]
    #[serde(default)]
    pub meter: MeterSection,
    #[command(flatten)]
    #[serde(default)]
    pub impact: ImpactSection,
}

impl MeasureSettings {
    /// Each setting with its spec and value (None: unset), in table order.
    pub fn knobs(&self) -> Vec<(&'static Spec, Option<&dyn Knob>)> {
        let mut v = self.meter.knobs();
        v.extend(self.impact.knobs());
        v
    }

    /// Checks every value that is set on its own (ranges, names, regions)
    /// and the one pair that goes together in one source (an hourly
    /// intensity needs a region with a bundled profile).
    pub fn check(&self) -> Result<(), SettingError> {
        for (spec, value) in self.knobs() {
            if let Some(v) = value {
                v.check(spec)?;
            }
        }
        if self.impact.intensity.as_deref() == Some("hourly") {
            let region = self.impact.region.as_deref();
            let spec = spec("impact", "intensity");
            crate::impact::ImpactSettings::new(region, None, None, None)
                .and_then(|s| s.with_intensity(Some("hourly")))
                .map_err(|e| spec.refuse("hourly", &knob::impact_allowed(e)))?;
        }
        Ok(())
    }

    /// These settings where set, else `lower`'s (command line over suite).
    pub fn or(self, lower: &MeasureSettings) -> MeasureSettings {
        MeasureSettings {
            meter: self.meter.or(&lower.meter),
            impact: self.impact.or(&lower.impact),
        }
    }

    /// The built-in defaults of the knobs that have one.
    pub fn builtin() -> MeasureSettings {
        MeasureSettings {
            meter: MeterSection::builtin(),
            impact: ImpactSection::builtin(),
        }
    }

    /// The settings that are set, as command-line arguments (for a
    /// generated batch script): `--flag value` pairs in table order.
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut v = Vec::new();
        for (spec, value) in self.knobs() {
            if let Some(x) = value {
                v.push(format!("--{}", spec.flag).into());
                v.push(x.arg());
            }
        }
        v
    }

    /// Relative paths of a suite file's settings made relative to its folder.
    pub fn relative_to(mut self, folder: &std::path::Path) -> MeasureSettings {
        if let Some(lib) = self.meter.nvml_lib.as_mut()
            && lib.is_relative()
        {
            *lib = folder.join(&*lib);
        }
        self
    }
}

/// The spec of `section.key` (a key the table declares).
pub fn spec(section: &str, key: &str) -> &'static Spec {
    SPECS
        .iter()
        .find(|s| s.section == section && s.key == key)
        .expect("a key of the measurement settings table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_one_spec_in_order() {
        let fields = serde_json::to_value(MeasureSettings {
            meter: MeterSection::builtin(),
            impact: ImpactSection::builtin(),
        })
        .unwrap();
        assert!(fields["meter"].is_object());
        let unset = MeasureSettings::default();
        let all = unset.knobs();
        assert_eq!(all.len(), SPECS.len());
        for (spec, v) in all {
            assert!(v.is_none());
            assert_eq!(
                SPECS
                    .iter()
                    .filter(|s| s.key == spec.key && s.section == spec.section)
                    .count(),
                1
            );
            assert!(!spec.about.is_empty() && !spec.allowed.is_empty());
        }
    }

    #[test]
    fn or_takes_the_higher_layer_and_to_args_writes_every_set_knob() {
        let mut cli = MeasureSettings::default();
        cli.impact.region = Some("GB".into());
        cli.meter.idle_seconds = Some(0.5);
        let mut suite = MeasureSettings::default();
        suite.impact.pue = Some(1.3);
        suite.meter.idle_seconds = Some(3.0);
        let m = cli.or(&suite).or(&MeasureSettings::builtin());
        assert_eq!(m.meter.idle_seconds, Some(0.5));
        assert_eq!(m.impact.pue, Some(1.3));
        assert_eq!(m.impact.region.as_deref(), Some("GB"));
        assert_eq!(m.meter.kind, Some(MeterChoice::Auto));
        let args: Vec<String> = m
            .to_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        for want in [
            "--meter auto",
            "--idle-seconds 0.5",
            "--region GB",
            "--pue 1.3",
        ] {
            assert!(joined.contains(want), "{joined}");
        }
    }

    #[test]
    fn a_value_out_of_range_names_its_field_and_flag() {
        let mut s = MeasureSettings::default();
        s.meter.idle_seconds = Some(-1.0);
        let e = s.check().unwrap_err();
        assert_eq!(
            (e.key(), e.flag),
            ("meter.idle_seconds".into(), "idle-seconds")
        );
        assert!(e.allowed.contains("[0, 600]"), "{e:?}");
        let mut s = MeasureSettings::default();
        s.impact.region = Some("Atlantis".into());
        assert_eq!(s.check().unwrap_err().key(), "impact.region");
        let mut s = MeasureSettings::default();
        s.impact.intensity = Some("hourly".into());
        s.impact.region = Some("FR".into());
        assert!(s.check().is_ok());
        s.impact.region = Some("USA".into());
        assert_eq!(s.check().unwrap_err().key(), "impact.intensity");
    }
}
