//! The report's "Validity" section and the `validity` columns of
//! `trials.csv`: every trial's verdict (`meter::validity`) with the rules
//! that flagged it or made it invalid. Invalid trials are left out of every
//! figure of the report; flagged ones are counted and listed here.

use crate::analysis::aggregate::TrialMetrics;
use crate::analysis::study::{Ctx, Study};
use crate::meter::validity::Verdict;
use crate::record::TrialRecord;
use std::fmt::Write;

/// Trials that are not plainly valid, and why.
pub struct Validity;

impl Study for Validity {
    fn name(&self) -> &'static str {
        "validity"
    }

    fn section(&self, ctx: &Ctx, o: &mut String) {
        let judged: Vec<&TrialRecord> = ctx
            .run
            .records
            .iter()
            .filter(|r| {
                r.validity
                    .as_ref()
                    .is_some_and(|v| v.verdict != Verdict::Valid)
            })
            .collect();
        if judged.is_empty() {
            return;
        }
        let count = |v: Verdict| {
            judged
                .iter()
                .filter(|r| r.validity.as_ref().is_some_and(|x| x.verdict == v))
                .count()
        };
        let _ = writeln!(
            o,
            "\n## Validity\n\n{} trial(s) invalid (left out of every figure above) and {} flagged (counted, with a caveat). \
             The rules, their sources and thresholds are in `src/meter/validity.rs`.\n",
            count(Verdict::Invalid),
            count(Verdict::Flagged)
        );
        let _ = writeln!(
            o,
            "| trial | verdict | rule | window | finding |\n|---|---|---|---|---|"
        );
        for r in judged {
            let Some(v) = &r.validity else { continue };
            for f in v.findings.iter().filter(|f| f.verdict != Verdict::Valid) {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} |",
                    r.key,
                    f.verdict.label(),
                    f.rule.name(),
                    f.window.as_deref().unwrap_or("-"),
                    f.detail.replace('|', "/")
                );
            }
        }
    }

    fn csv_columns(&self) -> &'static [&'static str] {
        &["validity", "validity_rules"]
    }

    fn csv_cells(&self, r: &TrialRecord, _: &TrialMetrics) -> Vec<String> {
        match &r.validity {
            None => vec![String::new(), String::new()],
            Some(v) => {
                let mut rules: Vec<&str> = Vec::new();
                for f in v.findings.iter().filter(|f| f.verdict != Verdict::Valid) {
                    if !rules.contains(&f.rule.name()) {
                        rules.push(f.rule.name());
                    }
                }
                vec![v.verdict.label().to_string(), rules.join(";")]
            }
        }
    }
}
