//! The training loop's CUDA optimizer (`cuda` feature): a multi-tensor
//! fused AdamW that updates every parameter tensor, the two moments and the
//! weight decay in one kernel launch per step (plus one copy of a small
//! pointer table), where candle_nn's AdamW launches about a dozen
//! element-wise kernels per tensor (small models are launch-bound on a
//! GPU). The kernel is CUDA C (kernels.cu) compiled to PTX by build.rs with
//! nvcc and loaded through candle's device. It runs only after passing its
//! self-check on the user's device (`train::self_check`: three steps on
//! five tensors against candle_nn's AdamW); a failure switches it off for
//! the run and the manifest records it.

#[cfg(feature = "cuda")]
mod adamw;
#[cfg(feature = "cuda")]
pub use adamw::{CudaAdamW, self_check};

/// The kernel's table for the tensors updated in one step, each given as
/// (weight pointer, gradient pointer, moment offset, length): the weight
/// pointers, the gradient pointers, the moment offsets, then the running
/// starts (one more than the tensors) whose last entry is the total.
/// Empty tensors are left out.
pub fn launch_table(tensors: &[(u64, u64, u64, u64)]) -> (Vec<u64>, u64) {
    let kept: Vec<_> = tensors.iter().filter(|t| t.3 > 0).collect();
    let mut table: Vec<u64> = kept.iter().map(|t| t.0).collect();
    table.extend(kept.iter().map(|t| t.1));
    table.extend(kept.iter().map(|t| t.2));
    let mut start = 0u64;
    for t in &kept {
        table.push(start);
        start += t.3;
    }
    table.push(start);
    (table, start)
}

#[cfg(test)]
mod tests {
    use super::launch_table;

    #[test]
    fn the_table_lists_pointers_offsets_and_running_starts_without_empty_tensors() {
        let (t, total) = launch_table(&[(10, 20, 0, 3), (11, 21, 3, 0), (12, 22, 3, 5)]);
        assert_eq!(total, 8);
        assert_eq!(t, vec![10, 12, 20, 22, 0, 3, 0, 3, 8]);
    }
}
