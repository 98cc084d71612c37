//! The im2col + gemm conv2d matches candle's conv2d: outputs and both gradients.

mod common;

use candle_core::{Device, Tensor, Var};
use joulebench::rng::Rng;

fn rand(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn fast_conv2d_matches_candle_outputs_and_gradients_on_random_shapes() {
    let mut rng = Rng::new(7);
    // (batch, in, out, size, kernel, stride, pad)
    let cases = [
        (2, 1, 4, 8, 3, 1, 1),
        (3, 3, 5, 9, 3, 2, 1),
        (2, 4, 2, 7, 1, 1, 0),
        (1, 2, 3, 10, 5, 2, 2),
        (2, 3, 6, 6, 3, 1, 0),
    ];
    for (b, c, o, s, k, stride, pad) in cases {
        let x0 = rand(&[b, c, s, s], &mut rng);
        let w0 = rand(&[o, c, k, k], &mut rng);
        let b0 = rand(&[o], &mut rng);
        let run = |fast: bool| {
            let (x, w, bias) = (
                Var::from_tensor(&x0).unwrap(),
                Var::from_tensor(&w0).unwrap(),
                Var::from_tensor(&b0).unwrap(),
            );
            let y = if fast {
                joulebench::conv::conv2d(
                    x.as_tensor(),
                    w.as_tensor(),
                    Some(bias.as_tensor()),
                    stride,
                    pad,
                )
                .unwrap()
            } else {
                x.as_tensor()
                    .conv2d(w.as_tensor(), pad, stride, 1, 1)
                    .unwrap()
                    .broadcast_add(&bias.as_tensor().reshape((1, o, 1, 1)).unwrap())
                    .unwrap()
            };
            // A loss that weights every output differently.
            let weights = Tensor::arange(0f32, y.elem_count() as f32, &Device::Cpu)
                .unwrap()
                .reshape(y.shape())
                .unwrap();
            let loss = (&y * (weights * 0.01).unwrap().sin().unwrap())
                .unwrap()
                .sum_all()
                .unwrap();
            let g = loss.backward().unwrap();
            (
                y.clone(),
                g.get(x.as_tensor()).unwrap().clone(),
                g.get(w.as_tensor()).unwrap().clone(),
                g.get(bias.as_tensor()).unwrap().clone(),
            )
        };
        let (ya, gxa, gwa, gba) = run(true);
        let (yb, gxb, gwb, gbb) = run(false);
        assert_eq!(ya.dims(), yb.dims());
        for (name, a, b) in [
            ("output", &ya, &yb),
            ("dx", &gxa, &gxb),
            ("dw", &gwa, &gwb),
            ("db", &gba, &gbb),
        ] {
            let d = common::max_abs_diff(a, b);
            let m = common::max_abs(b).max(1e-3);
            assert!(
                d / m < 1e-4,
                "case {:?} {name}: relative difference {}",
                (b, c, o, s, k, stride, pad),
                d / m
            );
        }
    }
}

#[test]
fn fast_max_pool_matches_candle_output_and_has_the_true_gradient() {
    // Output equals candle's max_pool2d on random data.
    let mut rng = Rng::new(3);
    let x0 = rand(&[2, 3, 8, 6], &mut rng);
    let a = joulebench::conv::max_pool2(&x0).unwrap();
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
    let y = joulebench::conv::max_pool2(x.as_tensor()).unwrap();
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
