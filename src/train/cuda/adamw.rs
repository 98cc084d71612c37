//! The multi-tensor fused AdamW on CUDA; see the module above.

use super::launch_table;
use crate::ops::selfcheck::{Kernel, faulty};
use crate::train::fused_optim::AdamWCoefs;
use candle_core::backprop::GradStore;
use candle_core::cuda_backend::WrapErr;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, DevicePtr, DevicePtrMut, PushKernelArg,
};
use candle_core::{
    CpuStorage, CudaStorage, DType, Device, InplaceOp1, Layout, Result, Storage, Var,
};
use std::sync::Mutex;

/// The PTX of kernels.cu, built by build.rs.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/joulebench_kernels.ptx"));

/// AdamW on f32 CUDA parameters, one kernel launch per step for all of them.
pub struct CudaAdamW {
    vars: Vec<Var>,
    /// Where each parameter's moments start in the flat buffers.
    moment_offsets: Vec<u64>,
    /// The first and second moments of every parameter, end to end,
    /// allocated on the first step.
    moments: Option<(CudaSlice<f32>, CudaSlice<f32>)>,
    params: candle_nn::ParamsAdamW,
    t: i32,
    /// Compute a wrong first weight on purpose (self-check tests).
    fault: bool,
}

impl CudaAdamW {
    /// None unless every variable is an f32 CUDA tensor on one device.
    pub fn new(vars: Vec<Var>, params: candle_nn::ParamsAdamW) -> Option<Self> {
        let first = vars.first()?.device().clone();
        if !first.is_cuda()
            || vars
                .iter()
                .any(|v| v.dtype() != DType::F32 || !v.device().same_device(&first))
        {
            return None;
        }
        let mut moment_offsets = Vec::with_capacity(vars.len());
        let mut total = 0u64;
        for v in &vars {
            moment_offsets.push(total);
            total += v.elem_count() as u64;
        }
        Some(Self {
            vars,
            moment_offsets,
            moments: None,
            params,
            t: 0,
            fault: faulty(Kernel::CudaAdamW),
        })
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let c = AdamWCoefs::at(self.t, &self.params);
        let fault = self.fault;
        let Device::Cuda(dev) = self.vars[0].device().clone() else {
            candle_core::bail!("the CUDA AdamW takes CUDA parameters")
        };
        if self.moments.is_none() {
            let n = self
                .vars
                .iter()
                .map(|v| v.elem_count())
                .sum::<usize>()
                .max(1);
            self.moments = Some((dev.alloc_zeros::<f32>(n)?, dev.alloc_zeros::<f32>(n)?));
        }
        // The parameters with a gradient this step, and their gradients.
        let mut vars = Vec::new();
        let mut gs = Vec::new();
        let mut offsets = Vec::new();
        for (v, &off) in self.vars.iter().zip(&self.moment_offsets) {
            let Some(g) = grads.get(v) else { continue };
            if v.elem_count() == 0 {
                continue;
            }
            if g.dims() != v.dims() {
                candle_core::bail!(
                    "gradient of shape {:?} for a {:?} parameter",
                    g.dims(),
                    v.dims()
                )
            }
            vars.push(v.clone());
            gs.push(g.to_dtype(DType::F32)?.contiguous()?);
            offsets.push(off);
        }
        if vars.is_empty() {
            return Ok(());
        }
        let stream = dev.cuda_stream();
        let guards: Vec<_> = gs.iter().map(|g| g.storage_and_layout()).collect();
        let mut views = Vec::with_capacity(guards.len());
        for (s, l) in &guards {
            let Storage::Cuda(c) = &**s else {
                candle_core::bail!("the CUDA AdamW takes CUDA gradients")
            };
            views.push(c.as_cuda_slice::<f32>()?.slice(l.start_offset()..));
        }
        let g_ptrs: Vec<_> = views.iter().map(|v| v.device_ptr(&stream)).collect();
        let Some((m, v)) = self.moments.as_mut() else {
            candle_core::bail!("the CUDA AdamW lost its moments")
        };
        let ((m_ptr, _m_write), (v_ptr, _v_write)) =
            (m.device_ptr_mut(&stream), v.device_ptr_mut(&stream));
        let launch = |w_ptrs: &[u64]| -> Result<()> {
            let rows: Vec<_> = w_ptrs
                .iter()
                .zip(&g_ptrs)
                .zip(offsets.iter().zip(&vars))
                .map(|((&w, g), (&off, var))| (w, g.0, off, var.elem_count() as u64))
                .collect();
            let (table, total) = launch_table(&rows);
            let table = dev.clone_htod(&table)?;
            let func = dev.get_or_load_custom_func("joulebench_adamw_multi", "joulebench", PTX)?;
            let mut b = func.builder();
            b.arg(&table);
            candle_core::builder_arg!(
                b,
                rows.len() as i32,
                m_ptr,
                v_ptr,
                total,
                c.decay,
                c.b1,
                c.b2,
                c.one_minus_b1,
                c.one_minus_b2,
                c.scale_m,
                c.scale_v,
                c.lr,
                c.eps,
                fault as i32
            );
            // SAFETY: the table holds, for each tensor, a weight pointer held
            // for writing by `Gather` and a gradient pointer held for reading
            // above, both of the tensor's length, and offsets into m and v
            // (held for writing above), which hold every parameter's moments.
            unsafe { b.launch(crate::ops::cuda::grid_stride(total)) }.w()?;
            Ok(())
        };
        let ptrs = Mutex::new(Vec::with_capacity(vars.len()));
        Gather {
            rest: &vars[1..],
            ptrs: &ptrs,
            launch: &launch,
        }
        .hold(&vars[0])
    }
}

/// Holds every parameter's storage for writing (an in-place op on each,
/// nested, one per tensor) while the innermost one launches the kernel
/// over all of them: candle's locks, not just the kernel, see the update.
struct Gather<'a> {
    rest: &'a [Var],
    ptrs: &'a Mutex<Vec<u64>>,
    launch: &'a dyn Fn(&[u64]) -> Result<()>,
}

impl Gather<'_> {
    fn hold(&self, var: &Var) -> Result<()> {
        var.as_tensor().inplace_op1(self)
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| candle_core::Error::Msg("optimizer state lock poisoned".into()))
}

impl InplaceOp1 for Gather<'_> {
    fn name(&self) -> &'static str {
        "cuda-adamw"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout) -> Result<()> {
        candle_core::bail!("the CUDA AdamW takes CUDA parameters")
    }

    fn cuda_fwd(&self, storage: &mut CudaStorage, layout: &Layout) -> Result<()> {
        if !layout.is_contiguous() {
            candle_core::bail!("the CUDA AdamW needs contiguous parameters")
        }
        let stream = storage.device.cuda_stream();
        let mut w = storage
            .as_cuda_slice_mut::<f32>()?
            .slice_mut(layout.start_offset()..);
        // The guard records the write when dropped, after the launch.
        let (ptr, _write) = w.device_ptr_mut(&stream);
        lock(self.ptrs)?.push(ptr);
        match self.rest.split_first() {
            Some((next, rest)) => Gather {
                rest,
                ptrs: self.ptrs,
                launch: self.launch,
            }
            .hold(next),
            None => {
                let ptrs = lock(self.ptrs)?.clone();
                (self.launch)(&ptrs)
            }
        }
    }
}

/// The self-check: the CUDA AdamW (made wrong on purpose with `fault`)
/// against candle_nn's AdamW on five tensors (1 to 4,099 parameters) on
/// `device` (`fused_optim::against_candle_adamw`).
pub fn self_check(device: &Device, fault: bool) -> Result<f64> {
    crate::train::fused_optim::against_candle_adamw(device, &[1000, 1, 300, 4099, 17], |vars, p| {
        let Some(mut f) = CudaAdamW::new(vars, p.clone()) else {
            candle_core::bail!("the CUDA AdamW refused f32 CUDA parameters")
        };
        f.fault = fault;
        Ok(Box::new(move |g| f.step(g)))
    })
}
