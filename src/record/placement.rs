//! Where a trial ran: the host, the scheduler's job and array task, the shard,
//! the GPUs it was given, and whether it had its node to itself.

use serde::{Deserialize, Serialize};

/// One shard of a plan split over several processes: trial `i` belongs to
/// shard `i mod count` (plan order interleaves workloads, seeds and variants,
/// so every shard gets a similar mix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether the trial at plan index `i` is this shard's.
    pub fn owns(&self, i: usize) -> bool {
        i % self.count as usize == self.index as usize
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Where and under which job a trial ran. Scheduler fields are empty outside
/// a scheduler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub hostname: String,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Where the shard came from: `--shard`, `slurm-array`, `k8s-indexed-job`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_source: Option<String>,
    /// `SLURM_JOB_ID` (each array task has its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// `SLURM_ARRAY_JOB_ID` / `SLURM_ARRAY_TASK_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task_id: Option<u32>,
    /// `JOB_COMPLETION_INDEX` of a Kubernetes Indexed Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_index: Option<u32>,
    /// `SLURM_RESTART_COUNT`: 0 on the first start, n after n requeues.
    #[serde(default)]
    pub restart_count: u32,
    /// `SLURM_JOB_GPUS` and `CUDA_VISIBLE_DEVICES` as the process saw them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job_gpus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_visible_devices: Option<String>,
    /// UUIDs of the GPUs NVML measured, where it reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu_uuids: Vec<String>,
    /// Whether the job had the node to itself (None: not under a scheduler,
    /// or not known), and how that was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_basis: Option<String>,
    /// Set when a whole-socket CPU counter (RAPL) measured a node shared
    /// with other jobs: its CPU joules include their work.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_node_cpu_energy: bool,
}
