//! The report's title, the estimated-energy and shared-node warnings, and
//! the provenance table (host, device, meter, idle baseline, CO2e and water
//! settings).

use crate::analysis::Run;
use std::fmt::Write;

/// Title, the estimated-energy warning and the provenance table.
pub(super) fn header(o: &mut String, run: &Run) {
    let suite = run.records.first().map_or("?", |r| r.suite.as_str());
    let _ = writeln!(o, "# joulebench report: suite `{suite}`\n");
    let _ = writeln!(o, "Run folder: `{}`", run.dir.display());
    if run.modelled() {
        let _ = writeln!(
            o,
            "\n> **Energy in this run is ESTIMATED** (provenance `{}`): it is modelled from CPU utilisation and \
             memory × rated power, not measured by a hardware counter. Compare variants within the run; do \
             not quote the joules as measurements.\n",
            run.provenance()
        );
    }
    let shared = run
        .records
        .iter()
        .filter(|r| {
            r.placement
                .as_ref()
                .is_some_and(|p| p.shared_node_cpu_energy)
        })
        .count();
    if shared > 0 {
        let _ = writeln!(
            o,
            "\n> **{shared} trial(s) measured CPU energy with RAPL on a node shared with other jobs**: RAPL counts whole sockets, so their CPU joules include the other jobs' work. Submit with `--exclusive`.\n"
        );
    }
    if let Some(m) = &run.manifest {
        let _ = writeln!(o, "\n## Provenance\n");
        let _ = writeln!(o, "| item | value |\n|---|---|");
        let _ = writeln!(o, "| created | {} |", m.created_at);
        let _ = writeln!(
            o,
            "| joulebench | {} (git {} , {}) |",
            m.joulebench_version, m.git_commit, m.git_state
        );
        let _ = writeln!(o, "| candle | {} |", m.candle_version);
        let _ = writeln!(
            o,
            "| host | {} — {}, {} logical cores, {:.1} GiB, {} |",
            m.host.hostname,
            m.host.cpu_model,
            m.host.logical_cores,
            m.host.memory_bytes as f64 / (1u64 << 30) as f64,
            m.host.os
        );
        let _ = writeln!(o, "| device | {} |", m.device);
        for c in m.kernel_checks.iter().filter(|c| !c.passed) {
            let _ = writeln!(o, "| kernel {} ({}) | {} |", c.kernel, c.build, c.action);
        }
        if let Some(a) = &m.allocator {
            let _ = writeln!(o, "| allocator | {} |", a.describe());
        }
        if let Some(d) = &m.gpu_driver {
            let _ = writeln!(o, "| GPU driver | {d} |");
        }
        for g in &m.gpus {
            let _ = writeln!(
                o,
                "| GPU {} | {} (power limit {} W, {} °C at start) |",
                g.domain,
                g.name,
                g.power_limit_w.map_or("?".into(), |w| format!("{w:.0}")),
                g.temperature_c.map_or("?".into(), |t| t.to_string())
            );
        }
        shards_row(o, run);
        if !m.filters.is_empty() {
            let _ = writeln!(
                o,
                "| filters | a filtered run: {} (other workloads/variants were not run) |",
                m.filters
            );
        }
        let _ = writeln!(o, "| meter | {} |", m.meter.name);
        for d in &m.meter.domains {
            let _ = writeln!(
                o,
                "| domain `{}` | {} — {} |",
                d.domain,
                d.provenance.label(),
                d.method
            );
        }
        if let Some(c) = &m.meter.cpu {
            let _ = writeln!(
                o,
                "| CPU for the estimate | {}{}; TDP {}; threads {}; {} usable; {} |",
                c.model.as_deref().unwrap_or("(no model name)"),
                if c.virtualised { " (virtualised)" } else { "" },
                c.tdp_text(),
                c.threads_text(),
                c.vcpus,
                c.table
            );
        }
        for u in &m.unavailable_meters {
            let _ = writeln!(o, "| unavailable: {} | {} |", u.meter, u.reason);
        }
        let _ = writeln!(
            o,
            "| idle baseline | {} s before each trial (cool-down {} s) |",
            m.idle_seconds, m.cooldown_seconds
        );
        if let Some(i) = &m.impact {
            impact_rows(o, i);
        }
    }
}

/// The provenance table's row for a sharded run: shard folders, nodes, requeues.
fn shards_row(o: &mut String, run: &Run) {
    if !run.shards.is_empty() {
        let mut nodes: Vec<&str> = run
            .records
            .iter()
            .filter_map(|r| r.placement.as_ref().map(|p| p.hostname.as_str()))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        let restarted = run
            .records
            .iter()
            .filter(|r| r.placement.as_ref().is_some_and(|p| p.restart_count > 0))
            .count();
        let _ = writeln!(
            o,
            "| shards | a sharded run: {} shard folder(s) merged (the host above is shard {}'s); nodes {}; {} trial(s) recorded after a requeue |",
            run.shards.len(),
            run.shards[0],
            nodes.join(", "),
            restarted
        );
    }
}

/// The provenance table's rows for CO2e and water: intensity (annual and
/// hourly), dataset, PUE, WUE.
fn impact_rows(o: &mut String, i: &crate::impact::ImpactSettings) {
    let _ = writeln!(
        o,
        "| carbon intensity | {} ({}): {} gCO2e/kWh, {} — {} |",
        i.region.code,
        i.region.name,
        i.region.g_co2e_per_kwh,
        i.region.year.map_or("no year".into(), |y| y.to_string()),
        i.region.source
    );
    let _ = writeln!(o, "| carbon dataset | {} |", i.dataset);
    if let Some(h) = &i.hourly {
        let _ = writeln!(
            o,
            "| hourly intensity | {}: CO2e uses profile {} ({}, {}), each UTC hour of the run matched to the same calendar hour of {}; {}; licence {} |",
            match i.intensity {
                crate::impact::Intensity::Hourly => "on",
                crate::impact::Intensity::Annual => "off",
            },
            h.id,
            h.name,
            h.year,
            h.year,
            h.source,
            h.licence
        );
    }
    let _ = writeln!(o, "| PUE | {} |", i.pue);
    let _ = writeln!(
        o,
        "| water | on-site WUE {} L/kWh, off-site {} L/kWh |",
        i.wue_onsite_l_per_kwh, i.water_offsite_l_per_kwh
    );
}
