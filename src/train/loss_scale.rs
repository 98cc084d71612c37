//! Dynamic loss scaling for f16 mixed precision (as in Micikevicius et al.
//! 2018 and PyTorch's GradScaler): multiply the loss by `scale` so small
//! gradients survive f16; if any unscaled gradient is inf/NaN, skip the step
//! and halve the scale; after `growth_interval` clean steps, double it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    pub growth_interval: u32,
    clean_steps: u32,
    pub skipped_steps: u64,
}

impl LossScaler {
    pub fn new(init: f64, growth_interval: u32) -> Self {
        Self {
            scale: init,
            growth_interval,
            clean_steps: 0,
            skipped_steps: 0,
        }
    }

    /// Records one step's outcome; returns whether the optimizer may step.
    pub fn update(&mut self, found_non_finite: bool) -> bool {
        if found_non_finite {
            self.scale = (self.scale / 2.0).max(1.0);
            self.clean_steps = 0;
            self.skipped_steps += 1;
            false
        } else {
            self.clean_steps += 1;
            if self.clean_steps >= self.growth_interval {
                self.scale *= 2.0;
                self.clean_steps = 0;
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_and_skips_on_inf_then_grows_after_n_clean_steps() {
        let mut s = LossScaler::new(1024.0, 3);
        assert!(!s.update(true));
        assert_eq!((s.scale, s.skipped_steps), (512.0, 1));
        assert!(s.update(false) && s.update(false));
        assert_eq!(s.scale, 512.0);
        assert!(s.update(false));
        assert_eq!(s.scale, 1024.0, "grows after 3 clean steps");
        assert!(s.update(false) && s.update(false));
        assert!(!s.update(true), "an inf resets the clean count");
        assert_eq!((s.scale, s.skipped_steps), (512.0, 2));
        assert!(s.update(false) && s.update(false));
        assert_eq!(s.scale, 512.0);
    }
}
