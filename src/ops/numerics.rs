//! The number format of a fused layer on the CPU, and the bf16 autocast
//! scope that picks it for f32 tensors.
//!
//! A fused linear or conv layer computes in one of three ways:
//! - **f32**: f32 tensors, f32 products.
//! - **bf16 tensors** (`precision = "bf16-pure"`): bf16 tensors in and out,
//!   widened exactly inside the op, products on `bf16_gemm`, outputs and
//!   gradients rounded to bf16.
//! - **autocast** (`precision = "bf16"` on the CPU): f32 tensors, the same
//!   bf16 numerics. The op rounds its inputs, weights and incoming gradient
//!   to bf16 (nearest even), multiplies bf16 values with f32 accumulation on
//!   `bf16_gemm`, and rounds its outputs and gradients to bf16, which stay
//!   in f32 tensors. These are the semantics of PyTorch's CPU autocast for
//!   linear and conv layers (bf16 operands, f32 accumulation, bf16 results,
//!   f32 master weights whose gradients arrive as rounded bf16 values); the
//!   other ops (pooling, normalization, softmax, attention's score products,
//!   the loss) run in f32 on those values. Why f32 containers: candle
//!   accumulates every gradient of the graph as `zeros_like + add` in the
//!   tensor's dtype, and its CPU bf16 add costs about 10 ns a value (a
//!   non-inlined conversion per 8 values): 22–25% of the CNN's step with
//!   bf16 tensors, more than the bf16 products save.
//!
//! The scope is thread-local, as PyTorch's autocast is: [`autocast_bf16`]
//! switches it on for the calling thread until its guard drops. An op reads
//! it once, when it is built in the forward pass, and keeps its format for
//! the backward pass.

use super::registry::Kernel;
use super::{storage_of, tensor_of};
use candle_core::{CpuStorage, DType, Result, Shape, Tensor};
use rayon::prelude::*;
use std::borrow::Cow;
use std::cell::Cell;

thread_local! {
    static AUTOCAST: Cell<bool> = const { Cell::new(false) };
}

/// While alive, fused linear and conv layers built on this thread with f32
/// CPU tensors compute in bf16 ([`Numerics::Autocast`]).
pub struct AutocastGuard {
    before: bool,
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        AUTOCAST.with(|a| a.set(self.before));
    }
}

/// Enters the bf16 autocast scope on this thread.
pub fn autocast_bf16() -> AutocastGuard {
    AutocastGuard {
        before: AUTOCAST.with(|a| a.replace(true)),
    }
}

/// Leaves the autocast scope on this thread until the guard drops (the
/// fallbacks run their f32 ops outside it).
pub(super) fn autocast_off() -> AutocastGuard {
    AutocastGuard {
        before: AUTOCAST.with(|a| a.replace(false)),
    }
}

/// Whether this thread is inside a bf16 autocast scope.
pub fn autocast_on() -> bool {
    AUTOCAST.with(Cell::get)
}

/// How a fused layer computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Numerics {
    F32,
    /// bf16 tensors in and out.
    Bf16,
    /// f32 tensors holding bf16 values.
    Autocast,
}

impl Numerics {
    /// The format for a layer's f32 (or bf16) CPU tensors: `Some` where the
    /// fused `kernel` may run on them.
    pub(super) fn of(kernel: Kernel, ts: &[&Tensor]) -> Option<Self> {
        if super::bf16_cpu(kernel, ts) {
            Some(Self::Bf16)
        } else if super::fast(kernel, ts) {
            Some(if autocast_on() {
                Self::Autocast
            } else {
                Self::F32
            })
        } else {
            None
        }
    }

    /// Whether products take bf16 values.
    pub(super) fn bf16(self) -> bool {
        self != Self::F32
    }

    /// A contiguous input's values as f32, rounded to bf16 under autocast
    /// (bf16 tensors hold bf16 values already), so that every product
    /// operand holds bf16 values whichever kernel multiplies it.
    pub(super) fn input<'a>(
        self,
        s: &'a CpuStorage,
        l: &candle_core::Layout,
        op: &str,
    ) -> Result<Cow<'a, [f32]>> {
        let v = super::f32s(s, l, op)?;
        Ok(if self == Self::Autocast && !bf16_exact(&v) {
            Cow::Owned(rounded_copy(&v))
        } else {
            v
        })
    }

    /// Runs `f` on a contiguous tensor's values as [`Numerics::input`] gives
    /// them (a product operand).
    pub(super) fn with_operand<R>(
        self,
        t: &Tensor,
        op: &str,
        f: impl FnOnce(&[f32]) -> Result<R>,
    ) -> Result<R> {
        let (s, l) = t.storage_and_layout();
        match &*s {
            candle_core::Storage::Cpu(c) => f(&self.input(c, l, op)?),
            _ => candle_core::bail!("{op}: the fused kernels run on the CPU only"),
        }
    }

    /// An incoming gradient (f32 values from the layer above) rounded to
    /// this format, where that changes it: `None` when it holds bf16 values
    /// already (other autocast layers' gradients do) or outside autocast.
    pub(super) fn rounded_grad(self, g: &[f32]) -> Option<Vec<f32>> {
        (self == Self::Autocast && !bf16_exact(g)).then(|| rounded_copy(g))
    }

    /// A copy of an incoming gradient in this format.
    pub(super) fn grad(self, g: &[f32]) -> Vec<f32> {
        self.rounded_grad(g).unwrap_or_else(|| g.to_vec())
    }

    /// Results as a storage of this format.
    pub(super) fn storage(self, v: Vec<f32>) -> CpuStorage {
        match self {
            Self::F32 => CpuStorage::F32(v),
            Self::Bf16 => storage_of(v, true),
            Self::Autocast => CpuStorage::F32(rounded(v)),
        }
    }

    /// Results as a tensor of this format.
    pub(super) fn tensor(self, v: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
        match self {
            Self::Autocast => tensor_of(rounded(v), shape, false),
            _ => tensor_of(v, shape, self == Self::Bf16),
        }
    }

    /// The dtype of this format's tensors.
    pub(super) fn dtype(self) -> DType {
        if self == Self::Bf16 {
            DType::BF16
        } else {
            DType::F32
        }
    }
}

/// Where a layer under autocast cannot take its fused op (a kernel that
/// failed its self-check, a shape it does not take): its f32 CPU tensors
/// rounded to bf16 through candle's casts, so that candle's f32 ops on them
/// keep the autocast's numbers (its outputs go through [`round_output`]).
/// `None` outside autocast or for other tensors.
pub(super) fn autocast_inputs(ts: &[&Tensor]) -> Result<Option<Vec<Tensor>>> {
    if !autocast_on()
        || !ts
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
    {
        return Ok(None);
    }
    ts.iter()
        .map(|t| round_output(t))
        .collect::<Result<_>>()
        .map(Some)
}

/// A tensor rounded to bf16 values through candle's casts (its gradient is
/// rounded on the way back too).
pub(super) fn round_output(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::BF16)?.to_dtype(DType::F32)
}

/// `x` rounded to the nearest bf16 (ties to even), as f32; NaN stays NaN.
pub(super) fn round_bf16(x: f32) -> f32 {
    f32::from_bits(super::bf16_pack::bf16_bits(x) << 16)
}

/// Whether every value is a bf16 value already (the outputs and gradients
/// of other autocast layers are): one read, no copy.
fn bf16_exact(v: &[f32]) -> bool {
    v.par_chunks(super::CONVERT_CHUNK)
        .all(|c| c.iter().fold(0u32, |a, x| a | (x.to_bits() & 0xFFFF)) == 0)
}

fn round_in_place(v: &mut [f32]) {
    v.par_chunks_mut(super::CONVERT_CHUNK).for_each(|c| {
        for x in c {
            *x = round_bf16(*x);
        }
    });
}

fn rounded_copy(v: &[f32]) -> Vec<f32> {
    v.par_iter()
        .with_min_len(super::CONVERT_CHUNK)
        .map(|&x| round_bf16(x))
        .collect()
}

fn rounded(mut v: Vec<f32>) -> Vec<f32> {
    round_in_place(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_is_per_thread_and_nests() {
        assert!(!autocast_on());
        {
            let _a = autocast_bf16();
            assert!(autocast_on());
            std::thread::spawn(|| assert!(!autocast_on()))
                .join()
                .unwrap();
            {
                let _b = autocast_bf16();
                assert!(autocast_on());
            }
            assert!(autocast_on());
        }
        assert!(!autocast_on());
    }
}
