//! `[protocol]` (trial order, warm-up) and the `seeds` key of `[defaults]`:
//! a list of seeds, or `{ first, min, max, margin_pct }` for seeds added
//! until every comparison with the baseline is resolved.

use super::check::Ctx;
use super::settings::RawProtocol;
use super::{MAX_TRIALS, SuiteError};
use crate::config::protocol::{
    AdaptiveSeeds, DEFAULT_MARGIN_PCT, DEFAULT_WARMUP_STEPS, Order, Protocol,
};
use serde::Deserialize;

/// The suite's seeds and protocol.
pub(super) fn protocol(
    cx: &Ctx,
    raw: RawProtocol,
    seeds: Option<toml::Value>,
) -> Result<(Vec<u64>, Protocol), SuiteError> {
    let order = match raw.order.as_deref() {
        None => Order::Shuffled,
        Some(o) => Order::parse(o)
            .ok_or_else(|| cx.unknown("protocol.order", Order::WHAT, o, &Order::names()))?,
    };
    let order_seed = match raw.order_seed {
        None => 0,
        Some(s) if s >= 0 => s as u64,
        Some(s) => return Err(cx.invalid("protocol.order_seed", s, "a seed, an integer >= 0")),
    };
    let warmup_steps = match raw.warmup_steps {
        None => DEFAULT_WARMUP_STEPS,
        Some(n) if (0..=100_000).contains(&n) => n as u32,
        Some(n) => {
            let allowed = "training steps of the warm-up before each workload's first trial, 0..=100000 (0: none)";
            return Err(cx.invalid("protocol.warmup_steps", n, allowed));
        }
    };
    let (seeds, adaptive) = match seeds {
        None => (vec![0], None),
        Some(toml::Value::Table(t)) => {
            let a = adaptive(cx, t)?;
            ((a.first..a.first + a.max as u64).collect(), Some(a))
        }
        Some(v) => (list(cx, v)?, None),
    };
    Ok((
        seeds,
        Protocol {
            order,
            order_seed,
            warmup_steps,
            adaptive,
        },
    ))
}

/// `seeds = [1, 2, 3]`.
fn list(cx: &Ctx, v: toml::Value) -> Result<Vec<u64>, SuiteError> {
    let v = Vec::<i64>::deserialize(v.clone()).map_err(|_| {
        cx.invalid(
            "defaults.seeds",
            super::check::clip(&v.to_string()),
            "a list of seeds, e.g. [1, 2, 3], or { first = 1, min = 3, max = 10, margin_pct = 5 } to add seeds until each comparison is resolved",
        )
    })?;
    if v.is_empty() {
        return Err(cx.invalid(
            "defaults.seeds",
            "[]",
            "give at least one seed, e.g. seeds = [1, 2, 3]",
        ));
    }
    if v.len() > MAX_TRIALS {
        return Err(cx.invalid(
            "defaults.seeds",
            format!("({} seeds)", v.len()),
            &format!("at most {MAX_TRIALS} seeds"),
        ));
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in v {
        if s < 0 {
            return Err(cx.invalid("defaults.seeds", s, "seeds are integers >= 0"));
        }
        if !seen.insert(s) {
            return Err(cx.invalid(
                "defaults.seeds",
                s,
                "each seed may appear once (use `repeats` to repeat a seed)",
            ));
        }
        out.push(s as u64);
    }
    Ok(out)
}

/// `seeds = { first = 1, min = 3, max = 10, margin_pct = 5 }`.
fn adaptive(cx: &Ctx, t: toml::Table) -> Result<AdaptiveSeeds, SuiteError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        first: Option<i64>,
        min: Option<i64>,
        max: i64,
        margin_pct: Option<f64>,
    }
    let shown = super::check::clip(&t.to_string());
    let r = Raw::deserialize(toml::Value::Table(t)).map_err(|e| {
        cx.invalid(
            "defaults.seeds",
            &shown,
            &format!(
                "{}; adaptive seeds are {{ first = 1, min = 3, max = 10, margin_pct = 5 }} (max required)",
                e.message()
            ),
        )
    })?;
    let first = r.first.unwrap_or(1);
    if first < 0 {
        return Err(cx.invalid("defaults.seeds.first", first, "a seed, an integer >= 0"));
    }
    let min = r.min.unwrap_or(3);
    if !(2..=MAX_TRIALS as i64).contains(&min) {
        return Err(cx.invalid(
            "defaults.seeds.min",
            min,
            "at least 2 seeds (a paired interval needs two pairs)",
        ));
    }
    if !(min..=10_000).contains(&r.max) {
        let allowed = format!("an integer from min ({min}) to 10000");
        return Err(cx.invalid("defaults.seeds.max", r.max, &allowed));
    }
    let margin_pct = r.margin_pct.unwrap_or(DEFAULT_MARGIN_PCT);
    if !(margin_pct.is_finite() && margin_pct > 0.0 && margin_pct <= 100.0) {
        return Err(cx.invalid(
            "defaults.seeds.margin_pct",
            margin_pct,
            "the smallest change that matters, a percentage in (0, 100]",
        ));
    }
    Ok(AdaptiveSeeds {
        first: first as u64,
        min: min as usize,
        max: r.max as usize,
        margin_pct,
    })
}
