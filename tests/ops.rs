//! The fused CPU ops (src/ops) match candle's own ops: outputs and gradients.

mod common;

use candle_core::{Device, Tensor, Var};
use joulebench::ops::conv::{self, ConvSpec};
use joulebench::ops::{Activation, cross_entropy, linear};
use joulebench::util::rng::Rng;

fn rand(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Runs `f` on `inputs` made variables, then backpropagates a loss that
/// weights every output differently (by bf16 values, in the output's dtype):
/// (output, gradient of each input).
fn run(inputs: &[Tensor], f: &dyn Fn(&[Tensor]) -> Tensor) -> (Tensor, Vec<Option<Tensor>>) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts);
    let weights = Tensor::arange(0f32, y.elem_count() as f32, &Device::Cpu)
        .unwrap()
        .reshape(y.shape())
        .unwrap();
    let weights = (weights * 0.01).unwrap().sin().unwrap();
    let weights = weights.to_dtype(candle_core::DType::BF16).unwrap();
    let loss = (&y * weights.to_dtype(y.dtype()).unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    let g = loss.backward().unwrap();
    (y, ts.iter().map(|t| g.get(t).cloned()).collect())
}

/// The fused op and candle's reference agree on the output and on every
/// input's gradient to `1e-4` relative.
fn assert_same(
    case: &str,
    inputs: &[Tensor],
    fast: &dyn Fn(&[Tensor]) -> Tensor,
    reference: &dyn Fn(&[Tensor]) -> Tensor,
) {
    let (ya, ga) = run(inputs, fast);
    let (yb, gb) = run(inputs, reference);
    assert_eq!(ya.dims(), yb.dims(), "{case}: output shape");
    let mut pairs = vec![("output".to_string(), ya, yb)];
    for (i, (a, b)) in ga.into_iter().zip(gb).enumerate() {
        let (a, b) = (a.expect("fused op gave no gradient"), b.unwrap());
        pairs.push((format!("gradient of input {i}"), a, b));
    }
    for (name, a, b) in pairs {
        assert_eq!(a.dims(), b.dims(), "{case} {name}: shape");
        let d = common::max_abs_diff(&a, &b);
        let m = common::max_abs(&b).max(1e-3);
        assert!(d / m < 1e-4, "{case} {name}: relative difference {}", d / m);
    }
}

#[test]
fn fused_conv2d_matches_candle_outputs_and_gradients_on_random_shapes() {
    let mut rng = Rng::new(7);
    // (batch, in, out, size, kernel, stride, pad, groups, relu)
    let cases = [
        (2, 1, 4, 8, 3, 1, 1, 1, false),
        (3, 3, 5, 9, 3, 2, 1, 1, true),
        (2, 4, 2, 7, 1, 1, 0, 1, false),
        (1, 2, 3, 10, 5, 2, 2, 1, true),
        (2, 3, 6, 6, 3, 1, 0, 1, false),
        (20, 4, 6, 5, 3, 1, 1, 2, true),
        (3, 6, 6, 8, 3, 2, 1, 6, true),
        (4, 3, 8, 12, 3, 1, 1, 1, true),
        (2, 2, 4, 11, 3, 1, 1, 2, false),
        (2, 5, 5, 7, 3, 1, 0, 5, true),
        (3, 4, 4, 9, 5, 1, 2, 4, false),
        (2, 3, 6, 7, 3, 1, 1, 3, true),
    ];
    for case @ (b, c, o, s, k, stride, pad, groups, relu) in cases {
        let inputs = [
            rand(&[b, c, s, s], &mut rng),
            rand(&[o, c / groups, k, k], &mut rng),
            rand(&[o], &mut rng),
        ];
        let act = if relu {
            Activation::Relu
        } else {
            Activation::Identity
        };
        let spec = ConvSpec {
            stride,
            pad,
            groups,
            max_pool2: false,
        };
        assert_same(
            &format!("{case:?}"),
            &inputs,
            &|t| conv::conv2d_fused(&t[0], &t[1], Some(&t[2]), spec, act).unwrap(),
            &|t| {
                let y = t[0]
                    .conv2d(&t[1], pad, stride, 1, groups)
                    .unwrap()
                    .broadcast_add(&t[2].reshape((1, o, 1, 1)).unwrap())
                    .unwrap();
                act.tensor(y).unwrap()
            },
        );
        // Pooling inside the op equals the unpooled op followed by the
        // standalone pooling (whose true gradient is tested below); odd
        // outputs take that very route.
        let pooled = ConvSpec {
            max_pool2: true,
            ..spec
        };
        assert_same(
            &format!("{case:?} pooled"),
            &inputs,
            &|t| conv::conv2d_fused(&t[0], &t[1], Some(&t[2]), pooled, act).unwrap(),
            &|t| {
                let y = conv::conv2d_fused(&t[0], &t[1], Some(&t[2]), spec, act).unwrap();
                joulebench::ops::pool::max_pool2(&y).unwrap()
            },
        );
    }
}

#[test]
fn fused_linear_matches_candle_on_2d_and_3d_inputs() {
    let mut rng = Rng::new(11);
    for (lead, i, o, relu) in [
        (vec![5], 7, 3, true),
        (vec![4], 16, 9, false),
        (vec![2, 3], 6, 4, true),
    ] {
        let mut xs = lead.clone();
        xs.push(i);
        let inputs = [
            rand(&xs, &mut rng),
            rand(&[o, i], &mut rng),
            rand(&[o], &mut rng),
        ];
        let act = if relu {
            Activation::Relu
        } else {
            Activation::Identity
        };
        assert_same(
            &format!("linear {xs:?} -> {o}"),
            &inputs,
            &|t| linear::linear(&t[0], &t[1], Some(&t[2]), act).unwrap(),
            &|t| {
                let y = t[0]
                    .broadcast_matmul(&t[1].t().unwrap())
                    .unwrap()
                    .broadcast_add(&t[2])
                    .unwrap();
                act.tensor(y).unwrap()
            },
        );
    }
}

#[test]
fn fused_linear_skips_the_gradient_of_an_input_batch() {
    let mut rng = Rng::new(5);
    let x = rand(&[4, 6], &mut rng);
    let w = Var::from_tensor(&rand(&[3, 6], &mut rng)).unwrap();
    let b = Var::from_tensor(&rand(&[3], &mut rng)).unwrap();
    let y = linear::linear(&x, w.as_tensor(), Some(b.as_tensor()), Activation::Relu).unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    assert!(g.get(&x).is_none(), "the data batch got a gradient");
    // dW of sum(relu(x Wᵀ + b)) is Σ over rows where the unit is active of x.
    let active: Vec<Vec<f32>> = y.to_vec2().unwrap();
    let xv: Vec<Vec<f32>> = x.to_vec2().unwrap();
    let dw: Vec<Vec<f32>> = g.get(w.as_tensor()).unwrap().to_vec2().unwrap();
    for (u, row) in dw.iter().enumerate() {
        for (j, &got) in row.iter().enumerate() {
            let want: f32 = (0..4)
                .filter(|&r| active[r][u] > 0.0)
                .map(|r| xv[r][j])
                .sum();
            assert!((got - want).abs() < 1e-5, "dW[{u}][{j}] {got} vs {want}");
        }
    }
}

#[test]
fn fused_cross_entropy_matches_candle_nn_and_rejects_bad_labels() {
    let mut rng = Rng::new(9);
    let logits = (rand(&[6, 4], &mut rng) * 3.0).unwrap();
    let labels = Tensor::new(&[0u32, 3, 1, 1, 2, 0], &Device::Cpu).unwrap();
    assert_same(
        "cross-entropy",
        std::slice::from_ref(&logits),
        &|t| {
            let l = cross_entropy::cross_entropy(&t[0], &labels).unwrap();
            l.reshape(1).unwrap()
        },
        &|t| {
            let l = candle_nn::loss::cross_entropy(&t[0], &labels).unwrap();
            l.reshape(1).unwrap()
        },
    );
    let bad = Tensor::new(&[0u32, 4, 1, 1, 2, 0], &Device::Cpu).unwrap();
    let err = cross_entropy::cross_entropy(&logits, &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 4 is outside 0..4"), "{err}");
}

#[test]
fn fast_max_pool_matches_candle_output_and_has_the_true_gradient() {
    // Output equals candle's max_pool2d on random data.
    let mut rng = Rng::new(3);
    let x0 = rand(&[2, 3, 8, 6], &mut rng);
    let a = joulebench::ops::pool::max_pool2(&x0).unwrap();
    let b = x0.max_pool2d(2).unwrap();
    assert_eq!(common::max_abs_diff(&a, &b), 0.0);
    // d max / d x is 1 at each window's maximum and 0 elsewhere. (candle 0.11's own
    // max_pool2d backward returns a quarter of that: 2.5 and 25 below.)
    let x = Var::from_tensor(
        &Tensor::new(
            &[[[[1f32, 5.0, 2.0, 0.0], [3.0, 4.0, 7.0, 1.0]]]],
            &Device::Cpu,
        )
        .unwrap(),
    )
    .unwrap();
    let y = joulebench::ops::pool::max_pool2(x.as_tensor()).unwrap();
    let up = Tensor::new(&[[[[10f32, 100.0]]]], &Device::Cpu).unwrap();
    let g = (&y * up).unwrap().sum_all().unwrap().backward().unwrap();
    let gx: Vec<f32> = g
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(gx, vec![0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 100.0, 0.0]);
}

#[test]
fn bf16_layers_on_the_cpu_match_f32_on_bf16_inputs_and_pass_gradients() {
    use candle_core::{DType, Device, Tensor, Var};
    use joulebench::ops::Activation;
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (4, 1, 6, 6), &dev).unwrap();
    let w = Tensor::randn(0f32, 0.5, (3, 1, 3, 3), &dev).unwrap();
    let b = Tensor::randn(0f32, 0.5, 3, &dev).unwrap();
    let bf = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
    let spec = joulebench::ops::conv::ConvSpec {
        stride: 1,
        pad: 1,
        groups: 1,
        max_pool2: true,
    };
    // The converting path: bf16 values widened exactly, f32 arithmetic, one rounding at the end.
    let want = joulebench::ops::conv::conv2d_fused(
        &bf(&x).to_dtype(DType::F32).unwrap(),
        &bf(&w).to_dtype(DType::F32).unwrap(),
        Some(&bf(&b).to_dtype(DType::F32).unwrap()),
        spec,
        Activation::Relu,
    )
    .unwrap();
    let xv = Var::from_tensor(&bf(&x)).unwrap();
    let got = joulebench::ops::conv::conv2d_fused(
        xv.as_tensor(),
        &bf(&w),
        Some(&bf(&b)),
        spec,
        Activation::Relu,
    )
    .unwrap();
    assert_eq!(got.dtype(), DType::BF16);
    let diff = common::max_abs_diff(&got.to_dtype(DType::F32).unwrap(), &want);
    let mag = common::max_abs(&want);
    assert!(diff <= mag / 128.0, "bf16 rounding only: {diff} vs {mag}");
    let g = got.sum_all().unwrap().backward().unwrap();
    let gx = g.get(&xv).expect("a gradient for the bf16 input");
    assert_eq!(gx.dtype(), DType::BF16);
    // Linear likewise.
    let xl = Var::from_tensor(&bf(&Tensor::randn(0f32, 1.0, (5, 8), &dev).unwrap())).unwrap();
    let wl = bf(&Tensor::randn(0f32, 0.5, (3, 8), &dev).unwrap());
    let y =
        joulebench::ops::linear::linear(xl.as_tensor(), &wl, None, Activation::Identity).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let g = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&xl).unwrap().dtype(), DType::BF16);
    // GELU likewise: the f32 result on the widened values, rounded once.
    let xg = Var::from_tensor(&bf(&(Tensor::randn(0f32, 2.0, (4, 33), &dev).unwrap()))).unwrap();
    let y = joulebench::ops::gelu::gelu(xg.as_tensor()).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    let want = joulebench::ops::gelu::gelu(&xg.as_tensor().to_dtype(DType::F32).unwrap()).unwrap();
    let diff = common::max_abs_diff(&y.to_dtype(DType::F32).unwrap(), &want);
    assert!(diff <= common::max_abs(&want) / 128.0, "gelu bf16: {diff}");
    let g = y.sum_all().unwrap().backward().unwrap();
    assert_eq!(g.get(&xg).unwrap().dtype(), DType::BF16);
}

/// Under the CPU's bf16 autocast, the fused layers on f32 tensors compute
/// exactly what they compute on bf16 tensors: inputs, weights and incoming
/// gradients rounded to bf16, outputs and gradients rounded to bf16 but kept
/// in f32 tensors. Shapes cover the AMX products over packed columns (144
/// rows, odd positions per sample), the generic products and the f32
/// kernels for short and thin ones, pooled and unpooled.
#[test]
fn autocast_layers_equal_bf16_tensor_layers_bit_for_bit() {
    use candle_core::{DType, Device, Tensor};
    use joulebench::ops::Activation;
    use joulebench::ops::conv::{ConvSpec, conv2d_fused};
    let dev = Device::Cpu;
    let round = |t: &Tensor| {
        t.to_dtype(DType::BF16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    };
    // Output and gradients, all as f32.
    let run = |inputs: &[Tensor], f: &dyn Fn(&[Tensor]) -> Tensor| {
        let (y, grads) = run(inputs, f);
        let f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let mut out = vec![f32(&y)];
        out.extend(grads.iter().map(|g| f32(g.as_ref().expect("a gradient"))));
        out
    };
    let check = |name: &str, inputs: Vec<Tensor>, f: &dyn Fn(&[Tensor]) -> Tensor| {
        let bf: Vec<Tensor> = inputs
            .iter()
            .map(|t| t.to_dtype(DType::BF16).unwrap())
            .collect();
        let want = run(&bf, f);
        let got = {
            let _autocast = joulebench::ops::numerics::autocast_bf16();
            run(&inputs, f)
        };
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.dtype(), DType::F32, "{name} #{i}");
            let (g, w) = (
                g.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                w.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert_eq!(
                g, w,
                "{name}: output/gradient #{i} differs from the bf16 layer's"
            );
        }
        // Against f32 on the rounded inputs: bf16 rounding only.
        let rounded: Vec<Tensor> = inputs.iter().map(round).collect();
        let f32s = run(&rounded, f);
        let diff = common::max_abs_diff(&got[0], &f32s[0]);
        assert!(diff <= common::max_abs(&f32s[0]) / 64.0, "{name}: {diff}");
    };
    for (b, c, hw, o, pool) in [
        (2, 16, 7, 8, false),
        (3, 16, 6, 10, true),
        (3, 8, 7, 12, false),
        (5, 1, 6, 4, true),
    ] {
        let x = Tensor::randn(0f32, 1.0, (b, c, hw, hw), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.4, (o, c, 3, 3), &dev).unwrap();
        let bias = Tensor::randn(0f32, 0.3, o, &dev).unwrap();
        let spec = ConvSpec {
            stride: 1,
            pad: 1,
            groups: 1,
            max_pool2: pool,
        };
        check(
            &format!("conv {b}x{c}x{hw} -> {o}"),
            vec![x, w, bias],
            &|t| conv2d_fused(&t[0], &t[1], Some(&t[2]), spec, Activation::Relu).unwrap(),
        );
    }
    for (n, i, o) in [(70, 200, 130), (9, 37, 21)] {
        let x = Tensor::randn(0f32, 1.0, (n, i), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.3, (o, i), &dev).unwrap();
        let bias = Tensor::randn(0f32, 0.3, o, &dev).unwrap();
        check(&format!("linear {n}x{i} -> {o}"), vec![x, w, bias], &|t| {
            joulebench::ops::linear::linear(&t[0], &t[1], Some(&t[2]), Activation::Relu).unwrap()
        });
    }
}
