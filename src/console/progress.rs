//! Progress display: bars on a terminal, log lines otherwise.

use crate::record::EpochRecord;
use crate::train::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub enum Console {
    Bars {
        multi: MultiProgress,
        trials: ProgressBar,
        steps: ProgressBar,
    },
    Lines,
}

impl Console {
    /// Bars when stderr is a terminal, plain `tracing` lines otherwise.
    pub fn new(total_trials: usize) -> Console {
        if !std::io::stderr().is_terminal() {
            return Console::Lines;
        }
        let multi = MultiProgress::new();
        let trials = multi.add(ProgressBar::new(total_trials as u64));
        trials.set_style(
            ProgressStyle::with_template("trials {bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let steps = multi.add(ProgressBar::new(0));
        steps.set_style(
            ProgressStyle::with_template("steps  {bar:30} {pos}/{len} {per_sec} eta {eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Console::Bars {
            multi,
            trials,
            steps,
        }
    }
}

impl Progress for Console {
    fn trial_start(&self, index: usize, total: usize, label: &str, steps: u64) {
        match self {
            Console::Bars {
                trials, steps: s, ..
            } => {
                trials.set_message(label.to_string());
                s.reset();
                s.set_length(steps);
            }
            Console::Lines => {
                tracing::info!("trial {}/{total} {label}: {steps} steps", index + 1)
            }
        }
    }

    fn step(&self) {
        if let Console::Bars { steps, .. } = self {
            steps.inc(1);
        }
    }

    fn epoch_end(&self, label: &str, e: &EpochRecord) {
        let msg = format!(
            "epoch {}: loss {} val acc {} {:.1} s {:.1} J ({})",
            e.epoch,
            e.train_loss.map_or("NaN".into(), |l| format!("{l:.4}")),
            e.val_accuracy
                .map_or("-".into(), |a| format!("{:.2}%", a * 100.0)),
            e.train.seconds.0,
            e.train.joules.0,
            e.train.provenance_label()
        );
        match self {
            Console::Bars { multi, .. } => {
                let _ = multi.println(format!("  {label} {msg}"));
            }
            Console::Lines => tracing::info!("  {label} {msg}"),
        }
    }

    fn trial_end(&self, label: &str, summary: &str) {
        match self {
            Console::Bars { multi, trials, .. } => {
                let _ = multi.println(format!("{label} {summary}"));
                trials.inc(1);
            }
            // A failed trial's reason is a warning: it shows with JOULEBENCH_LOG=warn too.
            Console::Lines if summary.starts_with("FAILED") => {
                tracing::warn!("{label} {summary}")
            }
            Console::Lines => tracing::info!("{label} {summary}"),
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Console::Bars { trials, steps, .. } = self {
            steps.finish_and_clear();
            trials.finish_and_clear();
        }
    }
}
