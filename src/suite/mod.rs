//! Suite files (TOML): what to train, under which variants, how often.
//!
//! A suite is parsed strictly (unknown keys are errors) and every value is
//! checked where it was written, so an error names the file, the field (as a
//! path such as `variant[fast].batch_size`), the value and what is allowed.
//! Settings resolve in four layers: built-in defaults < `[defaults]` <
//! `[[workload]]` < `[[variant]]`.
//!
//! `settings` holds the raw shapes and the table of every setting, `check`
//! the value checks, `resolve` the layering into `config`, and
//! `expand` the plan and the command line's filters.

mod check;
mod expand;
mod protocol;
mod resolve;
pub mod settings;

use crate::config::ModelKind;
use crate::config::claim::{Claim, Expect};
use crate::measure::MeasureSettings;
use check::{Ctx, valid_name};
pub use settings::{DataSection, Defaults, SETTINGS, Settings};
use settings::{RawEntry, RawSuite};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot read suite file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: field `{field}` = {value} is not allowed: {allowed}")]
    Invalid {
        path: PathBuf,
        field: String,
        value: String,
        allowed: String,
    },
    #[error("{path}: field `{field}`: unknown {what} `{name}`; known: {known}")]
    Unknown {
        path: PathBuf,
        field: String,
        what: &'static str,
        name: String,
        known: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub model: ModelKind,
    pub settings: Settings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub name: String,
    pub settings: Settings,
}

/// A parsed and validated suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub baseline: String,
    /// Every seed the plan may run (adaptive seeds: up to the cap).
    pub seeds: Vec<u64>,
    pub repeats: u32,
    /// Trial order, warm-up and adaptive seeds.
    pub protocol: crate::config::protocol::Protocol,
    pub defaults: Settings,
    pub data: DataSection,
    /// `[meter]` and `[impact]` as written (checked; relative paths made
    /// relative to the suite's folder).
    pub measure: MeasureSettings,
    pub workloads: Vec<Workload>,
    pub variants: Vec<Variant>,
    /// The file's exact text (copied into each run folder).
    pub source: String,
    pub claim: Option<Claim>,
    /// Whether the `[quick]` overrides were applied.
    pub quick: bool,
    /// The command line's `--workload`/`--variant` filters applied (`select`).
    pub filters: Filters,
}

/// The workload and variant filters of a run (empty: the whole suite).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub workloads: Vec<String>,
    #[serde(default)]
    pub variants: Vec<String>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty() && self.variants.is_empty()
    }
}

impl std::fmt::Display for Filters {
    /// As command-line flags: `--workload mlp --variant b32` (or `none`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("none (the whole suite)");
        }
        let flags: Vec<String> = self
            .workloads
            .iter()
            .map(|w| format!("--workload {w}"))
            .chain(self.variants.iter().map(|v| format!("--variant {v}")))
            .collect();
        f.write_str(&flags.join(" "))
    }
}

/// Most trials one suite may plan.
pub const MAX_TRIALS: usize = 100_000;

impl Suite {
    /// Reads and validates a suite file.
    pub fn load(path: &Path) -> Result<Suite, SuiteError> {
        Self::load_with(path, false)
    }

    /// Reads a suite with its `[quick]` overrides applied (if `quick`).
    pub fn load_with(path: &Path, quick: bool) -> Result<Suite, SuiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_with(path, &text, quick)
    }

    /// Parses and validates suite text; `path` is used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Suite, SuiteError> {
        Self::parse_with(path, text, false)
    }

    /// Parses suite text, applying `[quick]` over `[defaults]` when `quick`.
    pub fn parse_with(path: &Path, text: &str, quick: bool) -> Result<Suite, SuiteError> {
        let cx = Ctx { path };
        let mut raw: RawSuite = toml::from_str(text)
            .map_err(|e| cx.parse_error(check::clip_message(e.to_string().trim_end())))?;
        // `[quick]` is checked on its own, whether or not this load applies it,
        // so `validate` catches what `--quick` would trip on, under its own name.
        if let Some(q) = &raw.quick {
            let mut settings = q.clone();
            settings.remove("seeds");
            settings.remove("repeats");
            cx.settings("quick", settings)?;
        }
        for (field, dir) in [
            ("data.fashion_mnist", &raw.data.fashion_mnist),
            ("data.corpus", &raw.data.corpus),
        ] {
            if dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
                return Err(cx.invalid(
                    field,
                    "\"\"",
                    "a folder path (omit the key to use the default)",
                ));
            }
        }
        let mut source = text.to_string();
        if quick && let Some(q) = raw.quick.take() {
            apply_quick(&cx, raw.defaults.get_or_insert_with(Defaults::default), q)?;
            // The run folder's copy must read back as the suite that ran.
            source = quick_applied(text).map_err(|e| cx.parse_error(e))?;
        }
        if !valid_name(&raw.name) {
            return Err(cx.invalid(
                "name",
                format!("{:?}", raw.name),
                "1-64 characters of letters, digits, '-', '_' or '.', not starting with '.' (it names the results folder)",
            ));
        }
        let defaults = raw.defaults.unwrap_or_default();
        let (seeds, protocol) = protocol::protocol(&cx, raw.protocol, defaults.seeds)?;
        let repeats = match defaults.repeats {
            None => 1,
            Some(r) if (1..=1000).contains(&r) => r as u32,
            Some(r) => {
                let allowed = "repeats must be an integer in 1..=1000";
                return Err(cx.invalid("defaults.repeats", r, allowed));
            }
        };
        let default_settings = cx.settings("defaults", defaults.settings)?;
        let workloads = workloads(&cx, raw.workloads)?;
        let variants = expand::variants(&cx, raw.variants)?;
        let baseline = match raw.baseline {
            None => variants[0].name.clone(),
            Some(b) if variants.iter().any(|v| v.name == b) => b,
            Some(b) => {
                let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
                return Err(cx.unknown("baseline", "variant", &b, &names));
            }
        };
        let measure = cx
            .measurement(raw.meter, raw.impact)?
            .relative_to(path.parent().unwrap_or(Path::new(".")));
        let suite = Suite {
            path: path.to_path_buf(),
            name: raw.name,
            description: raw.description,
            baseline,
            seeds,
            repeats,
            protocol,
            defaults: default_settings,
            data: raw.data,
            measure,
            workloads,
            variants,
            source,
            claim: raw.claim,
            quick,
            filters: Filters::default(),
        };
        if let Some(c) = &suite.claim {
            suite.check_claim(&cx, c)?;
        }
        let trials = [
            suite.workloads.len(),
            suite.variants.len(),
            suite.seeds.len(),
            repeats as usize,
        ]
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .filter(|&n| n <= MAX_TRIALS);
        if trials.is_none() {
            return Err(cx.invalid(
                "defaults.seeds",
                format!(
                    "{} workload(s) x {} variant(s) x {} seed(s) x {} repeat(s)",
                    suite.workloads.len(),
                    suite.variants.len(),
                    suite.seeds.len(),
                    repeats
                ),
                &format!("a plan of at most {MAX_TRIALS} trials; split the suite"),
            ));
        }
        // Resolve every combination once so that a bad combination is reported now.
        suite.plan()?;
        Ok(suite)
    }

    /// The claim's trials exist in this suite, and its expectation is complete.
    fn check_claim(&self, cx: &Ctx, c: &Claim) -> Result<(), SuiteError> {
        for (field, sel) in [
            ("claim.baseline", &c.baseline),
            ("claim.treatment", &c.treatment),
        ] {
            let (w, v) = sel.split_once('/').unwrap_or((sel.as_str(), "baseline"));
            let ok = self.workloads.iter().any(|x| x.name == w)
                && self.variants.iter().any(|x| x.name == v);
            if !ok {
                let known: Vec<String> = self
                    .workloads
                    .iter()
                    .flat_map(|w| {
                        self.variants
                            .iter()
                            .map(move |v| format!("{}/{}", w.name, v.name))
                    })
                    .collect();
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                return Err(cx.unknown(field, "workload/variant", sel, &known));
            }
        }
        if matches!(c.expect, Expect::Within | Expect::Differs)
            && (c.ratio_min.is_none() || c.ratio_max.is_none())
        {
            return Err(cx.invalid(
                "claim.expect",
                format!("{:?}", c.expect),
                "`within` and `differs` need ratio_min and ratio_max",
            ));
        }
        for (field, v) in [
            ("claim.ratio_min", c.ratio_min),
            ("claim.ratio_max", c.ratio_max),
            ("claim.published_ratio", c.published_ratio),
        ] {
            if let Some(x) = v
                && !(x.is_finite() && x >= 0.0)
            {
                return Err(cx.invalid(field, x, "a ratio: a finite number >= 0"));
            }
        }
        if let (Some(lo), Some(hi)) = (c.ratio_min, c.ratio_max)
            && lo > hi
        {
            return Err(cx.invalid(
                "claim.ratio_min",
                lo,
                &format!("ratio_min must not exceed ratio_max ({hi})"),
            ));
        }
        if let Some(t) = c.target_accuracy
            && !(t > 0.0 && t <= 1.0)
        {
            return Err(cx.invalid(
                "claim.target_accuracy",
                t,
                "an accuracy in (0, 1], e.g. 0.85",
            ));
        }
        Ok(())
    }
}

/// `[quick]` keys override `[defaults]` (seeds and repeats included).
/// The suite text with `[quick]` merged into `[defaults]` and removed (comments
/// are lost: the copy is written by the program, not read by people).
fn quick_applied(text: &str) -> Result<String, String> {
    let mut t: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let Some(toml::Value::Table(q)) = t.remove("quick") else {
        return Ok(text.to_string());
    };
    let d = t
        .entry("defaults")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(d) = d {
        d.extend(q);
    }
    let body = toml::to_string(&t).map_err(|e| e.to_string())?;
    Ok(format!(
        "# This suite with its [quick] table applied (joulebench --quick).\n{body}"
    ))
}

fn apply_quick(cx: &Ctx, d: &mut Defaults, quick: toml::Table) -> Result<(), SuiteError> {
    use serde::Deserialize;
    for (k, v) in quick {
        match k.as_str() {
            "seeds" => d.seeds = Some(v),
            "repeats" => {
                d.repeats = Some(
                    i64::deserialize(v)
                        .map_err(|e| cx.invalid("quick.repeats", e.message(), "an integer"))?,
                )
            }
            _ => {
                d.settings.insert(k, v);
            }
        }
    }
    Ok(())
}

fn workloads(cx: &Ctx, raw: Vec<RawEntry>) -> Result<Vec<Workload>, SuiteError> {
    if raw.is_empty() {
        return Err(cx.invalid(
            "workload",
            "(none)",
            "a suite needs at least one [[workload]] table with `name` and `model`",
        ));
    }
    cx.table_count("workload", raw.len())?;
    let mut workloads: Vec<Workload> = Vec::new();
    for (i, w) in raw.into_iter().enumerate() {
        cx.entry_name(
            "workload",
            i,
            &w.name,
            workloads.iter().map(|x| x.name.as_str()),
        )?;
        let model_name = w.model.clone().unwrap_or_else(|| w.name.clone());
        let model = ModelKind::parse(&model_name).ok_or_else(|| {
            cx.unknown(
                &format!("workload[{}].model", w.name),
                ModelKind::WHAT,
                &model_name,
                &ModelKind::names(),
            )
        })?;
        let settings = cx.settings(&format!("workload[{}]", w.name), w.settings)?;
        workloads.push(Workload {
            name: w.name,
            model,
            settings,
        });
    }
    Ok(workloads)
}
