//! One measurement setting's spec, the check of its value, and the error a
//! bad value gets (which names the suite field and the flag alike).

use crate::config::{GpuSelection, MeterChoice};
use std::ffi::OsString;
use std::path::PathBuf;

/// What a setting's value must satisfy.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// A finite number in `[min, max]` (`(min, max]` when `min_open`).
    Real { min: f64, min_open: bool, max: f64 },
    /// An integer in `min..=max`.
    Int { min: u32, max: u32 },
    /// Text of 1..=max characters, not blank, without control characters.
    Text { max: usize },
    /// One of a name table's names (typed values are parsed from it).
    Named(fn() -> Vec<&'static str>),
    /// A path: not empty.
    Path,
    /// A grid region of the bundled tables.
    Region,
    /// `hourly` or `annual`.
    Intensity,
    /// Any value the type parses (its parser already refused the rest).
    Any,
}

/// One measurement setting, as declared in `measure_settings!`.
#[derive(Debug)]
pub struct Spec {
    /// `meter` or `impact`: the suite table the key belongs to.
    pub section: &'static str,
    /// The key in the suite table (and the field name).
    pub key: &'static str,
    /// The command-line flag, without `--`.
    pub flag: &'static str,
    pub about: &'static str,
    /// What is allowed, in words (the end of every error message).
    pub allowed: &'static str,
    pub check: Check,
    /// Left out of `--help` and `joulebench list` (test seams).
    pub hidden: bool,
}

/// A setting's value out of what it allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{section}.{key} (--{flag}) = {value} is not allowed: {allowed}")]
pub struct SettingError {
    pub section: &'static str,
    pub key: &'static str,
    pub flag: &'static str,
    /// The value as written (clipped).
    pub value: String,
    pub allowed: String,
}

impl SettingError {
    /// `section.key`, as a suite names the field.
    pub fn key(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }

    /// The message for a command-line flag: `--flag value: allowed`.
    pub fn for_flag(&self) -> String {
        format!("--{} {}: {}", self.flag, self.value, self.allowed)
    }
}

impl Spec {
    /// The error for `value`, which this setting does not allow.
    pub fn refuse(&'static self, value: &str, allowed: &str) -> SettingError {
        SettingError {
            section: self.section,
            key: self.key,
            flag: self.flag,
            value: crate::util::clip(value),
            allowed: allowed.to_string(),
        }
    }
}

/// The words an impact error gives as what is allowed.
pub(crate) fn impact_allowed(e: crate::impact::ImpactError) -> String {
    match e {
        crate::impact::ImpactError::Invalid { allowed, .. } => allowed.to_string(),
        crate::impact::ImpactError::InvalidText { allowed, .. } => allowed,
        other => other.to_string(),
    }
}

/// A value a measurement setting can hold.
pub trait Knob {
    /// The value as a message or `joulebench list` shows it.
    fn shown(&self) -> String;
    /// The value as a command-line argument.
    fn arg(&self) -> OsString {
        self.shown().into()
    }
    /// Checks the value against `spec`.
    fn check(&self, spec: &'static Spec) -> Result<(), SettingError>;
}

impl Knob for f64 {
    fn shown(&self) -> String {
        self.to_string()
    }

    fn check(&self, spec: &'static Spec) -> Result<(), SettingError> {
        let ok = match spec.check {
            Check::Real { min, min_open, max } => {
                self.is_finite() && (*self > min || (!min_open && *self == min)) && *self <= max
            }
            _ => self.is_finite(),
        };
        ok.then_some(())
            .ok_or_else(|| spec.refuse(&self.shown(), spec.allowed))
    }
}

impl Knob for u32 {
    fn shown(&self) -> String {
        self.to_string()
    }

    fn check(&self, spec: &'static Spec) -> Result<(), SettingError> {
        match spec.check {
            Check::Int { min, max } if !(min..=max).contains(self) => {
                Err(spec.refuse(&self.shown(), spec.allowed))
            }
            _ => Ok(()),
        }
    }
}

impl Knob for String {
    fn shown(&self) -> String {
        format!("{self:?}")
    }

    fn arg(&self) -> OsString {
        self.into()
    }

    fn check(&self, spec: &'static Spec) -> Result<(), SettingError> {
        let refuse = |allowed: &str| Err(spec.refuse(&self.shown(), allowed));
        match spec.check {
            Check::Text { max } => {
                if self.trim().is_empty()
                    || self.chars().count() > max
                    || self.chars().any(char::is_control)
                {
                    return refuse(spec.allowed);
                }
                Ok(())
            }
            Check::Region => {
                crate::impact::check_region(self).or_else(|e| refuse(&impact_allowed(e)))
            }
            Check::Intensity => match self.as_str() {
                "hourly" | "annual" => Ok(()),
                _ => refuse(spec.allowed),
            },
            _ => Ok(()),
        }
    }
}

impl Knob for PathBuf {
    fn shown(&self) -> String {
        format!("{:?}", self.display().to_string())
    }

    fn arg(&self) -> OsString {
        self.clone().into_os_string()
    }

    fn check(&self, spec: &'static Spec) -> Result<(), SettingError> {
        if self.as_os_str().is_empty() {
            return Err(spec.refuse("\"\"", spec.allowed));
        }
        Ok(())
    }
}

impl Knob for GpuSelection {
    fn shown(&self) -> String {
        self.to_string()
    }

    fn check(&self, _: &'static Spec) -> Result<(), SettingError> {
        Ok(())
    }
}

impl Knob for MeterChoice {
    fn shown(&self) -> String {
        self.name().to_string()
    }

    fn check(&self, _: &'static Spec) -> Result<(), SettingError> {
        Ok(())
    }
}
