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
    println!(
        "\nHourly profiles (give the id as the region; CO2e then uses each hour's intensity, `intensity = \"annual\"` turns it off):"
    );
    println!(
        "{:<12} {:>5} {:>7} {:>7} {:>7}  name; annual row; file",
        "id", "year", "min", "mean", "max"
    );
    let mut families = Vec::new();
    for b in joulebench::impact::hourly::BUNDLED {
        let p = b.load()?;
        let (min, max) = p
            .values
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, c), v| (a.min(*v), c.max(*v)));
        let mean = p.values.iter().sum::<f64>() / p.values.len() as f64;
        println!(
            "{:<12} {:>5} {:>7.1} {:>7.1} {:>7.1}  {}; {}; {}",
            b.id, b.year, min, mean, max, b.name, b.annual, b.file
        );
        if !families.contains(&b.family) {
            families.push(b.family);
        }
    }
    println!("\nHourly data sources, licences and required attributions:");
    for f in families {
        println!(
            "- {}\n  licence: {}\n  attribution: {}",
            f.source(),
            f.licence(),
            f.attribution()
        );
    }
    Ok(0)
}
