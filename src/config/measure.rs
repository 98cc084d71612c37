//! Measurement settings: which meter, as chosen in a suite or on the
//! command line.

crate::named_enum! {
    /// Meter selection as written in a suite or on the command line.
    pub enum MeterChoice: "meter" {
        /// Every real source available (NVML, RAPL), the estimate for the rest.
        Auto = "auto",
        /// NVIDIA GPUs through NVML only.
        Nvml = "nvml",
        /// CPU packages and DRAM through Linux RAPL (powercap) only.
        Rapl = "rapl",
        /// Labelled estimate from process CPU time × rated watts per core.
        Estimate = "estimate",
        /// Deterministic scripted meter (tests and demos; every value labelled `fake`).
        Fake = "fake",
    }
}
