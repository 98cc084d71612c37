//! Run-time self-checks of the custom kernels on the machine that runs them.
//!
//! The fused ops, the bf16 product and the fused optimizer are hand-written
//! kernels with their own SIMD builds chosen at run time; a kernel that is
//! wrong on some CPU (a miscompiled build, an instruction set behaving
//! unexpectedly under a hypervisor) would silently corrupt every trial. So
//! before the first trial each kernel runs on small seeded random inputs
//! against candle's reference ops, outputs and gradients. A kernel whose
//! relative error exceeds its tolerance is switched off for the rest of the
//! process (its callers take candle's ops, as with `set_fused(false)`), a
//! warning is logged, and the run manifest lists every check
//! (`kernel_checks`) with its error, tolerance and what was done.
//!
//! `JOULEBENCH_FAULTY_KERNEL=name[,name…]` makes the named kernels corrupt
//! one output value on purpose, so tests can show that a wrong kernel is
//! caught and never used for training.

use super::{Activation, conv, cross_entropy, gelu, linear, pool};
use candle_core::{DType, Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

pub(crate) use super::registry::corrupt;
use super::registry::disable;
pub use super::registry::{Kernel, enabled, faulty};

/// One kernel's self-check, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelCheck {
    pub kernel: Kernel,
    /// Which build of the kernel was checked (e.g. the bf16 product's path).
    pub build: String,
    /// Largest |kernel − reference| / max(|reference|, 1e-3) over outputs
    /// and gradients (NaN when the kernel failed to run).
    pub max_rel_error: f64,
    pub tolerance: f64,
    pub passed: bool,
    /// "in use", or why it is not.
    pub action: String,
}

/// Records a check's outcome, switching the kernel off when it failed.
pub fn verdict(kernel: Kernel, build: &str, error: Result<f64>, tolerance: f64) -> KernelCheck {
    let (err, failure) = match error {
        Ok(e) if e <= tolerance => (e, None),
        Ok(e) => (e, Some(format!("relative error {e:.3e} > {tolerance:.0e}"))),
        Err(e) => (f64::NAN, Some(format!("failed to run: {e}"))),
    };
    let action = match &failure {
        None => "in use".to_string(),
        Some(why) => {
            disable(kernel);
            tracing::warn!(
                "kernel self-check: {kernel} ({build}) disagrees with its reference ({why}); it is switched off and candle's ops (or the f32 kernels) run instead"
            );
            format!("disabled ({why}): the reference path runs instead")
        }
    };
    KernelCheck {
        kernel,
        build: build.to_string(),
        max_rel_error: err,
        tolerance,
        passed: failure.is_none(),
        action,
    }
}

/// Largest relative difference of `a` from the reference `b`.
pub fn rel_error(a: &Tensor, b: &Tensor) -> Result<f64> {
    if a.dims() != b.dims() {
        candle_core::bail!(
            "shape {:?} against the reference's {:?}",
            a.dims(),
            b.dims()
        )
    }
    let a = a.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let b = b.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok(super::max_rel_diff(&a, &b))
}

/// Seeded normal values of `shape`.
pub(super) fn rand(shape: &[usize], seed: u64) -> Result<Tensor> {
    let mut rng = crate::util::rng::Rng::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

/// Outputs and input gradients of `f` under a loss that weights every output
/// differently; the largest relative error of `fast` against `reference`.
pub(super) fn compare(
    inputs: &[Tensor],
    fast: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    reference: &dyn Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<f64> {
    let run = |f: &dyn Fn(&[Tensor]) -> Result<Tensor>| -> Result<Vec<Tensor>> {
        let vars = inputs
            .iter()
            .map(Var::from_tensor)
            .collect::<Result<Vec<_>>>()?;
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts)?;
        let w = (Tensor::arange(0f32, y.elem_count() as f32, y.device())?.reshape(y.shape())?
            * 0.37)?
            .sin()?
            .to_dtype(y.dtype())?;
        let g = (&y * w)?.sum_all()?.backward()?;
        let mut out = vec![y];
        for t in &ts {
            match g.get(t) {
                Some(d) => out.push(d.clone()),
                None => candle_core::bail!("no gradient for an input"),
            }
        }
        Ok(out)
    };
    let (a, b) = (run(fast)?, run(reference)?);
    a.iter()
        .zip(&b)
        .try_fold(0f64, |m, (x, y)| Ok(m.max(rel_error(x, y)?)))
}

/// f32 sums over a few hundred terms: far below a real fault (an output off
/// by one), far above rounding.
pub(super) const TOLERANCE: f64 = 1e-4;

fn check_linear() -> Result<f64> {
    let inputs = [rand(&[9, 37], 1)?, rand(&[21, 37], 2)?, rand(&[21], 3)?];
    compare(
        &inputs,
        &|t| linear::linear(&t[0], &t[1], Some(&t[2]), Activation::Relu),
        &|t| t[0].matmul(&t[1].t()?)?.broadcast_add(&t[2])?.relu(),
    )
}

fn check_conv() -> Result<f64> {
    let inputs = [
        rand(&[3, 4, 10, 10], 4)?,
        rand(&[6, 4, 3, 3], 5)?,
        rand(&[6], 6)?,
    ];
    let spec = conv::ConvSpec {
        stride: 1,
        pad: 1,
        groups: 1,
        max_pool2: false,
    };
    let reference = |t: &[Tensor]| {
        t[0].conv2d(&t[1], 1, 1, 1, 1)?
            .broadcast_add(&t[2].reshape((1, 6, 1, 1))?)?
            .relu()
    };
    let unpooled = compare(
        &inputs,
        &|t| conv::conv2d_fused(&t[0], &t[1], Some(&t[2]), spec, Activation::Relu),
        &reference,
    )?;
    // Pooled inside the op: the output against candle's pooling (whose
    // gradient is wrong, so the gradient is covered by the pooling's check).
    let pooled = conv::conv2d_fused(
        &inputs[0],
        &inputs[1],
        Some(&inputs[2]),
        conv::ConvSpec {
            max_pool2: true,
            ..spec
        },
        Activation::Relu,
    )?;
    let want = reference(&inputs)?.max_pool2d(2)?;
    Ok(unpooled.max(rel_error(&pooled, &want)?))
}

fn check_pool() -> Result<f64> {
    let x = Var::from_tensor(&rand(&[2, 3, 6, 8], 7)?)?;
    let y = pool::max_pool2(x.as_tensor())?;
    let fwd = rel_error(&y, &x.as_tensor().max_pool2d(2)?)?;
    let w = (Tensor::arange(0f32, y.elem_count() as f32, &Device::Cpu)?.reshape(y.shape())?
        * 0.37)?
        .sin()?;
    let g = (&y * &w)?.sum_all()?.backward()?;
    let Some(dx) = g.get(x.as_tensor()) else {
        candle_core::bail!("no gradient for the pooled input")
    };
    // The true gradient: each output's weight at the first maximum of its window.
    let xs = x.as_tensor().flatten_all()?.to_vec1::<f32>()?;
    let ws = w.flatten_all()?.to_vec1::<f32>()?;
    let mut want = vec![0f32; xs.len()];
    let (h, wd) = (6, 8);
    for (p, plane) in xs.chunks_exact(h * wd).enumerate() {
        for oy in 0..h / 2 {
            for ox in 0..wd / 2 {
                let i = 2 * oy * wd + 2 * ox;
                let best = [i, i + 1, i + wd, i + wd + 1]
                    .into_iter()
                    .fold(i, |b, j| if plane[j] > plane[b] { j } else { b });
                want[p * h * wd + best] += ws[(p * h / 2 + oy) * wd / 2 + ox];
            }
        }
    }
    let want = Tensor::from_vec(want, x.as_tensor().shape(), &Device::Cpu)?;
    Ok(fwd.max(rel_error(dx, &want)?))
}

fn check_cross_entropy() -> Result<f64> {
    let labels = Tensor::from_vec(vec![3u32, 0, 9, 4, 4, 1, 7], 7, &Device::Cpu)?;
    compare(
        &[rand(&[7, 10], 8)?],
        &|t| cross_entropy::cross_entropy(&t[0], &labels),
        &|t| candle_nn::loss::cross_entropy(&t[0], &labels),
    )
}

fn check_gelu() -> Result<f64> {
    compare(
        &[(rand(&[6, 50], 9)? * 3.0)?],
        &|t| gelu::gelu(&t[0]),
        &|t| t[0].gelu(),
    )
}

/// Runs a check, a panic counting as a failure to run.
pub(super) fn guarded(f: impl FnOnce() -> Result<f64>) -> Result<f64> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| candle_core::bail!("the kernel panicked"))
}

/// Self-checks the kernels of `ops` that run on `device` (the CPU ones, or
/// on CUDA the CUDA ones): each against candle's ops, switching off any that
/// disagree. With the fused ops switched off (`set_fused(false)`) none runs,
/// so none is checked.
pub fn check_ops(device: &Device) -> Vec<KernelCheck> {
    if !super::fused() {
        return Vec::new();
    }
    #[cfg(feature = "cuda")]
    if device.is_cuda() {
        return super::cuda::checks(device);
    }
    if !device.is_cpu() {
        return Vec::new();
    }
    let mut out = vec![
        verdict(
            Kernel::Linear,
            "fused f32",
            guarded(check_linear),
            TOLERANCE,
        ),
        verdict(Kernel::Conv2d, "fused f32", guarded(check_conv), TOLERANCE),
        verdict(
            Kernel::MaxPool2,
            "fused f32",
            guarded(check_pool),
            TOLERANCE,
        ),
        verdict(
            Kernel::CrossEntropy,
            "fused f32",
            guarded(check_cross_entropy),
            TOLERANCE,
        ),
        verdict(Kernel::Gelu, "fused f32", guarded(check_gelu), TOLERANCE),
    ];
    if let Some(engine) = super::bf16_gemm::engine() {
        out.push(verdict(
            Kernel::Bf16Gemm,
            &format!("{engine:?}").to_lowercase(),
            guarded(super::bf16_gemm::self_check),
            TOLERANCE,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_pass_their_checks_and_errors_are_measured() {
        // This test process injects no fault.
        for c in check_ops(&Device::Cpu) {
            assert!(c.passed, "{c:?}");
            assert!(c.max_rel_error < 1e-5, "{c:?}");
            assert_eq!(c.action, "in use");
        }
        let a = Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu).unwrap();
        let b = Tensor::new(&[1f32, 2.0, 4.0], &Device::Cpu).unwrap();
        assert!((rel_error(&a, &b).unwrap() - 0.25).abs() < 1e-12);
        let c = Tensor::new(&[f32::NAN, 2.0, 3.0], &Device::Cpu).unwrap();
        assert!(rel_error(&c, &a).unwrap().is_infinite());
    }
}
