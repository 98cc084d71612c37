//! Checking a suite's values where they were written: every error names the
//! file, the field (as a path such as `variant[fast].batch_size`), the value
//! and what is allowed.

use super::SuiteError;
use super::settings::{Allowed, SETTINGS, Settings};
use serde::Deserialize;
use std::path::Path;

/// The file a suite came from, for messages.
pub(crate) struct Ctx<'a> {
    pub path: &'a Path,
}

impl Ctx<'_> {
    pub fn invalid(&self, field: &str, value: impl std::fmt::Display, allowed: &str) -> SuiteError {
        SuiteError::Invalid {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            value: clip(&value.to_string()),
            allowed: allowed.to_string(),
        }
    }

    pub fn unknown(
        &self,
        field: &str,
        what: &'static str,
        name: &str,
        known: &[&str],
    ) -> SuiteError {
        SuiteError::Unknown {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            what,
            name: clip(name),
            known: clip(&known.join(", ")),
        }
    }

    pub fn parse_error(&self, message: String) -> SuiteError {
        SuiteError::Parse {
            path: self.path.to_path_buf(),
            message,
        }
    }

    /// A settings table (`[defaults]`, a workload or a variant) turned into
    /// checked `Settings`; `prefix` is its field path.
    pub fn settings(&self, prefix: &str, table: toml::Table) -> Result<Settings, SuiteError> {
        self.check_names(prefix, &table)?;
        let s: Settings = match Settings::deserialize(toml::Value::Table(table.clone())) {
            Ok(s) => s,
            Err(e) => {
                // Find the offending key, so the message can name it.
                let culprit = table.iter().find(|(k, v)| {
                    let mut one = toml::Table::new();
                    one.insert((*k).clone(), (*v).clone());
                    Settings::deserialize(toml::Value::Table(one)).is_err()
                });
                return Err(self.parse_error(match culprit {
                    Some((k, v)) => format!(
                        "field `{prefix}.{k}` = {}: {}",
                        clip(&v.to_string()),
                        clip_message(e.message())
                    ),
                    None => format!("in `{prefix}`: {}", e.message()),
                }));
            }
        };
        self.check_training(prefix, &s)?;
        self.check_techniques(prefix, &s)?;
        self.check_model_size(prefix, &s)?;
        Ok(s)
    }

    /// Enum-valued settings: a name outside the setting's table is reported
    /// with the known names (serde then parses the known ones, once).
    fn check_names(&self, prefix: &str, table: &toml::Table) -> Result<(), SuiteError> {
        for doc in SETTINGS {
            if let Allowed::Named { what, names } = doc.allowed
                && let Some(toml::Value::String(v)) = table.get(doc.key)
                && !names().contains(&v.as_str())
            {
                return Err(self.unknown(&format!("{prefix}.{}", doc.key), what, v, &names()));
            }
        }
        Ok(())
    }

    /// At most 1000 `[[table]]` entries (the name checks below are quadratic).
    pub fn table_count(&self, table: &str, n: usize) -> Result<(), SuiteError> {
        if n > 1_000 {
            let allowed = format!("at most 1000 [[{table}]] tables");
            return Err(self.invalid(table, format!("({n} tables)"), &allowed));
        }
        Ok(())
    }

    /// Entry `i` of `[[table]]` has a valid name not used by an earlier entry.
    pub fn entry_name<'a>(
        &self,
        table: &str,
        i: usize,
        name: &str,
        mut earlier: impl Iterator<Item = &'a str>,
    ) -> Result<(), SuiteError> {
        let field = format!("{table}[{i}].name");
        if !valid_name(name) {
            return Err(self.invalid(
                &field,
                format!("{name:?}"),
                "1-64 characters of letters, digits, '-', '_' or '.', not starting with '.'",
            ));
        }
        if earlier.any(|x| x == name) {
            let allowed = format!("{table} names must be unique within a suite");
            return Err(self.invalid(&field, name, &allowed));
        }
        Ok(())
    }

    /// `Some(v)` with v < 1 or beyond u32 is an error with `what`.
    fn pos_int(&self, p: &str, field: &str, v: Option<i64>, what: &str) -> Result<(), SuiteError> {
        match v {
            Some(v) if v < 1 => Err(self.invalid(&format!("{p}.{field}"), v, what)),
            Some(v) if v > u32::MAX as i64 => {
                Err(self.invalid(&format!("{p}.{field}"), v, "at most 4294967295"))
            }
            _ => Ok(()),
        }
    }

    /// `Some(v)` for which `ok` fails is an error with `allowed`.
    fn real(
        &self,
        p: &str,
        field: &str,
        v: Option<f64>,
        ok: impl Fn(f64) -> bool,
        allowed: &str,
    ) -> Result<(), SuiteError> {
        match v {
            Some(x) if !ok(x) => Err(self.invalid(&format!("{p}.{field}"), x, allowed)),
            _ => Ok(()),
        }
    }

    fn check_training(&self, p: &str, s: &Settings) -> Result<(), SuiteError> {
        const BATCH: &str = "batch size must be an integer >= 1";
        const CAP: &str = "a sample cap must be an integer >= 1 (omit it to use the whole split)";
        self.pos_int(p, "epochs", s.epochs, "epochs must be an integer >= 1")?;
        self.pos_int(p, "batch_size", s.batch_size, BATCH)?;
        self.pos_int(p, "max_train_samples", s.max_train_samples, CAP)?;
        self.pos_int(p, "max_eval_samples", s.max_eval_samples, CAP)?;
        self.pos_int(p, "eval_batch_size", s.eval_batch_size, BATCH)?;
        self.real(
            p,
            "learning_rate",
            s.learning_rate,
            |lr| lr.is_finite() && lr > 0.0 && lr <= 10.0,
            "learning rate must be a finite number in (0, 10]",
        )?;
        let momentum = |m: f64| (0.0..1.0).contains(&m);
        self.real(
            p,
            "momentum",
            s.momentum,
            momentum,
            "momentum must be in [0, 1)",
        )?;
        self.real(
            p,
            "weight_decay",
            s.weight_decay,
            |w| w.is_finite() && w >= 0.0,
            "weight decay must be a finite number >= 0",
        )?;
        self.pos_int(p, "reference_batch_size", s.reference_batch_size, BATCH)?;
        self.pos_int(
            p,
            "accumulation_steps",
            s.accumulation_steps,
            "accumulation steps must be an integer >= 1 (1 = no accumulation)",
        )?;
        self.pos_int(
            p,
            "early_stopping_patience",
            s.early_stopping_patience,
            "patience is a number of evaluations >= 1",
        )?;
        self.pos_int(
            p,
            "eval_every_steps",
            s.eval_every_steps,
            "evaluate every N >= 1 optimizer steps (omit for once per epoch)",
        )?;
        self.pos_int(
            p,
            "loss_scale_growth_interval",
            s.loss_scale_growth_interval,
            "a number of clean steps >= 1",
        )?;
        self.real(
            p,
            "early_stopping_min_delta",
            s.early_stopping_min_delta,
            |d| d.is_finite() && d >= 0.0,
            "a finite number >= 0",
        )?;
        self.real(
            p,
            "target_accuracy",
            s.target_accuracy,
            |t| t > 0.0 && t <= 1.0,
            "an accuracy in (0, 1], e.g. 0.85",
        )?;
        self.real(
            p,
            "loss_scale_init",
            s.loss_scale_init,
            |x| x.is_finite() && x >= 1.0,
            "a finite number >= 1 (a power of two such as 65536)",
        )?;
        let watts = |w: i64| (1..=2000).contains(&w);
        self.real(
            p,
            "gpu_power_limit_w",
            s.gpu_power_limit_w.map(|w| w as f64),
            |w| watts(w as i64),
            "a GPU power limit in watts, 1..=2000",
        )?;
        self.real(
            p,
            "gpu_sm_clock_mhz",
            s.gpu_sm_clock_mhz.map(|w| w as f64),
            |m| (1.0..=10000.0).contains(&m),
            "an SM clock in MHz, 1..=10000",
        )?;
        self.check_sweeps(p, s)
    }

    /// The keys that expand one variant into several, and batch schedules.
    fn check_sweeps(&self, p: &str, s: &Settings) -> Result<(), SuiteError> {
        let watts = |w: i64| (1..=2000).contains(&w);
        if let Some(ws) = &s.gpu_power_limits_w {
            let field = format!("{p}.gpu_power_limits_w");
            if ws.is_empty() || ws.len() > 64 {
                let n = format!("({} limits)", ws.len());
                return Err(self.invalid(&field, n, "a list of 1 to 64 power limits"));
            }
            if let Some(w) = ws.iter().find(|&&w| !watts(w)) {
                return Err(self.invalid(&field, w, "power limits in watts, 1..=2000"));
            }
        }
        if !p.starts_with("variant[") {
            for (key, set) in [
                ("batch_sizes", s.batch_sizes.is_some()),
                ("gpu_power_limits_w", s.gpu_power_limits_w.is_some()),
                ("contexts", s.contexts.is_some()),
            ] {
                if set {
                    return Err(self.invalid(
                        &format!("{p}.{key}"),
                        "(set)",
                        &format!(
                            "`{key}` expands one [[variant]] into several; set it on a variant"
                        ),
                    ));
                }
            }
        }
        self.check_batch_schedule(p, s)?;
        if let Some(ts) = &s.contexts {
            let field = format!("{p}.contexts");
            if ts.is_empty() || ts.len() > 64 {
                let n = format!("({} contexts)", ts.len());
                return Err(self.invalid(&field, n, "a list of 1 to 64 context lengths"));
            }
            if let Some(t) = ts.iter().find(|&&t| !(1..=65_536).contains(&t)) {
                return Err(self.invalid(&field, t, "context lengths in 1..=65536"));
            }
        }
        if let Some(bs) = &s.batch_sizes {
            if bs.is_empty() {
                let field = format!("{p}.batch_sizes");
                return Err(self.invalid(&field, "[]", "list at least one batch size"));
            }
            if bs.len() > 64 {
                let field = format!("{p}.batch_sizes");
                let n = format!("({} sizes)", bs.len());
                return Err(self.invalid(&field, n, "at most 64 batch sizes"));
            }
            if let Some(b) = bs.iter().find(|&&b| b < 1 || b > u32::MAX as i64) {
                let field = format!("{p}.batch_sizes");
                return Err(self.invalid(&field, b, "batch sizes must be integers >= 1"));
            }
        }
        Ok(())
    }

    fn check_batch_schedule(&self, p: &str, s: &Settings) -> Result<(), SuiteError> {
        use crate::config::BatchRule;
        let Some(b) = &s.batch_schedule else {
            return Ok(());
        };
        let field = |k: &str| format!("{p}.batch_schedule.{k}");
        for (k, set) in [
            ("batch_size", s.batch_size.is_some()),
            ("batch_sizes", s.batch_sizes.is_some()),
        ] {
            if set {
                return Err(self.invalid(
                    &format!("{p}.{k}"),
                    "(with batch_schedule)",
                    "give either a fixed batch size or batch_schedule, not both",
                ));
            }
        }
        let min = if b.rule == BatchRule::Adaptive { 2 } else { 1 };
        if !(min..=u32::MAX as i64).contains(&b.start) {
            let allowed = if min == 2 {
                "an integer >= 2 (the adaptive rule splits each batch in two to measure gradient noise)"
            } else {
                "an integer >= 1"
            };
            return Err(self.invalid(&field("start"), b.start, allowed));
        }
        if b.end < b.start || b.end > u32::MAX as i64 {
            let allowed = format!(
                "an integer >= start ({}): schedules grow the batch",
                b.start
            );
            return Err(self.invalid(&field("end"), b.end, &allowed));
        }
        match (b.rule, b.over_epochs) {
            (BatchRule::Ramp, None) => Err(self.invalid(
                &field("over_epochs"),
                "(unset)",
                "a ramp needs over_epochs, the epochs it takes from start to end (>= 1)",
            )),
            (BatchRule::Ramp, Some(e)) if !(1..=100_000).contains(&e) => {
                Err(self.invalid(&field("over_epochs"), e, "an integer in 1..=100000"))
            }
            (BatchRule::Adaptive, Some(e)) => Err(self.invalid(
                &field("over_epochs"),
                e,
                "over_epochs belongs to rule = \"ramp\"; the adaptive rule grows when the measured noise scale says so",
            )),
            _ => Ok(()),
        }
    }

    fn check_techniques(&self, p: &str, s: &Settings) -> Result<(), SuiteError> {
        self.real(
            p,
            "prune_sparsity",
            s.prune_sparsity,
            |x| (0.0..1.0).contains(&x),
            "sparsity is the fraction of weights set to zero, in [0, 1)",
        )?;
        let after = s.prune_after_epochs;
        self.pos_int(p, "prune_after_epochs", after, "an epoch number >= 1")?;
        self.pos_int(p, "teacher_epochs", s.teacher_epochs, "an integer >= 1")?;
        self.real(
            p,
            "distill_temperature",
            s.distill_temperature,
            |t| t.is_finite() && t > 0.0 && t <= 100.0,
            "a temperature in (0, 100]",
        )?;
        let weight = |a: f64| (0.0..=1.0).contains(&a);
        self.real(
            p,
            "distill_alpha",
            s.distill_alpha,
            weight,
            "a weight in [0, 1]",
        )
    }

    fn check_model_size(&self, p: &str, s: &Settings) -> Result<(), SuiteError> {
        for (field, v, max) in [
            ("fc_width", s.fc_width, 65_536),
            ("d_model", s.d_model, 65_536),
            ("layers", s.layers, 1_024),
            ("heads", s.heads, 1_024),
            ("context", s.context, 65_536),
            ("attention_window", s.attention_window, 65_536),
            ("sparse_block", s.sparse_block, 64),
            ("prune_block", s.prune_block, 64),
            ("generate_tokens", s.generate_tokens, 65_536),
        ] {
            self.pos_int(p, field, v, "an integer >= 1")?;
            if let Some(x) = v
                && x > max
            {
                let allowed = format!("an integer in 1..={max}");
                return Err(self.invalid(&format!("{p}.{field}"), x, &allowed));
            }
        }
        for (field, v) in [("hidden", &s.hidden), ("channels", &s.channels)] {
            if let Some(v) = v
                && (v.is_empty() || v.iter().any(|&w| !(1..=65_536).contains(&w)))
            {
                return Err(self.invalid(
                    &format!("{p}.{field}"),
                    format!("{v:?}"),
                    "a non-empty list of widths in 1..=65536",
                ));
            }
        }
        Ok(())
    }
}

/// Names of suites, workloads and variants: they name folders and files, so
/// each must be one ordinary path component: 1-64 characters of letters,
/// digits, '-', '_' or '.', not starting with '.' (no `.`, `..` or hidden names).
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

pub(crate) use crate::util::{clip, clip_message};
