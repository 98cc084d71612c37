//! Expansion: `batch_sizes`, `gpu_power_limits_w` and `contexts` variants
//! into one variant per value (`<name>-b<size>-p<watts>-t<T>`), the suite
//! into its ordered plan, and the command line's workload/variant filters.

use super::check::Ctx;
use super::settings::{RawEntry, Settings};
use super::{Suite, SuiteError, Variant};
use crate::config::{Plan, TrialKey, TrialSpec};

/// The `[[variant]]` tables, checked, with `batch_sizes` expanded into one
/// variant per size (`<name>-b<size>`); none at all gives `baseline`.
pub(super) fn variants(cx: &Ctx, raw: Vec<RawEntry>) -> Result<Vec<Variant>, SuiteError> {
    cx.table_count("variant", raw.len())?;
    let mut variants: Vec<Variant> = Vec::new();
    for (i, v) in raw.into_iter().enumerate() {
        // The name first, then the model, then uniqueness: the order errors were always reported in.
        cx.entry_name("variant", i, &v.name, std::iter::empty())?;
        if v.model.is_some() {
            return Err(cx.invalid(
                &format!("variant[{}].model", v.name),
                v.model.as_deref().unwrap_or_default(),
                "a variant changes techniques, not the model; set `model` on a [[workload]]",
            ));
        }
        cx.entry_name(
            "variant",
            i,
            &v.name,
            variants.iter().map(|x| x.name.as_str()),
        )?;
        let settings = cx.settings(&format!("variant[{}]", v.name), v.settings)?;
        if settings.batch_sizes.is_some() && settings.batch_size.is_some() {
            return Err(cx.invalid(
                &format!("variant[{}].batch_sizes", v.name),
                "(with batch_size)",
                "give either batch_size or batch_sizes, not both",
            ));
        }
        if settings.gpu_power_limits_w.is_some() && settings.gpu_power_limit_w.is_some() {
            return Err(cx.invalid(
                &format!("variant[{}].gpu_power_limits_w", v.name),
                "(with gpu_power_limit_w)",
                "give either gpu_power_limit_w or gpu_power_limits_w, not both",
            ));
        }
        if settings.contexts.is_some() && settings.context.is_some() {
            return Err(cx.invalid(
                &format!("variant[{}].contexts", v.name),
                "(with context)",
                "give either context or contexts, not both",
            ));
        }
        // Batch sizes, then power limits, then contexts: `<name>-b<size>-p<watts>-t<T>`.
        let axis = |v: &Option<Vec<i64>>| match v {
            Some(v) => v.iter().copied().map(Some).collect(),
            None => vec![None],
        };
        let (sizes, limits, contexts) = (
            axis(&settings.batch_sizes),
            axis(&settings.gpu_power_limits_w),
            axis(&settings.contexts),
        );
        for b in &sizes {
            for w in &limits {
                for t in &contexts {
                    let mut name = v.name.clone();
                    let mut s = Settings {
                        batch_sizes: None,
                        gpu_power_limits_w: None,
                        contexts: None,
                        ..settings.clone()
                    };
                    if let Some(b) = b {
                        name = format!("{name}-b{b}");
                        s.batch_size = Some(*b);
                    }
                    if let Some(w) = w {
                        name = format!("{name}-p{w}");
                        s.gpu_power_limit_w = Some(*w);
                    }
                    if let Some(t) = t {
                        name = format!("{name}-t{t}");
                        s.context = Some(*t);
                    }
                    if variants.iter().any(|x| x.name == name) {
                        let (field, value) = match (b, w, t) {
                            (_, _, Some(t)) => ("contexts", *t),
                            (_, Some(w), None) => ("gpu_power_limits_w", *w),
                            (Some(b), None, None) => ("batch_sizes", *b),
                            (None, None, None) => ("name", 0),
                        };
                        return Err(cx.invalid(
                            &format!("variant[{}].{field}", v.name),
                            value,
                            "each value may appear once (and expanded names must not clash with other variants)",
                        ));
                    }
                    variants.push(Variant { name, settings: s });
                }
            }
        }
    }
    if variants.is_empty() {
        variants.push(Variant {
            name: "baseline".into(),
            settings: Settings::default(),
        });
    }
    Ok(variants)
}

impl Suite {
    /// Expands the suite into its ordered plan of trials.
    ///
    /// Order: workload, then seed, then repeat, then variant — so the variants of
    /// one seed run back to back and paired comparisons see the same machine state.
    pub fn plan(&self) -> Result<Plan, SuiteError> {
        let mut trials = Vec::new();
        for w in &self.workloads {
            for &seed in &self.seeds {
                for repeat in 0..self.repeats {
                    for v in &self.variants {
                        let config = self.resolve(w, v)?;
                        trials.push(TrialSpec {
                            index: trials.len(),
                            key: TrialKey {
                                workload: w.name.clone(),
                                variant: v.name.clone(),
                                seed,
                                repeat,
                            },
                            config,
                        });
                    }
                }
            }
        }
        Ok(Plan {
            suite: self.name.clone(),
            trials,
        })
    }

    /// Restricts the suite to some workloads and/or variants (CLI filters).
    pub fn select(&mut self, workloads: &[String], variants: &[String]) -> Result<(), SuiteError> {
        let cx = Ctx { path: &self.path };
        for w in workloads {
            if !self.workloads.iter().any(|x| &x.name == w) {
                let names: Vec<&str> = self.workloads.iter().map(|x| x.name.as_str()).collect();
                return Err(cx.unknown("--workload", "workload", w, &names));
            }
        }
        for v in variants {
            if !self.variants.iter().any(|x| &x.name == v) {
                let names: Vec<&str> = self.variants.iter().map(|x| x.name.as_str()).collect();
                return Err(cx.unknown("--variant", "variant", v, &names));
            }
        }
        if !workloads.is_empty() {
            self.workloads.retain(|x| workloads.contains(&x.name));
        }
        if !variants.is_empty() {
            self.variants.retain(|x| variants.contains(&x.name));
        }
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        };
        self.filters = super::Filters {
            workloads: sorted(workloads),
            variants: sorted(variants),
        };
        Ok(())
    }
}
