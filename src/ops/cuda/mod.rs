//! The layer ops' CUDA kernels (`cuda` feature): the bias + activation
//! epilogue of a linear layer and a fused softmax cross-entropy.
//!
//! On a GPU candle runs a layer `relu(x·Wᵀ + b)` as a cuBLAS product, a
//! broadcast add and a ReLU, and its backward as about as many kernels
//! again plus a zeros-and-add per node; its cross-entropy is a log-softmax of
//! seven ops and a gather. Small models are launch-bound there, so each
//! launch saved is time and joules. Here the product stays cuBLAS's and the
//! epilogue is one kernel forward (bias and activation) and two backward
//! (masked gradient with per-slice column sums, then the bias gradient);
//! the cross-entropy is two kernels forward (per-row loss, mean) and one
//! backward. f32 and bf16 tensors; every sum in a fixed order, so results
//! are reproducible. The kernels (kernels.cu) are compiled to PTX by
//! build.rs and run only after passing their self-checks on the user's
//! device ([`checks`]); one that fails is switched off for the run and
//! candle's ops run instead.

#[cfg(feature = "cuda")]
mod launch;
#[cfg(feature = "cuda")]
pub use launch::checks;
#[cfg(feature = "cuda")]
pub(crate) use launch::grid_stride;
#[cfg(feature = "cuda")]
pub(super) use launch::{bias_act, cross_entropy, usable};

/// Columns per block of the bias gradient's first pass.
pub const COLUMN_BLOCK: u64 = 32;
/// Fewest rows a block sums.
const MIN_SLICE_ROWS: u64 = 64;
/// About how many blocks the first pass aims for (a few per SM).
const TARGET_BLOCKS: u64 = 1024;

/// How the bias gradient's first pass splits a (rows, cols) gradient:
/// (slices, rows per slice). Every row is in exactly one slice; the
/// slices' sums are added in order by the second pass.
pub fn bias_grad_slices(rows: u64, cols: u64) -> (u64, u64) {
    let column_blocks = cols.div_ceil(COLUMN_BLOCK).max(1);
    let most = (TARGET_BLOCKS / column_blocks).max(1);
    let slices = rows.div_ceil(MIN_SLICE_ROWS).clamp(1, most);
    let per = rows.div_ceil(slices).max(1);
    (rows.div_ceil(per).max(1), per)
}

#[cfg(test)]
mod tests {
    use super::bias_grad_slices;

    #[test]
    fn slices_cover_every_row_once_and_stay_within_the_block_budget() {
        for (rows, cols) in [
            (0, 10),
            (1, 1),
            (9, 21),
            (300, 40),
            (512, 1024),
            (512, 10),
            (16384, 2048),
            (100_000, 7),
        ] {
            let (slices, per) = bias_grad_slices(rows, cols);
            assert!(slices >= 1 && per >= 1, "{rows}x{cols}");
            assert!(slices * per >= rows, "{rows}x{cols}: rows left out");
            assert!(
                (slices - 1) * per < rows.max(1),
                "{rows}x{cols}: an empty slice"
            );
            assert!(slices * cols.div_ceil(32) <= 1024.max(cols.div_ceil(32)));
        }
        assert_eq!(bias_grad_slices(512, 1024), (8, 64));
        assert_eq!(bias_grad_slices(16384, 2048), (16, 1024));
    }
}
