//! The training loop's CUDA kernels (`cuda` feature): a fused AdamW that
//! updates each parameter tensor, its two moments and its weight decay in
//! one kernel launch, where candle_nn's AdamW launches about a dozen
//! element-wise kernels per tensor (small models are launch-bound on a
//! GPU). The kernels are CUDA C (kernels.cu) compiled to PTX by build.rs
//! with nvcc and loaded through candle's device. They run only after
//! passing their self-check on the user's device (`train::self_check`:
//! three steps against candle_nn's AdamW); a failure switches them off for
//! the run and the manifest records it.

use crate::ops::selfcheck::{Kernel, faulty};
use candle_core::backprop::GradStore;
use candle_core::cuda_backend::WrapErr;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use candle_core::{
    CpuStorage, CudaStorage, DType, Device, InplaceOp1, Layout, Result, Storage, Tensor, Var,
};
use std::sync::Mutex;

/// The PTX of kernels.cu, built by build.rs.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/joulebench_kernels.ptx"));

struct Param {
    var: Var,
    /// The first and second moments, allocated on the first step.
    moments: Mutex<Option<(CudaSlice<f32>, CudaSlice<f32>)>>,
}

/// AdamW on f32 CUDA parameters, one kernel launch per tensor and step.
pub struct CudaAdamW {
    params: Vec<Param>,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    t: i32,
    /// Compute a wrong first weight on purpose (self-check tests).
    fault: bool,
}

impl CudaAdamW {
    /// None unless every variable is an f32 CUDA tensor.
    pub fn new(
        vars: Vec<Var>,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    ) -> Option<Self> {
        if vars.is_empty()
            || vars
                .iter()
                .any(|v| v.dtype() != DType::F32 || !v.device().is_cuda())
        {
            return None;
        }
        let params = vars
            .into_iter()
            .map(|var| Param {
                var,
                moments: Mutex::new(None),
            })
            .collect();
        Some(Self {
            params,
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            t: 0,
            fault: faulty(Kernel::CudaAdamW),
        })
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let c = Coefs {
            decay: (1.0 - self.lr * self.weight_decay) as f32,
            b1: self.beta1 as f32,
            b2: self.beta2 as f32,
            scale_m: (1.0 / (1.0 - self.beta1.powi(self.t))) as f32,
            scale_v: (1.0 / (1.0 - self.beta2.powi(self.t))) as f32,
            lr: self.lr as f32,
            eps: self.eps as f32,
            fault: self.fault,
        };
        for p in &self.params {
            let Some(g) = grads.get(&p.var) else { continue };
            let g = g.to_dtype(DType::F32)?.contiguous()?;
            let step = Step {
                g: &g,
                moments: &p.moments,
                c,
            };
            p.var.as_tensor().inplace_op1(&step)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Coefs {
    decay: f32,
    b1: f32,
    b2: f32,
    scale_m: f32,
    scale_v: f32,
    lr: f32,
    eps: f32,
    fault: bool,
}

struct Step<'a> {
    g: &'a Tensor,
    moments: &'a Mutex<Option<(CudaSlice<f32>, CudaSlice<f32>)>>,
    c: Coefs,
}

impl InplaceOp1 for Step<'_> {
    fn name(&self) -> &'static str {
        "cuda-adamw"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout) -> Result<()> {
        candle_core::bail!("the CUDA AdamW takes CUDA parameters")
    }

    fn cuda_fwd(&self, storage: &mut CudaStorage, layout: &Layout) -> Result<()> {
        let n = layout.shape().elem_count();
        if layout.start_offset() != 0 || !layout.is_contiguous() {
            candle_core::bail!("the CUDA AdamW needs contiguous parameters")
        }
        let dev = storage.device.clone();
        let (gs, gl) = self.g.storage_and_layout();
        let Storage::Cuda(gc) = &*gs else {
            candle_core::bail!("the CUDA AdamW takes CUDA gradients")
        };
        let g = gc.as_cuda_slice::<f32>()?.slice(gl.start_offset()..);
        let mut moments = self
            .moments
            .lock()
            .map_err(|_| candle_core::Error::Msg("optimizer state lock poisoned".into()))?;
        if moments.is_none() {
            *moments = Some((dev.alloc_zeros::<f32>(n)?, dev.alloc_zeros::<f32>(n)?));
        }
        let Some((m, v)) = moments.as_mut() else {
            candle_core::bail!("the CUDA AdamW lost its moments")
        };
        let w = storage.as_cuda_slice_mut::<f32>()?;
        let func = dev.get_or_load_custom_func("joulebench_adamw", "joulebench", PTX)?;
        let c = self.c;
        let mut b = func.builder();
        b.arg(w);
        b.arg(&g);
        b.arg(m);
        b.arg(v);
        candle_core::builder_arg!(
            b,
            n as u32,
            c.decay,
            c.b1,
            c.b2,
            c.scale_m,
            c.scale_v,
            c.lr,
            c.eps,
            c.fault as i32
        );
        // SAFETY: the kernel reads n gradients and updates n weights and
        // moments, all n long on this device.
        unsafe { b.launch(LaunchConfig::for_num_elems(n as u32)) }.w()?;
        Ok(())
    }
}

/// The self-check: the CUDA AdamW (made wrong on purpose with `fault`)
/// against candle_nn's AdamW on 1,000 parameters on `device`
/// (`fused_optim::against_candle_adamw`).
pub fn self_check(device: &Device, fault: bool) -> Result<f64> {
    crate::train::fused_optim::against_candle_adamw(device, 1000, |var, lr, wd| {
        let Some(mut f) = CudaAdamW::new(vec![var], lr, 0.9, 0.999, 1e-8, wd) else {
            candle_core::bail!("the CUDA AdamW refused f32 CUDA parameters")
        };
        f.fault = fault;
        Ok(Box::new(move |g| f.step(g)))
    })
}
