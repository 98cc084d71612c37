//! Which custom kernels may run: each kernel's name, whether its
//! self-check (`ops::selfcheck`) switched it off, and the test switch that
//! makes it wrong on purpose. The kernels consult this; the checks set it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

crate::named_enum! {
    /// A custom kernel that is self-checked.
    pub enum Kernel: "kernel" {
        Linear = "linear",
        Conv2d = "conv2d",
        MaxPool2 = "max-pool2",
        CrossEntropy = "cross-entropy",
        Gelu = "gelu",
        Bf16Gemm = "bf16-gemm",
        FusedOptimizer = "fused-optimizer",
        CudaAdamW = "cuda-adamw",
        CudaBiasAct = "cuda-bias-act",
        CudaCrossEntropy = "cuda-cross-entropy",
    }
}

const COUNT: usize = 10;
const _: () = assert!(Kernel::ALL.len() == COUNT, "COUNT must list every kernel");

impl Kernel {
    fn index(self) -> usize {
        Kernel::ALL
            .iter()
            .position(|&(_, k)| k == self)
            .unwrap_or(0)
    }
}

static DISABLED: [AtomicBool; COUNT] = [const { AtomicBool::new(false) }; COUNT];

/// Whether `kernel` may run (it has not failed its self-check).
pub fn enabled(kernel: Kernel) -> bool {
    !DISABLED[kernel.index()].load(Ordering::Relaxed)
}

pub(super) fn disable(kernel: Kernel) {
    DISABLED[kernel.index()].store(true, Ordering::Relaxed);
}

/// Whether `kernel` is told to compute a wrong result
/// (`JOULEBENCH_FAULTY_KERNEL`, for tests).
pub fn faulty(kernel: Kernel) -> bool {
    static FAULTY: OnceLock<Vec<Kernel>> = OnceLock::new();
    FAULTY
        .get_or_init(|| {
            let v = std::env::var("JOULEBENCH_FAULTY_KERNEL").unwrap_or_default();
            let names = v.split(',').map(str::trim).filter(|s| !s.is_empty());
            names
                .filter_map(|n| match n.parse::<Kernel>() {
                    Ok(k) => Some(k),
                    Err(e) => {
                        tracing::warn!("JOULEBENCH_FAULTY_KERNEL: {e}");
                        None
                    }
                })
                .collect()
        })
        .contains(&kernel)
}

/// The deliberate fault of a faulty kernel: its first output is off by one.
pub(crate) fn corrupt(kernel: Kernel, out: &mut [f32]) {
    if faulty(kernel)
        && let Some(v) = out.first_mut()
    {
        *v += 1.0;
    }
}
