//! Checking a suite's values where they were written: every error names the
//! file, the field (as a path such as `variant[fast].batch_size`), the value
//! and what is allowed.

use super::SuiteError;
use super::settings::{Allowed, SETTINGS, Settings};
use crate::measure::MeasureSettings;
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
        self.check_table(prefix, &s)?;
        self.check_sweeps(prefix, &s)?;
        Ok(s)
    }

    /// `[meter]` and `[impact]` into the measurement settings: a key the
    /// table does not have, a value of the wrong type or out of what it
    /// allows is an error naming `meter.KEY` or `impact.KEY`.
    pub fn measurement(
        &self,
        meter: toml::Table,
        impact: toml::Table,
    ) -> Result<MeasureSettings, SuiteError> {
        fn section<T: serde::de::DeserializeOwned>(
            cx: &Ctx,
            name: &str,
            table: toml::Table,
        ) -> Result<T, SuiteError> {
            for spec in crate::measure::SPECS.iter().filter(|s| s.section == name) {
                if let crate::measure::Check::Named(names) = spec.check
                    && let Some(toml::Value::String(v)) = table.get(spec.key)
                    && !names().contains(&v.as_str())
                {
                    let what = crate::config::MeterChoice::WHAT;
                    return Err(cx.unknown(&format!("{name}.{}", spec.key), what, v, &names()));
                }
            }
            T::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
                let culprit = table.iter().find(|(k, v)| {
                    let mut one = toml::Table::new();
                    one.insert((*k).clone(), (*v).clone());
                    T::deserialize(toml::Value::Table(one)).is_err()
                });
                cx.parse_error(match culprit {
                    Some((k, v)) => format!(
                        "field `{name}.{k}` = {}: {}",
                        clip(&v.to_string()),
                        clip_message(e.message())
                    ),
                    None => format!("in `[{name}]`: {}", clip_message(e.message())),
                })
            })
        }
        let m = MeasureSettings {
            meter: section(self, "meter", meter)?,
            impact: section(self, "impact", impact)?,
        };
        m.check()
            .map_err(|e| self.invalid(&e.key(), &e.value, &e.allowed))?;
        Ok(m)
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

    /// Every value against what the settings table allows for its key.
    fn check_table(&self, p: &str, s: &Settings) -> Result<(), SuiteError> {
        for (doc, v) in s.values() {
            if let Some(v) = v
                && let Some(why) = doc.allowed.refuses(&v)
            {
                return Err(self.invalid(&format!("{p}.{}", doc.key), &v, &why));
            }
        }
        Ok(())
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
