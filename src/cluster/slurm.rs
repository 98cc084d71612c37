//! `joulebench slurm`: a ready sbatch array script for a sharded run, and
//! its submission. Every choice is visible in the script; values are checked
//! here and shell-quoted there, so nothing a user types runs as shell code.

use crate::cluster::shard::MAX_SHARDS;
use std::path::{Path, PathBuf};

/// Name of the script inside the run folder.
pub const SCRIPT_FILE: &str = "slurm.sbatch";

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{flag} {value:?}: {allowed}")]
    Invalid {
        flag: &'static str,
        value: String,
        allowed: String,
    },
    #[error("cannot run sbatch: {0} (is this a Slurm login node with sbatch on PATH?)")]
    Spawn(std::io::Error),
    #[error("sbatch refused the script (exit {code}): {stderr}")]
    Refused { code: String, stderr: String },
    #[error("sbatch answered {0:?}, not a job id")]
    Answer(String),
}

/// What the array asks of Slurm.
#[derive(Debug, Clone, PartialEq)]
pub struct SbatchOptions {
    pub job_name: String,
    pub shards: u32,
    pub max_parallel: Option<u32>,
    pub partition: Option<String>,
    pub cpus_per_task: u32,
    pub gpus_per_task: Option<u32>,
    pub time: String,
    /// `--exclusive`: the whole node per task (needed for RAPL's per-socket counters).
    pub exclusive: bool,
}

fn invalid(flag: &'static str, value: impl ToString, allowed: impl Into<String>) -> SlurmError {
    SlurmError::Invalid {
        flag,
        value: crate::util::clip(&value.to_string()),
        allowed: allowed.into(),
    }
}

/// Whether `t` is one of sbatch's `--time` forms: `M`, `M:S`, `H:M:S`,
/// `D-H`, `D-H:M`, `D-H:M:S` (digits only) or `UNLIMITED`.
fn valid_time(t: &str) -> bool {
    if t == "UNLIMITED" || t == "INFINITE" {
        return true;
    }
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    days.is_none_or(digits) && parts.iter().all(|p| digits(p)) && (1..=3).contains(&parts.len())
}

impl SbatchOptions {
    /// Checks every value against what sbatch accepts and `trials` (a shard
    /// without a trial would idle a node).
    pub fn check(&self, trials: usize) -> Result<(), SlurmError> {
        let max = (trials as u64).min(MAX_SHARDS as u64) as u32;
        if self.shards == 0 || self.shards > max {
            return Err(invalid(
                "--shards",
                self.shards,
                format!("1..={max} (the plan has {trials} trial(s); each shard needs one)"),
            ));
        }
        if let Some(p) = self.max_parallel
            && (p == 0 || p > self.shards)
        {
            return Err(invalid(
                "--max-parallel",
                p,
                format!("1..={} (the number of shards)", self.shards),
            ));
        }
        if let Some(p) = &self.partition
            && (p.is_empty()
                || p.len() > 128
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.,-".contains(&b)))
        {
            return Err(invalid(
                "--partition",
                p,
                "a partition name (or comma-separated names): letters, digits, _ . , -",
            ));
        }
        if !(1..=4096).contains(&self.cpus_per_task) {
            return Err(invalid("--cpus-per-task", self.cpus_per_task, "1..=4096"));
        }
        if let Some(g) = self.gpus_per_task
            && !(1..=64).contains(&g)
        {
            return Err(invalid("--gpus-per-task", g, "1..=64"));
        }
        if !valid_time(&self.time) {
            return Err(invalid(
                "--time",
                &self.time,
                "sbatch's forms: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or UNLIMITED",
            ));
        }
        Ok(())
    }
}

/// `s` quoted for bash, byte for byte: plain words as they are, other
/// UTF-8 text in single quotes, and bytes that are not UTF-8 (a path may
/// hold any) as `$'\xNN'`, so the job sees exactly the bytes given.
pub fn sh_quote(s: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = s.as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(t)
            if !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b)) =>
        {
            t.to_string()
        }
        Ok(t) if !t.chars().any(char::is_control) => {
            format!("'{}'", t.replace('\'', "'\\''"))
        }
        _ => {
            let mut q = String::from("$'");
            for &b in bytes {
                match b {
                    b'\\' | b'\'' => q.push_str(&format!("\\{}", b as char)),
                    0x20..=0x7e => q.push(b as char),
                    _ => q.push_str(&format!("\\x{b:02x}")),
                }
            }
            q.push('\'');
            q
        }
    }
}

/// What the script runs.
pub struct ScriptInputs<'a> {
    pub options: &'a SbatchOptions,
    pub suite_name: &'a str,
    pub trials: usize,
    /// Absolute paths.
    pub binary: &'a Path,
    pub suite_file: &'a Path,
    pub run_dir: &'a Path,
    pub workdir: &'a Path,
    /// Further `joulebench run` arguments (meter, data, filters).
    pub run_args: &'a [std::ffi::OsString],
}

/// The sbatch array script.
pub fn script(i: &ScriptInputs) -> String {
    let o = i.options;
    let q = |p: &Path| sh_quote(p.as_os_str());
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line("#!/bin/bash".into());
    line(format!(
        "#SBATCH --job-name={}",
        sh_quote(format!("jb-{}", o.job_name).as_ref())
    ));
    line(format!(
        "#SBATCH --array=0-{}{}",
        o.shards - 1,
        o.max_parallel.map_or(String::new(), |p| format!("%{p}"))
    ));
    line(format!("#SBATCH --cpus-per-task={}", o.cpus_per_task));
    if let Some(g) = o.gpus_per_task {
        line(format!("#SBATCH --gpus-per-task={g}"));
    }
    if let Some(p) = &o.partition {
        line(format!("#SBATCH --partition={p}"));
    }
    line(format!("#SBATCH --time={}", o.time));
    if o.exclusive {
        line("#SBATCH --exclusive".into());
    }
    // sbatch reads #SBATCH lines literally (no shell quoting): the run
    // folder's path goes in as is, so `slurm` refuses paths with spaces.
    line(format!(
        "#SBATCH --output={}/shards/slurm-%A_%a.out",
        i.run_dir.display()
    ));
    line("#SBATCH --open-mode=append".into());
    line("#SBATCH --requeue".into());
    line("#SBATCH --signal=B:USR1@120".into());
    line(String::new());
    line(format!(
        "# joulebench {}: suite `{}` ({} trial(s)) in {} shard(s); array task K runs the trials whose plan index mod {} is K.",
        env!("CARGO_PKG_VERSION"),
        i.suite_name,
        i.trials,
        o.shards,
        o.shards
    ));
    line(format!(
        "# Submit: sbatch {}",
        q(&i.run_dir.join(SCRIPT_FILE))
    ));
    line(format!(
        "# After:  joulebench status {0}; joulebench report {0}",
        q(i.run_dir)
    ));
    line("# A requeued or restarted task (SLURM_RESTART_COUNT) resumes its own shard file: each trial is recorded once.".into());
    line("# USR1 (sent to this shell 120 s before the time limit) is passed on to joulebench; TERM (scancel, preemption,".into());
    line("# requeue) reaches joulebench from Slurm itself, so this shell only waits for it. Either way joulebench stops at".into());
    line("# the next optimizer step without recording the unfinished trial; after USR1 the task requeues itself.".into());
    line("set -u".into());
    line(format!("cd {}", q(i.workdir)));
    let mut cmd = vec![
        q(i.binary),
        "run".into(),
        q(i.suite_file),
        "--run-dir".into(),
        q(i.run_dir),
        "--no-report".into(),
    ];
    cmd.extend(i.run_args.iter().map(|a| sh_quote(a)));
    line(format!("{} &", cmd.join(" ")));
    line("pid=$!".into());
    line("trap 'kill -USR1 \"$pid\" 2>/dev/null' USR1".into());
    line("trap ':' TERM".into());
    line("# wait returns early when a trapped signal arrives; wait again until joulebench has exited.".into());
    line("while :; do wait \"$pid\"; rc=$?; kill -0 \"$pid\" 2>/dev/null || break; done".into());
    line("if [ \"$rc\" -eq 138 ]; then".into());
    line("  echo \"joulebench stopped before the time limit (SIGUSR1); requeueing ${SLURM_JOB_ID}\" >&2".into());
    line("  scontrol requeue \"$SLURM_JOB_ID\"".into());
    line("fi".into());
    line("exit \"$rc\"".into());
    s
}

/// Submits `script` with `sbatch --parsable`; the job id.
pub fn submit(script: &Path) -> Result<String, SlurmError> {
    let out = std::process::Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(SlurmError::Spawn)?;
    if !out.status.success() {
        return Err(SlurmError::Refused {
            code: out
                .status
                .code()
                .map_or("by a signal".into(), |c| c.to_string()),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let id = text.split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SlurmError::Answer(text));
    }
    Ok(id)
}

/// Refuses a run-folder path sbatch could not take on an `#SBATCH` line.
pub fn check_path(p: &Path) -> Result<PathBuf, SlurmError> {
    let Some(s) = p.to_str() else {
        return Err(invalid(
            "--run-dir",
            p.display().to_string(),
            "a UTF-8 path (sbatch reads #SBATCH --output literally, so other bytes would name another folder)",
        ));
    };
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '%')
    {
        return Err(invalid(
            "--run-dir",
            s,
            "a path without spaces, control characters or % (sbatch reads #SBATCH --output literally)",
        ));
    }
    Ok(p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SbatchOptions {
        SbatchOptions {
            job_name: "quick".into(),
            shards: 4,
            max_parallel: Some(2),
            partition: Some("gpu".into()),
            cpus_per_task: 8,
            gpus_per_task: Some(1),
            time: "02:00:00".into(),
            exclusive: true,
        }
    }

    #[test]
    fn values_are_checked() {
        assert!(opts().check(12).is_ok());
        let e = |f: fn(&mut SbatchOptions)| {
            let mut o = opts();
            f(&mut o);
            o.check(12).unwrap_err().to_string()
        };
        assert!(e(|o| o.shards = 13).contains("1..=12"));
        assert!(e(|o| o.shards = 0).starts_with("--shards \"0\""));
        assert!(e(|o| o.max_parallel = Some(5)).contains("1..=4"));
        assert!(e(|o| o.partition = Some("gpu; rm -rf /".into())).starts_with("--partition"));
        assert!(e(|o| o.time = "2h".into()).contains("HH:MM:SS"));
        assert!(e(|o| o.time = "1-".into()).starts_with("--time"));
        assert!(e(|o| o.cpus_per_task = 0).contains("1..=4096"));
        assert!(e(|o| o.gpus_per_task = Some(0)).contains("1..=64"));
        for t in [
            "30",
            "10:00",
            "02:00:00",
            "1-0",
            "1-02:00",
            "2-00:00:00",
            "UNLIMITED",
        ] {
            assert!(valid_time(t), "{t}");
        }
        assert!(check_path(Path::new("/a b/c")).is_err());
        assert!(check_path(Path::new("/a/%j")).is_err());
        use std::os::unix::ffi::OsStrExt;
        let odd = std::ffi::OsStr::from_bytes(b"/data/caf\xe9 it's");
        assert!(check_path(Path::new(odd)).is_err());
        assert_eq!(sh_quote(odd), "$'/data/caf\\xe9 it\\'s'");
        assert_eq!(sh_quote("a b".as_ref()), "'a b'");
        assert_eq!(sh_quote("tab\there".as_ref()), "$'tab\\x09here'");
    }

    #[test]
    fn the_script_shows_every_choice_and_quotes_what_it_runs() {
        let o = opts();
        let s = script(&ScriptInputs {
            options: &o,
            suite_name: "quick",
            trials: 12,
            binary: Path::new("/opt/jb/joulebench"),
            suite_file: Path::new("/home/u/it's/quick.toml"),
            run_dir: Path::new("/scratch/run"),
            workdir: Path::new("/home/u"),
            run_args: &[
                "--meter".into(),
                "nvml".into(),
                "--cpu-model".into(),
                "AMD EPYC 7763".into(),
            ],
        });
        for want in [
            "#SBATCH --array=0-3%2\n",
            "#SBATCH --cpus-per-task=8\n",
            "#SBATCH --gpus-per-task=1\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --time=02:00:00\n",
            "#SBATCH --exclusive\n",
            "#SBATCH --requeue\n",
            "#SBATCH --signal=B:USR1@120\n",
            "#SBATCH --output=/scratch/run/shards/slurm-%A_%a.out\n",
            "'/home/u/it'\\''s/quick.toml' --run-dir /scratch/run --no-report --meter nvml --cpu-model 'AMD EPYC 7763' &\n",
            "scontrol requeue \"$SLURM_JOB_ID\"",
        ] {
            assert!(s.contains(want), "{want}\n{s}");
        }
        assert!(s.starts_with("#!/bin/bash\n"));
    }
}
