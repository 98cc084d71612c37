//! Early stopping: patience on a validation metric and a target-accuracy
//! stop, as a state machine fed one evaluation at a time.

use crate::config::{EarlyStopping, StopMetric};
pub use crate::record::StopReason;

pub struct EarlyStopper {
    cfg: EarlyStopping,
    best: Option<f64>,
    waited: u32,
}

impl EarlyStopper {
    pub fn new(cfg: EarlyStopping) -> Self {
        Self {
            cfg,
            best: None,
            waited: 0,
        }
    }

    /// Feeds one evaluation; returns a reason to stop, if any.
    pub fn observe(
        &mut self,
        val_loss: Option<f64>,
        val_accuracy: Option<f64>,
    ) -> Option<StopReason> {
        if let (Some(t), Some(a)) = (self.cfg.target_accuracy, val_accuracy)
            && a >= t
        {
            return Some(StopReason::TargetReached);
        }
        let patience = self.cfg.patience?;
        let (x, higher_is_better) = match self.cfg.metric {
            StopMetric::ValLoss => (val_loss?, false),
            StopMetric::ValAccuracy => (val_accuracy?, true),
        };
        let improved = match self.best {
            None => true,
            Some(b) if higher_is_better => x - b > self.cfg.min_delta,
            Some(b) => b - x > self.cfg.min_delta,
        };
        if improved {
            self.best = Some(x);
            self.waited = 0;
            None
        } else {
            self.waited += 1;
            (self.waited >= patience).then_some(StopReason::PatienceExhausted)
        }
    }
}
