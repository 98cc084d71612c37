//! Which share of a plan this process runs, and under which job: `--shard K/N`,
//! or a Slurm array task, or a Kubernetes Indexed Job's completion index; the
//! shared run folder the shards write into; and the placement each record
//! carries (host, job, array task, restarts, GPUs, exclusivity).

use crate::gpu::api::GpuState;
use crate::meter::MeterInfo;
use crate::record::{Placement, Shard};
use std::path::{Path, PathBuf};

/// The most shards a plan may be split into (a plan holds at most 100,000 trials).
pub const MAX_SHARDS: u32 = 100_000;

/// Environment variable naming the shared run folder (Kubernetes, or by hand).
pub const RUN_DIR_ENV: &str = "JOULEBENCH_RUN_DIR";
/// Environment variable giving the shard count next to `JOB_COMPLETION_INDEX`
/// (an Indexed Job does not export its `completions`).
pub const SHARDS_ENV: &str = "JOULEBENCH_SHARDS";

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("{what} {value:?}: {allowed}")]
    Invalid {
        what: String,
        value: String,
        allowed: String,
    },
    #[error("{var} is set ({value}) but {missing} is not: {why}")]
    Missing {
        var: &'static str,
        value: String,
        missing: &'static str,
        why: &'static str,
    },
    #[error(
        "a sharded run needs one run folder all shards write into: give --run-dir DIR (or set {RUN_DIR_ENV}); under a Slurm array it defaults to <out>/<suite>/slurm-<array job id>"
    )]
    NoRunDir,
    #[error(
        "--resume and sharding do not mix: a shard resumes its own file in --run-dir by itself"
    )]
    ResumeAndShard,
}

/// One shard of a plan and the run folder every shard writes into.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedRun {
    pub shard: ShardChoice,
    pub dir: PathBuf,
}

/// A shard and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardChoice {
    pub shard: Shard,
    /// `--shard`, `slurm-array` or `k8s-indexed-job`.
    pub source: &'static str,
}

fn invalid(what: impl Into<String>, value: &str, allowed: impl Into<String>) -> ShardError {
    ShardError::Invalid {
        what: what.into(),
        value: crate::util::clip(value),
        allowed: allowed.into(),
    }
}

fn number(what: &str, value: &str) -> Result<u32, ShardError> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| invalid(what, value, "a whole number 0..=4294967295"))
}

fn shard(index: u32, count: u32, what: &str, value: &str) -> Result<Shard, ShardError> {
    if count == 0 || count > MAX_SHARDS {
        return Err(invalid(
            what,
            value,
            format!("the shard count must be in 1..={MAX_SHARDS}"),
        ));
    }
    if index >= count {
        return Err(invalid(
            what,
            value,
            format!(
                "the shard index must be below the count ({count}): 0..={}",
                count - 1
            ),
        ));
    }
    Ok(Shard { index, count })
}

/// Parses `K/N` (shard K of N, counting from 0).
pub fn parse(value: &str) -> Result<Shard, ShardError> {
    let allowed = "K/N with 0 <= K < N, e.g. 0/4";
    let Some((k, n)) = value.split_once('/') else {
        return Err(invalid("--shard", value, allowed));
    };
    let (Ok(k), Ok(n)) = (k.trim().parse::<u32>(), n.trim().parse::<u32>()) else {
        return Err(invalid("--shard", value, allowed));
    };
    shard(k, n, "--shard", value)
}

/// The shard: `--shard` first, then a Slurm array task
/// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`, over `SLURM_ARRAY_TASK_STEP`,
/// of `SLURM_ARRAY_TASK_COUNT`), then a Kubernetes Indexed Job
/// (`JOB_COMPLETION_INDEX` of `JOULEBENCH_SHARDS`). None: run the whole plan.
pub fn resolve(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ShardChoice>, ShardError> {
    if let Some(f) = flag {
        return Ok(Some(ShardChoice {
            shard: parse(f)?,
            source: "--shard",
        }));
    }
    if let Some(id) = env("SLURM_ARRAY_TASK_ID") {
        let id_n = number("SLURM_ARRAY_TASK_ID", &id)?;
        let Some(count) = env("SLURM_ARRAY_TASK_COUNT") else {
            return Err(ShardError::Missing {
                var: "SLURM_ARRAY_TASK_ID",
                value: id,
                missing: "SLURM_ARRAY_TASK_COUNT",
                why: "the shard count comes from it (Slurm sets both in array jobs)",
            });
        };
        let n = number("SLURM_ARRAY_TASK_COUNT", &count)?;
        let min = env("SLURM_ARRAY_TASK_MIN")
            .map(|m| number("SLURM_ARRAY_TASK_MIN", &m))
            .transpose()?
            .unwrap_or(0);
        let step = env("SLURM_ARRAY_TASK_STEP")
            .map(|m| number("SLURM_ARRAY_TASK_STEP", &m))
            .transpose()?
            .unwrap_or(1)
            .max(1);
        let value = format!("{id} (min {min}, step {step}, count {n})");
        let contiguous = "a contiguous array such as --array=0-N or --array=0-N:S (task ids min + k*step for k < count)";
        if id_n < min || !(id_n - min).is_multiple_of(step) {
            return Err(invalid("SLURM_ARRAY_TASK_ID", &value, contiguous));
        }
        let k = (id_n - min) / step;
        if k >= n {
            return Err(invalid("SLURM_ARRAY_TASK_ID", &value, contiguous));
        }
        return Ok(Some(ShardChoice {
            shard: shard(k, n, "SLURM_ARRAY_TASK_ID", &value)?,
            source: "slurm-array",
        }));
    }
    if let Some(idx) = env("JOB_COMPLETION_INDEX") {
        let k = number("JOB_COMPLETION_INDEX", &idx)?;
        let Some(count) = env(SHARDS_ENV) else {
            return Err(ShardError::Missing {
                var: "JOB_COMPLETION_INDEX",
                value: idx,
                missing: SHARDS_ENV,
                why: "set it to the Indexed Job's completions (see scripts/k8s-indexed-job.yaml)",
            });
        };
        let n = number(SHARDS_ENV, &count)?;
        return Ok(Some(ShardChoice {
            shard: shard(k, n, "JOB_COMPLETION_INDEX", &format!("{idx} of {n}"))?,
            source: "k8s-indexed-job",
        }));
    }
    Ok(None)
}

/// The run folder a shard writes into: `--run-dir`, else `JOULEBENCH_RUN_DIR`,
/// else (in a Slurm array) `<results root>/<suite>/slurm-<SLURM_ARRAY_JOB_ID>`.
pub fn run_dir(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    results_root: &Path,
    suite: &str,
) -> Result<PathBuf, ShardError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = env(RUN_DIR_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(job) = env("SLURM_ARRAY_JOB_ID") {
        let n = number("SLURM_ARRAY_JOB_ID", &job)?;
        return Ok(results_root.join(suite).join(format!("slurm-{n}")));
    }
    Err(ShardError::NoRunDir)
}

/// The process environment, as `resolve` and `placement` read it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Where this process runs, for every record it writes. `cpu_counter` says
/// whether the meter reads a whole-socket CPU counter (RAPL), which other
/// jobs on a shared node add to.
pub fn placement(
    env: &dyn Fn(&str) -> Option<String>,
    shard: Option<ShardChoice>,
    gpus: &[GpuState],
    meter: &MeterInfo,
) -> Placement {
    let host = crate::runfolder::manifest::Host::detect();
    let num = |v: &str| env(v).and_then(|s| s.trim().parse::<u32>().ok());
    let (exclusive, basis) = exclusivity(env, host.logical_cores);
    let cpu_counter = meter.domains.iter().any(|d| d.meter == "rapl");
    let shared = cpu_counter && exclusive == Some(false);
    if shared {
        tracing::warn!(
            "RAPL measures whole CPU sockets, and this job shares its node ({}): CPU joules include other jobs' work; submit with --exclusive",
            basis.as_deref().unwrap_or("")
        );
    }
    Placement {
        hostname: host.hostname,
        pid: std::process::id(),
        shard: shard.map(|s| s.shard),
        shard_source: shard.map(|s| s.source.to_string()),
        job_id: env("SLURM_JOB_ID"),
        array_job_id: env("SLURM_ARRAY_JOB_ID"),
        array_task_id: num("SLURM_ARRAY_TASK_ID"),
        completion_index: num("JOB_COMPLETION_INDEX"),
        restart_count: num("SLURM_RESTART_COUNT").unwrap_or(0),
        slurm_job_gpus: env("SLURM_JOB_GPUS"),
        cuda_visible_devices: env("CUDA_VISIBLE_DEVICES"),
        gpu_uuids: gpus.iter().filter_map(|g| g.uuid.clone()).collect(),
        exclusive,
        exclusive_basis: basis,
        shared_node_cpu_energy: shared,
    }
}

/// Whether a Slurm job has its node to itself: `scontrol show job` says
/// `OverSubscribe=NO` (submitted with `--exclusive`), or the job holds every
/// CPU of the node (`SLURM_CPUS_ON_NODE`). Unknown outside Slurm.
fn exclusivity(
    env: &dyn Fn(&str) -> Option<String>,
    node_cpus: usize,
) -> (Option<bool>, Option<String>) {
    let Some(job) = env("SLURM_JOB_ID") else {
        return (None, None);
    };
    if job.chars().all(|c| c.is_ascii_digit())
        && let Some(text) = scontrol_job(&job)
        && let Some(v) = text
            .split_whitespace()
            .find_map(|f| f.strip_prefix("OverSubscribe="))
        && v == "NO"
    {
        return (
            Some(true),
            Some("scontrol: OverSubscribe=NO (--exclusive)".into()),
        );
    }
    match env("SLURM_CPUS_ON_NODE").and_then(|c| c.trim().parse::<usize>().ok()) {
        Some(c) if node_cpus > 0 => (
            Some(c >= node_cpus),
            Some(format!(
                "SLURM_CPUS_ON_NODE={c} of the node's {node_cpus} logical CPUs; not submitted with --exclusive"
            )),
        ),
        _ => (
            None,
            Some("not known: no OverSubscribe=NO and no SLURM_CPUS_ON_NODE".into()),
        ),
    }
}

/// `scontrol show job -o JOB`, if scontrol answers within a few seconds.
fn scontrol_job(job: &str) -> Option<String> {
    let mut child = std::process::Command::new("scontrol")
        .args(["show", "job", "-o", job])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => break,
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if start.elapsed().as_secs() >= 5 => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn sh(k: u32, n: u32) -> Shard {
        Shard { index: k, count: n }
    }

    #[test]
    fn the_flag_parses_and_refuses_out_of_range() {
        assert_eq!(parse("1/4").unwrap(), sh(1, 4));
        assert_eq!(parse(" 0 / 1 ").unwrap(), sh(0, 1));
        for bad in ["4/4", "1/0", "a/b", "1", "-1/3", "1/2/3", "", "0/100001"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("--shard"), "{bad}: {e}");
        }
        assert!(parse("4/4").unwrap_err().to_string().contains("0..=3"));
    }

    #[test]
    fn slurm_array_variables_give_the_shard() {
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        let c = resolve(None, &e).unwrap().unwrap();
        assert_eq!((c.shard, c.source), (sh(3, 4), "slurm-array"));
        // --array=1-4 and --array=0-6:2.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ]);
        assert_eq!(resolve(None, &e).unwrap().unwrap().shard, sh(0, 4));
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]);
        assert_eq!(resolve(None, &e).unwrap().unwrap().shard, sh(3, 4));
        // The flag wins over the environment.
        assert_eq!(resolve(Some("0/2"), &e).unwrap().unwrap().shard, sh(0, 2));
        // Not contiguous, missing count, not a number.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert!(
            resolve(None, &e)
                .unwrap_err()
                .to_string()
                .contains("contiguous")
        );
        let e = env(&[("SLURM_ARRAY_TASK_ID", "1")]);
        assert!(
            resolve(None, &e)
                .unwrap_err()
                .to_string()
                .contains("SLURM_ARRAY_TASK_COUNT is not")
        );
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "x"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert!(
            resolve(None, &e)
                .unwrap_err()
                .to_string()
                .contains("SLURM_ARRAY_TASK_ID \"x\"")
        );
    }

    #[test]
    fn kubernetes_indexed_jobs_need_the_count() {
        let e = env(&[("JOB_COMPLETION_INDEX", "2"), (SHARDS_ENV, "3")]);
        let c = resolve(None, &e).unwrap().unwrap();
        assert_eq!((c.shard, c.source), (sh(2, 3), "k8s-indexed-job"));
        let e = env(&[("JOB_COMPLETION_INDEX", "2")]);
        assert!(
            resolve(None, &e)
                .unwrap_err()
                .to_string()
                .contains(SHARDS_ENV)
        );
        let e = env(&[("JOB_COMPLETION_INDEX", "3"), (SHARDS_ENV, "3")]);
        assert!(resolve(None, &e).is_err());
        assert!(resolve(None, &env(&[])).unwrap().is_none());
    }

    #[test]
    fn the_run_folder_comes_from_the_flag_the_variable_or_the_array_job() {
        let root = Path::new("results");
        let e = env(&[("SLURM_ARRAY_JOB_ID", "77")]);
        assert_eq!(
            run_dir(None, &e, root, "quick").unwrap(),
            Path::new("results/quick/slurm-77")
        );
        let e2 = env(&[("SLURM_ARRAY_JOB_ID", "77"), (RUN_DIR_ENV, "/shared/r")]);
        assert_eq!(
            run_dir(None, &e2, root, "q").unwrap(),
            Path::new("/shared/r")
        );
        assert_eq!(
            run_dir(Some(Path::new("x")), &e2, root, "q").unwrap(),
            Path::new("x")
        );
        assert!(matches!(
            run_dir(None, &env(&[]), root, "q"),
            Err(ShardError::NoRunDir)
        ));
        assert!(run_dir(None, &env(&[("SLURM_ARRAY_JOB_ID", "../x")]), root, "q").is_err());
    }

    #[test]
    fn every_plan_index_belongs_to_exactly_one_shard() {
        for n in 1..7u32 {
            for i in 0..50usize {
                let owners = (0..n).filter(|&k| sh(k, n).owns(i)).count();
                assert_eq!(owners, 1);
            }
        }
    }
}
