//! Windows after training: evaluation (validation and test), the inference
//! window (greedy generation, or forward + argmax with predictions copied to
//! the host, as a serving system would), and the quantized and sparse
//! models' windows.

use super::step::{flat, inputs};
use super::{TrainError, TrialData};
use crate::config::{QuantType, SparseConfig, TrialConfig};
use crate::data::DeviceSplit;
use crate::meter::Measurer;
use crate::model::Model;
use crate::record::{EvalRecord, InferenceRecord, QuantizationRecord, SparseRecord};
use crate::util::units::Joules;
use candle_core::{DType, Tensor};

/// Mean loss and accuracy (per label: per sample, or per token for language
/// models) of `model` on `split`, float inputs cast to `dtype`.
pub fn evaluate(
    model: &dyn Model,
    split: &DeviceSplit,
    batch: usize,
    dtype: DType,
) -> candle_core::Result<(f64, f64)> {
    let device = split.x.device();
    let mut loss_sum = Tensor::zeros((), DType::F32, device)?;
    let mut correct = Tensor::zeros((), DType::F32, device)?;
    let mut labels = 0usize;
    for b in split.batches(batch) {
        let (x, y) = b?;
        let logits = model.forward(&inputs(&x, dtype)?)?.to_dtype(DType::F32)?;
        let (l, y) = flat(&logits, &y)?;
        let n = y.dims()[0];
        labels += n;
        let loss = crate::ops::cross_entropy::cross_entropy(&l, &y)?;
        loss_sum = (loss_sum + (loss * n as f64)?)?;
        let hit = l.argmax(1)?.eq(&y)?.to_dtype(DType::F32)?.sum_all()?;
        correct = (correct + hit)?;
    }
    if labels == 0 {
        candle_core::bail!(
            "the split to evaluate has no samples, so loss and accuracy are undefined (an empty dataset file, or a cap of 0?)"
        );
    }
    let n = labels as f64;
    Ok((
        loss_sum.to_scalar::<f32>()? as f64 / n,
        correct.to_scalar::<f32>()? as f64 / n,
    ))
}

/// The test-evaluation window of the trained model.
pub fn test_window(
    measurer: &mut Measurer,
    model: &dyn Model,
    test: &DeviceSplit,
    cfg: &TrialConfig,
    compute: DType,
    name: &str,
) -> Result<EvalRecord, TrainError> {
    let w = measurer.begin(name)?;
    let (loss, accuracy) = evaluate(model, test, cfg.eval_batch_size as usize, compute)?;
    Ok(EvalRecord {
        window: measurer.end(w)?,
        samples: test.len() as u64,
        loss,
        accuracy,
        bits_per_token: model.generative().map(|_| loss / std::f64::consts::LN_2),
    })
}

/// Batches run and discarded before an inference window opens: the
/// first batch pays for allocation, kernel selection and caches (and on a
/// GPU, clocks ramping up), which is not the steady-state cost J/1000
/// reports (ML.ENERGY PITFALLS.md: measure steady state). Classifiers run
/// the first test batch (forward, argmax, copy to host); language models
/// generate `WARMUP_TOKENS` tokens from the same prompts.
pub const INFERENCE_WARMUP_BATCHES: u32 = 1;
/// Tokens the language models' warm-up generates.
const WARMUP_TOKENS: usize = 2;

/// The inference window: greedy generation for language models, forward +
/// argmax over the test split (predictions copied to the host) for
/// classifiers, after `INFERENCE_WARMUP_BATCHES` discarded warm-up batches.
pub fn inference_window(
    measurer: &mut Measurer,
    model: &dyn Model,
    test: &DeviceSplit,
    cfg: &TrialConfig,
    compute: DType,
    name: &str,
) -> Result<InferenceRecord, TrainError> {
    let prompts = match model.generative() {
        Some(context) => {
            let p = test.x.narrow(0, 0, test.len().min(8))?;
            Some((context, p.narrow(1, 0, (context / 2).max(1))?))
        }
        None => None,
    };
    let mut warmup_batches = 0;
    for _ in 0..INFERENCE_WARMUP_BATCHES {
        match &prompts {
            Some((context, p)) => {
                let tokens = WARMUP_TOKENS.min(cfg.generate_tokens as usize).max(1);
                let out = crate::model::transformer::generate(model, p, tokens, *context)?;
                let _ = out.to_vec2::<u32>()?;
            }
            None => {
                let Some(b) = test.batches(cfg.eval_batch_size as usize).next() else {
                    break;
                };
                let (x, _) = b?;
                let _ = model
                    .forward(&inputs(&x, compute)?)?
                    .argmax(1)?
                    .to_vec1::<u32>()?;
            }
        }
        warmup_batches += 1;
    }
    let w = measurer.begin(name)?;
    let (n, unit) = match prompts {
        Some((context, prompts)) => {
            let out = crate::model::transformer::generate(
                model,
                &prompts,
                cfg.generate_tokens as usize,
                context,
            )?;
            let _ = out.to_vec2::<u32>()?;
            (
                prompts.dim(0)? as u64 * cfg.generate_tokens as u64,
                "tokens",
            )
        }
        None => {
            let mut n = 0u64;
            for b in test.batches(cfg.eval_batch_size as usize) {
                let (x, _) = b?;
                let preds = model
                    .forward(&inputs(&x, compute)?)?
                    .argmax(1)?
                    .to_vec1::<u32>()?;
                n += preds.len() as u64;
            }
            (n, "samples")
        }
    };
    let mut window = measurer.end(w)?;
    if let (Some(v), Some(f)) = (
        window.validity.as_mut(),
        crate::meter::judge::steady_state(warmup_batches),
    ) {
        v.add(f);
    }
    if n == 0 {
        return Err(TrainError::Unsupported(
            "the inference window processed no samples (the test split is empty), so J per 1,000 is undefined".into(),
        ));
    }
    Ok(InferenceRecord {
        samples: n,
        unit: unit.into(),
        batch_size: cfg.eval_batch_size,
        samples_per_second: n as f64 / window.seconds.0.max(1e-9),
        joules_per_1k: Joules(window.joules.0 * 1000.0 / n.max(1) as f64),
        window,
        warmup_batches,
    })
}

/// Quantizes the trained model's linear layers and measures its test
/// accuracy and inference cost. A model that cannot be quantized is
/// recorded with the reason; the trial still completes.
pub fn quantized(
    measurer: &mut Measurer,
    model: &dyn Model,
    data: &TrialData,
    cfg: &TrialConfig,
    qtype: QuantType,
    f32_accuracy: f64,
) -> Result<QuantizationRecord, TrainError> {
    let name = qtype.name();
    let mut rec = QuantizationRecord {
        dtype: name.to_string(),
        weight_bytes_f32: 0,
        weight_bytes_quantized: 0,
        size_ratio: f64::NAN,
        test: None,
        accuracy_change_pp: None,
        inference: None,
        error: None,
        kernel: (qtype == QuantType::Int8).then(|| crate::ops::int8::kernel().to_string()),
    };
    let q = match model.quantized(qtype) {
        Ok(Some(q)) => q,
        Ok(None) => {
            rec.error = Some(format!(
                "model {} does not support post-training quantization",
                cfg.model.name()
            ));
            return Ok(rec);
        }
        Err(e) => {
            rec.error = Some(format!("{name} quantization failed on this device: {e}"));
            return Ok(rec);
        }
    };
    rec.weight_bytes_f32 = q.bytes.f32;
    rec.weight_bytes_quantized = q.bytes.quantized;
    rec.size_ratio = q.bytes.f32 as f64 / q.bytes.quantized.max(1) as f64;
    let qm = q.model.as_ref();
    let test = test_window(measurer, qm, data.test, cfg, DType::F32, "test/quantized")?;
    rec.accuracy_change_pp = Some((test.accuracy - f32_accuracy) * 100.0);
    rec.test = Some(test);
    let inference = inference_window(
        measurer,
        qm,
        data.test,
        cfg,
        DType::F32,
        "inference/quantized",
    )?;
    rec.inference = Some(inference);
    Ok(rec)
}

/// Runs the trained model with its linear layers stored sparse: checks it
/// against the dense model on one test batch, then measures its test and
/// inference windows. A model or device without a sparse path is recorded
/// with the reason; the trial still completes.
pub fn sparse(
    measurer: &mut Measurer,
    model: &dyn Model,
    data: &TrialData,
    cfg: &TrialConfig,
    sc: SparseConfig,
) -> Result<SparseRecord, TrainError> {
    let mut rec = SparseRecord {
        format: sc.format.name().to_string(),
        block: sc.block,
        kernel: crate::ops::sparse::kernel().to_string(),
        sparse_layers: 0,
        dense_layers: 0,
        stats: Default::default(),
        sparsity: f64::NAN,
        max_rel_diff: f64::NAN,
        test: None,
        inference: None,
        error: None,
    };
    let device = data.test.x.device();
    if !device.is_cpu() {
        rec.error = Some(format!(
            "the sparse kernels run on the CPU; this trial ran on {device:?}"
        ));
        return Ok(rec);
    }
    let s = match model.sparse(sc) {
        Ok(Some(s)) => s,
        Ok(None) => {
            rec.error = Some(format!("model {} has no sparse path", cfg.model.name()));
            return Ok(rec);
        }
        Err(e) => {
            rec.error = Some(format!("storing the layers sparse failed: {e}"));
            return Ok(rec);
        }
    };
    rec.sparse_layers = s.layers;
    rec.dense_layers = s.dense_layers;
    rec.stats = s.stats;
    rec.sparsity = 1.0 - s.stats.nonzeros as f64 / s.stats.weights.max(1) as f64;
    if let Some(b) = data.test.batches(cfg.eval_batch_size as usize).next() {
        let (x, _) = b?;
        let x = inputs(&x, DType::F32)?;
        let dense = model.forward(&x)?.to_dtype(DType::F32)?;
        let sparse = s.model.forward(&x)?.to_dtype(DType::F32)?;
        let diff = (&dense - &sparse)?.abs()?.max_all()?.to_scalar::<f32>()? as f64;
        let mag = dense.abs()?.max_all()?.to_scalar::<f32>()? as f64;
        rec.max_rel_diff = diff / mag.max(f64::MIN_POSITIVE);
    }
    let qm = s.model.as_ref();
    rec.test = Some(test_window(
        measurer,
        qm,
        data.test,
        cfg,
        DType::F32,
        "test/sparse",
    )?);
    rec.inference = Some(inference_window(
        measurer,
        qm,
        data.test,
        cfg,
        DType::F32,
        "inference/sparse",
    )?);
    Ok(rec)
}
