//! The CUDA layer ops as candle custom ops, their launches and their
//! self-checks; see the module above.

use super::{COLUMN_BLOCK, bias_grad_slices};
use crate::ops::Activation;
use crate::ops::registry::{Kernel, faulty};
use crate::ops::selfcheck::{KernelCheck, TOLERANCE, compare, guarded, rand, verdict};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{
    CpuStorage, CudaStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Tensor,
};

/// The PTX of kernels.cu, built by build.rs.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/joulebench_ops.ptx"));

/// True where `kernel`'s CUDA build can run on these tensors: all on one
/// CUDA device, all f32 or all bf16, the fused ops on and the kernel not
/// switched off by its self-check.
pub fn usable(kernel: Kernel, ts: &[&Tensor]) -> bool {
    let Some(first) = ts.first() else {
        return false;
    };
    crate::ops::fused()
        && crate::ops::registry::enabled(kernel)
        && first.device().is_cuda()
        && matches!(first.dtype(), DType::F32 | DType::BF16)
        && ts
            .iter()
            .all(|t| t.device().same_device(first.device()) && t.dtype() == first.dtype())
}

/// A kernel of kernels.cu, loaded on `dev` once.
macro_rules! func {
    ($dev:expr, $name:expr) => {
        $dev.get_or_load_custom_func(&$name, "joulebench_ops", PTX)
    };
}

/// The kernels' name suffix for an element type.
fn suffix(dtype: DType, op: &str) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("f32"),
        DType::BF16 => Ok("bf16"),
        other => candle_core::bail!("{op}: takes f32 or bf16 tensors, got {other:?}"),
    }
}

/// A contiguous tensor's slice from its start.
fn view<'a, T: CudaDType + DeviceRepr>(
    s: &'a CudaStorage,
    l: &Layout,
    op: &str,
) -> Result<CudaView<'a, T>> {
    if !l.is_contiguous() {
        candle_core::bail!("{op}: needs contiguous tensors")
    }
    let n = l.shape().elem_count();
    Ok(s.as_cuda_slice::<T>()?
        .slice(l.start_offset()..l.start_offset() + n))
}

/// The CPU half of a CUDA-only custom op of 2 or 3 operands: an error
/// naming the op.
macro_rules! cuda_only {
    (2) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            candle_core::bail!("{} runs on CUDA tensors", self.name())
        }
    };
    (3) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            candle_core::bail!("{} runs on CUDA tensors", self.name())
        }
    };
}

/// 256-thread blocks striding over `n` elements (at most 8,192 blocks).
pub(crate) fn grid_stride(n: u64) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).clamp(1, 8192) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One warp per row.
fn warp_rows(rows: u64) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(8).max(1) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

// ---- bias + activation ----------------------------------------------------

struct BiasAct {
    act: Activation,
}

/// (rows, cols) of a layer output: cols its last dimension.
fn rows_cols(l: &Layout) -> (u64, u64) {
    let cols = *l.dims().last().unwrap_or(&1) as u64;
    let n = l.shape().elem_count() as u64;
    (n.checked_div(cols).unwrap_or(0), cols)
}

impl CustomOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "cuda-bias-act"
    }

    cuda_only!(2);

    fn cuda_fwd(
        &self,
        z: &CudaStorage,
        zl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (rows, cols) = rows_cols(zl);
        if bl.shape().elem_count() as u64 != cols {
            candle_core::bail!(
                "cuda-bias-act: {cols} columns but a bias of {:?}",
                bl.dims()
            )
        }
        let s = match z.dtype() {
            DType::F32 => self.fwd::<f32>(z, zl, b, bl, rows, cols)?,
            DType::BF16 => self.fwd::<half::bf16>(z, zl, b, bl, rows, cols)?,
            other => candle_core::bail!("cuda-bias-act: takes f32 or bf16, got {other:?}"),
        };
        Ok((s, zl.shape().clone()))
    }

    fn bwd(
        &self,
        z: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let relu = self.act == Activation::Relu;
        let cols = *z.dims().last().unwrap_or(&1);
        let n = z.elem_count();
        let out = grad
            .contiguous()?
            .apply_op2_no_bwd(y, &BiasActGrad { relu })?;
        let gz = if relu {
            out.narrow(0, 0, n)?.reshape(z.shape())?
        } else {
            grad.clone()
        };
        let db = out.narrow(0, if relu { n } else { 0 }, cols)?;
        Ok((Some(gz), Some(db)))
    }
}

impl BiasAct {
    fn fwd<T: CudaDType + DeviceRepr>(
        &self,
        z: &CudaStorage,
        zl: &Layout,
        b: &CudaStorage,
        bl: &Layout,
        rows: u64,
        cols: u64,
    ) -> Result<CudaStorage> {
        let dev = z.device.clone();
        let (zv, bv) = (
            view::<T>(z, zl, self.name())?,
            view::<T>(b, bl, self.name())?,
        );
        let n = rows * cols;
        // SAFETY: the kernel writes all n outputs before anything reads them.
        let y: CudaSlice<T> = unsafe { dev.alloc::<T>(n.max(1) as usize)? };
        if n > 0 {
            let f = func!(
                dev,
                &format!("joulebench_bias_act_{}", suffix(z.dtype(), self.name())?)
            )?;
            let mut a = f.builder();
            a.arg(&zv);
            a.arg(&bv);
            a.arg(&y);
            let relu = (self.act == Activation::Relu) as i32;
            candle_core::builder_arg!(
                a,
                rows,
                cols as u32,
                relu,
                faulty(Kernel::CudaBiasAct) as i32
            );
            // SAFETY: z and y hold rows·cols values, b holds cols.
            unsafe { a.launch(grid_stride(n)) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(y, dev))
    }
}

/// The epilogue's backward on (gradient, output): one buffer holding the
/// masked gradient (ReLU only) and then the bias gradient.
struct BiasActGrad {
    relu: bool,
}

impl CustomOp2 for BiasActGrad {
    fn name(&self) -> &'static str {
        "cuda-bias-act-grad"
    }

    cuda_only!(2);

    fn cuda_fwd(
        &self,
        g: &CudaStorage,
        gl: &Layout,
        y: &CudaStorage,
        yl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (rows, cols) = rows_cols(gl);
        let len = if self.relu { rows * cols + cols } else { cols };
        let s = match g.dtype() {
            DType::F32 => self.run::<f32>(g, gl, y, yl, rows, cols)?,
            DType::BF16 => self.run::<half::bf16>(g, gl, y, yl, rows, cols)?,
            other => candle_core::bail!("cuda-bias-act-grad: takes f32 or bf16, got {other:?}"),
        };
        Ok((s, Shape::from(len as usize)))
    }
}

impl BiasActGrad {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        g: &CudaStorage,
        gl: &Layout,
        y: &CudaStorage,
        yl: &Layout,
        rows: u64,
        cols: u64,
    ) -> Result<CudaStorage> {
        let dev = g.device.clone();
        let (gv, yv) = (
            view::<T>(g, gl, self.name())?,
            view::<T>(y, yl, self.name())?,
        );
        let n = rows * cols;
        let gz_len = if self.relu { n } else { 0 };
        let sfx = suffix(g.dtype(), self.name())?;
        let (slices, per) = bias_grad_slices(rows, cols);
        // SAFETY: the first kernel writes all rows·cols masked gradients
        // (when kept) and every slice's column sums; the second every bias
        // gradient.
        let (mut out, partial) = unsafe {
            (
                dev.alloc::<T>((gz_len + cols).max(1) as usize)?,
                dev.alloc::<f32>((slices * cols).max(1) as usize)?,
            )
        };
        if n > 0 {
            let stream = dev.cuda_stream();
            // The masked gradient goes to the front of `out`; a null pointer
            // (Identity) skips writing it. The guard records the write after
            // the launch.
            let (gz_ptr, _write) = if self.relu {
                let (p, w) = out.device_ptr_mut(&stream);
                (p, Some(w))
            } else {
                (0, None)
            };
            let f = func!(dev, &format!("joulebench_bias_act_bwd_{sfx}"))?;
            let mut a = f.builder();
            a.arg(&gv);
            a.arg(&yv);
            a.arg(&gz_ptr);
            a.arg(&partial);
            candle_core::builder_arg!(a, rows, cols as u32, per, self.relu as i32);
            let cfg = LaunchConfig {
                grid_dim: (cols.div_ceil(COLUMN_BLOCK) as u32, slices as u32, 1),
                block_dim: (COLUMN_BLOCK as u32, 8, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: g and y hold rows·cols values, out at least rows·cols
            // (when written) and partial slices·cols.
            unsafe { a.launch(cfg) }.w()?;
        }
        if cols > 0 {
            let f = func!(dev, &format!("joulebench_column_total_{sfx}"))?;
            let db = out.slice(gz_len as usize..(gz_len + cols) as usize);
            let mut a = f.builder();
            a.arg(&partial);
            a.arg(&db);
            let slices = if n > 0 { slices as u32 } else { 0 };
            candle_core::builder_arg!(a, slices, cols as u32, faulty(Kernel::CudaBiasAct) as i32);
            // SAFETY: partial holds slices·cols sums, db cols values.
            unsafe { a.launch(grid_stride(cols)) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    }
}

/// `act(z + b)` over the last dimension of z, as one kernel, with a
/// two-kernel backward.
pub fn bias_act(z: &Tensor, b: &Tensor, act: Activation) -> Result<Tensor> {
    z.contiguous()?.apply_op2(&b.contiguous()?, BiasAct { act })
}

// ---- cross-entropy ----------------------------------------------------------

struct CrossEntropy;

/// (rows, cols) of 2-D logits, with the labels checked against them.
fn ce_shape(xl: &Layout, ll: &Layout) -> Result<(u64, u64)> {
    let (rows, cols) = xl.shape().dims2()?;
    if ll.shape().elem_count() != rows {
        candle_core::bail!(
            "cross-entropy: {rows} rows of logits but {} labels",
            ll.shape().elem_count()
        )
    }
    Ok((rows as u64, cols as u64))
}

/// Calls `$f::<T, L>` for the logits' and labels' element types.
macro_rules! by_types {
    ($x:expr, $labels:expr, $f:ident($($arg:expr),*)) => {
        match ($x.dtype(), $labels.dtype()) {
            (DType::F32, DType::U32) => $f::<f32, u32>($($arg),*),
            (DType::F32, DType::I64) => $f::<f32, i64>($($arg),*),
            (DType::BF16, DType::U32) => $f::<half::bf16, u32>($($arg),*),
            (DType::BF16, DType::I64) => $f::<half::bf16, i64>($($arg),*),
            (x, l) => candle_core::bail!(
                "cross-entropy: takes f32 or bf16 logits and u32 or i64 labels, got {x:?} and {l:?}"
            ),
        }
    };
}

/// The cross-entropy kernel of `stage` (`rows` or `grad`) for logits of
/// dtype `x` and labels of dtype `l`.
fn ce_kernel(stage: &str, x: DType, l: DType) -> String {
    let l = if l == DType::U32 { "u32" } else { "i64" };
    let x = if x == DType::F32 { "f32" } else { "bf16" };
    format!("joulebench_ce_{stage}_{x}_{l}")
}

/// Per-row losses, then their mean: an f32 scalar.
fn ce_forward<T: CudaDType + DeviceRepr, L: CudaDType + DeviceRepr>(
    x: &CudaStorage,
    xl: &Layout,
    labels: &CudaStorage,
    ll: &Layout,
) -> Result<CudaStorage> {
    let (rows, cols) = ce_shape(xl, ll)?;
    let dev = x.device.clone();
    let (xv, lv) = (
        view::<T>(x, xl, "cross-entropy")?,
        view::<L>(labels, ll, "cross-entropy")?,
    );
    // SAFETY: ce_rows writes every row's loss, ce_mean the one output.
    let (loss, out) = unsafe {
        (
            dev.alloc::<f32>(rows.max(1) as usize)?,
            dev.alloc::<f32>(1)?,
        )
    };
    if rows > 0 {
        let f = func!(dev, ce_kernel("rows", x.dtype(), labels.dtype()))?;
        let mut a = f.builder();
        a.arg(&xv);
        a.arg(&lv);
        a.arg(&loss);
        candle_core::builder_arg!(a, rows as u32, cols as u32);
        // SAFETY: x holds rows·cols logits, labels and loss rows values.
        unsafe { a.launch(warp_rows(rows)) }.w()?;
    }
    let f = func!(dev, "joulebench_ce_mean")?;
    let mut a = f.builder();
    a.arg(&loss);
    a.arg(&out);
    candle_core::builder_arg!(a, rows as u32, faulty(Kernel::CudaCrossEntropy) as i32);
    let one_block = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: loss holds rows values, out one.
    unsafe { a.launch(one_block) }.w()?;
    Ok(CudaStorage::wrap_cuda_slice(out, dev))
}

/// The logits' gradient `(softmax − one_hot)·g/N`, g a device scalar.
fn ce_backward<T: CudaDType + DeviceRepr, L: CudaDType + DeviceRepr>(
    x: &CudaStorage,
    xl: &Layout,
    labels: &CudaStorage,
    ll: &Layout,
    g: &CudaStorage,
    gl: &Layout,
) -> Result<CudaStorage> {
    let (rows, cols) = ce_shape(xl, ll)?;
    let dev = x.device.clone();
    let op = "cross-entropy";
    let (xv, lv, gv) = (
        view::<T>(x, xl, op)?,
        view::<L>(labels, ll, op)?,
        view::<f32>(g, gl, op)?,
    );
    // SAFETY: the kernel writes every value (rows > 0), or there are none.
    let d: CudaSlice<T> = unsafe { dev.alloc::<T>((rows * cols).max(1) as usize)? };
    if rows > 0 {
        let f = func!(dev, ce_kernel("grad", x.dtype(), labels.dtype()))?;
        let mut a = f.builder();
        a.arg(&xv);
        a.arg(&lv);
        a.arg(&gv);
        a.arg(&d);
        candle_core::builder_arg!(
            a,
            rows as u32,
            cols as u32,
            faulty(Kernel::CudaCrossEntropy) as i32
        );
        // SAFETY: x and d hold rows·cols values, labels rows, g one.
        unsafe { a.launch(warp_rows(rows)) }.w()?;
    }
    Ok(CudaStorage::wrap_cuda_slice(d, dev))
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cuda-cross-entropy"
    }

    cuda_only!(2);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        labels: &CudaStorage,
        ll: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let s = by_types!(x, labels, ce_forward(x, xl, labels, ll))?;
        Ok((s, Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.to_dtype(DType::F32)?.contiguous()?;
        let d = logits.apply_op3_no_bwd(labels, &g, &CrossEntropyGrad)?;
        Ok((Some(d), None))
    }
}

/// The logits' gradient from (logits, labels, the loss's gradient).
struct CrossEntropyGrad;

impl CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cuda-cross-entropy-grad"
    }

    cuda_only!(3);

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        xl: &Layout,
        labels: &CudaStorage,
        ll: &Layout,
        g: &CudaStorage,
        gl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let s = by_types!(x, labels, ce_backward(x, xl, labels, ll, g, gl))?;
        Ok((s, xl.shape().clone()))
    }
}

/// Mean cross-entropy of (N, C) logits against (N) u32 or i64 labels on
/// the same CUDA device, as an f32 scalar.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&labels.contiguous()?, CrossEntropy)
}

// ---- self-checks -----------------------------------------------------------

/// bf16 results against an f32 reference rounded once: about 2⁻⁹ relative
/// each, far below a real fault.
const BF16_TOLERANCE: f64 = 1e-2;

/// Seeded inputs of `shapes` on `dev` in `dtype`.
fn inputs(dev: &Device, dtype: DType, shapes: &[&[usize]], seed: u64) -> Result<Vec<Tensor>> {
    shapes
        .iter()
        .zip(seed..)
        .map(|(s, k)| rand(s, k)?.to_device(dev)?.to_dtype(dtype))
        .collect()
}

/// The reference: candle's ops in f32 on the inputs, rounded to their dtype.
fn in_f32(t: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) -> Result<Tensor> {
    let dtype = t[0].dtype();
    let wide = t
        .iter()
        .map(|t| t.to_dtype(DType::F32))
        .collect::<Result<Vec<_>>>()?;
    f(&wide)?.to_dtype(dtype)
}

fn check_bias_act(dev: &Device, dtype: DType) -> Result<f64> {
    let layer =
        |t: &[Tensor], act: Activation| crate::ops::linear::linear(&t[0], &t[1], Some(&t[2]), act);
    let reference = |t: &[Tensor], relu: bool| {
        in_f32(t, |t| {
            let y = t[0].broadcast_matmul(&t[1].t()?)?.broadcast_add(&t[2])?;
            if relu { y.relu() } else { Ok(y) }
        })
    };
    // Several row slices and column blocks, then a 3-D input without an activation.
    let relu = compare(
        &inputs(dev, dtype, &[&[300, 37], &[40, 37], &[40]], 31)?,
        &|t| layer(t, Activation::Relu),
        &|t| reference(t, true),
    )?;
    let identity = compare(
        &inputs(dev, dtype, &[&[2, 5, 37], &[21, 37], &[21]], 34)?,
        &|t| layer(t, Activation::Identity),
        &|t| reference(t, false),
    )?;
    Ok(relu.max(identity))
}

fn check_cross_entropy(dev: &Device, dtype: DType, labels: DType) -> Result<f64> {
    let y: Vec<u32> = (0..37u32).map(|i| (i * 7 + 3) % 10).collect();
    let y = Tensor::from_vec(y, 37, &Device::Cpu)?
        .to_dtype(labels)?
        .to_device(dev)?;
    compare(
        &inputs(dev, dtype, &[&[37, 10]], 37)?,
        &|t| crate::ops::cross_entropy::cross_entropy(&t[0], &y),
        // The fused loss is f32 whatever the logits; its gradient is in their dtype.
        &|t| candle_nn::loss::cross_entropy(&t[0].to_dtype(DType::F32)?, &y),
    )
}

/// One verdict for a kernel checked in f32 and in bf16 (each against its
/// own tolerance): the check that came closest to failing decides, and the
/// build names both errors.
fn both(kernel: Kernel, f32_err: Result<f64>, bf16_err: Result<f64>) -> KernelCheck {
    let show = |e: &Result<f64>| match e {
        Ok(v) => format!("{v:.1e}"),
        Err(_) => "failed".into(),
    };
    let build = format!("cuda PTX; f32 {}, bf16 {}", show(&f32_err), show(&bf16_err));
    let ratio = |e: &Result<f64>, tol: f64| e.as_ref().map_or(f64::INFINITY, |v| v / tol);
    if ratio(&bf16_err, BF16_TOLERANCE) > ratio(&f32_err, TOLERANCE) {
        verdict(kernel, &build, bf16_err, BF16_TOLERANCE)
    } else {
        verdict(kernel, &build, f32_err, TOLERANCE)
    }
}

/// The CUDA layer kernels' self-checks on `dev`: each in f32 and bf16
/// against candle's ops (in f32, rounded), both run before any verdict;
/// a kernel that fails either is switched off for the run.
pub fn checks(dev: &Device) -> Vec<KernelCheck> {
    let bias = [DType::F32, DType::BF16].map(|t| guarded(|| check_bias_act(dev, t)));
    let ce = [(DType::F32, DType::U32), (DType::BF16, DType::I64)]
        .map(|(t, l)| guarded(|| check_cross_entropy(dev, t, l)));
    let [bf, bb] = bias;
    let [cf, cb] = ce;
    vec![
        both(Kernel::CudaBiasAct, bf, bb),
        both(Kernel::CudaCrossEntropy, cf, cb),
    ]
}
