//! `joulebench meters` and `joulebench regions`: what measures here, and the
//! bundled carbon-intensity table.

use super::args::{DataArgs, MeterArgs, run_options};
use anyhow::Result;

pub fn meters(meter: MeterArgs, calibrate: Option<f64>) -> Result<i32> {
    let opts = run_options(&meter, DataArgs::default())?;
    match calibrate {
        None => print!("{}", joulebench::harness::meters_report::report(&opts)?),
        Some(s) => print!(
            "{}",
            joulebench::harness::meters_report::calibrate(&opts, s)?
        ),
    }
    Ok(0)
}

pub fn regions() -> Result<i32> {
    println!(
        "{:<28} {:>8} {:>6}  name (source)",
        "code", "gCO2e/kWh", "year"
    );
    for r in joulebench::impact::regions()? {
        println!(
            "{:<28} {:>8.1} {:>6}  {} ({})",
            r.code,
            r.g_co2e_per_kwh,
            r.year.map_or("-".into(), |y| y.to_string()),
            r.name,
            r.source
        );
    }
    Ok(0)
}
