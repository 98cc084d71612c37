//! Knowledge distillation (Hinton et al. 2015): the student learns from the
//! teacher's temperature-softened outputs and the hard labels:
//! `loss = alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(s, y)`
//! (the T^2 keeps the soft gradients' scale independent of T).

pub use crate::config::technique::DistillConfig;
pub use crate::record::technique::DistillRecord;
use candle_core::{D, Result, Tensor};
use candle_nn::ops::log_softmax;

/// Distillation as trainer hooks: each micro-batch runs the teacher in its
/// own measurement window (so its inference energy is recorded separately
/// from the student's), then replaces the loss with `kd_loss`.
pub struct Distiller {
    pub teacher: Box<dyn crate::model::Model>,
    pub temperature: f64,
    pub alpha: f64,
    /// Teacher forward passes during distillation (nested in the training windows).
    pub teacher_inference: Vec<crate::meter::EnergyReading>,
}

impl crate::train::Hooks for Distiller {
    fn loss(
        &mut self,
        x: &Tensor,
        logits: &Tensor,
        y: &Tensor,
        measurer: &mut crate::meter::Measurer,
    ) -> std::result::Result<Tensor, crate::train::TrainError> {
        let w = measurer.begin("teacher-inference")?;
        let t = self
            .teacher
            .forward(&x.to_dtype(candle_core::DType::F32)?)?
            .to_dtype(candle_core::DType::F32)?
            .detach();
        self.teacher_inference.push(measurer.end(w)?);
        Ok(kd_loss(logits, &t, y, self.temperature, self.alpha)?)
    }
}

/// The distillation loss for (B, C) logits and (B,) labels, averaged over the batch.
pub fn kd_loss(
    student: &Tensor,
    teacher: &Tensor,
    y: &Tensor,
    t: f64,
    alpha: f64,
) -> Result<Tensor> {
    let log_ps = log_softmax(&(student / t)?, D::Minus1)?;
    let log_pt = log_softmax(&(teacher.detach() / t)?, D::Minus1)?;
    let pt = log_pt.exp()?;
    let b = student.dim(0)? as f64;
    let kl = ((&pt * (log_pt - &log_ps)?)?.sum_all()? / b)?;
    let ce = candle_nn::loss::cross_entropy(student, y)?;
    (kl * (alpha * t * t))? + (ce * (1.0 - alpha))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_a_hand_computed_value() -> Result<()> {
        let dev = Device::Cpu;
        // One sample, two classes. Student logits [0, 0], teacher [2, 0], label 0, T = 2, alpha = 0.5.
        let s = Tensor::new(&[[0f32, 0.0]], &dev)?;
        let t = Tensor::new(&[[2f32, 0.0]], &dev)?;
        let y = Tensor::new(&[0u32], &dev)?;
        let got = kd_loss(&s, &t, &y, 2.0, 0.5)?.to_scalar::<f32>()? as f64;
        // Teacher soft targets at T=2: softmax([1, 0]) = [e/(e+1), 1/(e+1)] = [0.731059, 0.268941].
        // Student at T=2: [0.5, 0.5]. KL = sum p ln(p / 0.5) = 0.731059 ln 1.462117 + 0.268941 ln 0.537883
        //    = 0.277726 - 0.166782 = 0.110944. CE(student, 0) = ln 2 = 0.693147.
        // loss = 0.5 * 4 * 0.110944 + 0.5 * 0.693147 = 0.221888 + 0.346574 = 0.568462
        assert!((got - 0.568462).abs() < 1e-5, "{got}");
        Ok(())
    }
}
