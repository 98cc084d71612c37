//! A dense layer `act(x·Wᵀ + b)` as one op.
//!
//! Forward: one gemm into a buffer pre-filled with the bias, then the
//! activation in place. Backward: the activation's mask, then
//! `dW = gᵀ·x`, `db = Σ_rows g` and, only when `x` needs a gradient (not for
//! the input batch), `dx = g·W`. candle's `Linear` + `relu` computes `dx`
//! always and accumulates each of its ~6 nodes through a zeros-plus-add.

use super::numerics::Numerics;
use super::registry::Kernel;
use super::{Activation, Mat, product, with_f32};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

struct LinearOp {
    act: Activation,
    input_grad: bool,
    num: Numerics,
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, i) = xl.shape().dims2()?;
        let (o, _) = wl.shape().dims2()?;
        let (x, w, b) = (
            self.num.input(xs, xl, self.name())?,
            self.num.input(ws, wl, self.name())?,
            self.num.input(bs, bl, self.name())?,
        );
        let mut y = Vec::with_capacity(n * o);
        for _ in 0..n {
            y.extend_from_slice(&b);
        }
        product(self.num.bf16())(
            &mut y,
            Mat::new(&x, n, i),
            Mat::new(&w, o, i).t(),
            true,
            true,
        );
        self.act.apply(&mut y);
        super::registry::corrupt(Kernel::Linear, &mut y);
        Ok((self.num.storage(y), Shape::from((n, o))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, i) = x.dims2()?;
        let o = w.dim(0)?;
        let mut g = with_f32(&grad.contiguous()?, self.name(), |g| Ok(self.num.grad(g)))?;
        with_f32(y, self.name(), |y| {
            self.act.mask_grad(&mut g, y);
            Ok(())
        })?;
        let gm = Mat::new(&g, n, o);
        let mut dw = vec![0f32; o * i];
        self.num.with_operand(x, self.name(), |x| {
            product(self.num.bf16())(&mut dw, gm.t(), Mat::new(x, n, i), false, true);
            Ok(())
        })?;
        let mut db = vec![0f32; o];
        for row in g.chunks_exact(o) {
            for (d, v) in db.iter_mut().zip(row) {
                *d += v;
            }
        }
        let dx = if self.input_grad {
            let mut dx = vec![0f32; n * i];
            self.num.with_operand(w, self.name(), |w| {
                product(self.num.bf16())(&mut dx, gm, Mat::new(w, o, i), false, true);
                Ok(())
            })?;
            Some(self.num.tensor(dx, (n, i))?)
        } else {
            None
        };
        Ok((
            dx,
            Some(self.num.tensor(dw, (o, i))?),
            Some(self.num.tensor(db, o)?),
        ))
    }
}

/// `act(x·Wᵀ + b)` for x of shape (…, in) and W of shape (out, in): one
/// fused op on f32 or bf16 CPU tensors (f32 ones in bf16 inside an autocast
/// scope, `ops::numerics`); on CUDA (f32 or bf16) candle's
/// product and the fused bias + activation kernel (`ops::cuda`); candle's
/// ops otherwise (or without a bias). Where candle has no bf16 matmul (the CPU) and the fused op may
/// not run, a bf16 layer runs candle's f32 ops on f32 copies.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if let Some(b) = b
        && super::cuda::usable(Kernel::CudaBiasAct, &[x, w, b])
    {
        // cuBLAS's product, then bias and activation in one kernel.
        return super::cuda::bias_act(&x.broadcast_matmul(&w.t()?)?, b, act);
    }
    if x.dtype() == DType::BF16 && x.device().is_cpu() {
        let b = match b {
            Some(b) => b.to_dtype(DType::BF16)?,
            None => Tensor::zeros(w.dim(0)?, DType::BF16, x.device())?,
        };
        if let Some(num) = Numerics::of(Kernel::Linear, &[x, w, &b]) {
            return apply(x, w, &b, act, num);
        }
        let y = linear(
            &x.to_dtype(DType::F32)?,
            &w.to_dtype(DType::F32)?,
            Some(&b.to_dtype(DType::F32)?),
            act,
        )?;
        return y.to_dtype(DType::BF16);
    }
    // Under autocast a layer without bias takes the fused op with a zero one.
    let zero_bias;
    let b = match b {
        None if super::numerics::autocast_on() && x.device().is_cpu() => {
            zero_bias = Tensor::zeros(w.dim(0)?, x.dtype(), x.device())?;
            Some(&zero_bias)
        }
        b => b,
    };
    let fused = b.and_then(|b| Some((b, Numerics::of(Kernel::Linear, &[x, w, b])?)));
    let Some((b, num)) = fused else {
        let with_bias: Vec<&Tensor> = [Some(x), Some(w), b].into_iter().flatten().collect();
        if let Some(r) = super::numerics::autocast_inputs(&with_bias)? {
            // Autocast without the fused op: candle's f32 ops on bf16 values.
            let _off = super::numerics::autocast_off();
            let y = linear(&r[0], &r[1], r.get(2), act)?;
            return super::numerics::round_output(&y);
        }
        let y = x.broadcast_matmul(&w.t()?)?;
        let y = match b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        return act.tensor(y);
    };
    apply(x, w, b, act, num)
}

/// The fused op on (…, in) inputs.
fn apply(x: &Tensor, w: &Tensor, b: &Tensor, act: Activation, num: Numerics) -> Result<Tensor> {
    let op = LinearOp {
        act,
        input_grad: x.track_op(),
        num,
    };
    let (w, b) = (w.contiguous()?, b.contiguous()?);
    // Every reshape is a graph node with its own backward: skip them for 2-D input.
    if x.rank() == 2 {
        return x.contiguous()?.apply_op3(&w, &b, op);
    }
    let dims = x.dims().to_vec();
    let Some((&i, lead)) = dims.split_last() else {
        candle_core::bail!("linear: input is a scalar")
    };
    let y = x
        .reshape((lead.iter().product::<usize>(), i))?
        .contiguous()?
        .apply_op3(&w, &b, op)?;
    let mut out = lead.to_vec();
    out.push(w.dim(0)?);
    y.reshape(out)
}

/// A candle_nn `Linear` layer through [`linear`].
pub fn forward(layer: &candle_nn::Linear, x: &Tensor, act: Activation) -> Result<Tensor> {
    linear(x, layer.weight(), layer.bias(), act)
}
