//! Cluster runs: which share of a plan this process runs and under which
//! job (`shard`: `--shard K/N`, Slurm array tasks, Kubernetes Indexed Jobs,
//! the placement each record carries) and the sbatch array script
//! (`slurm`). The shared run folder they write is `runfolder::sharded`.

pub mod shard;
pub mod slurm;
