//! `joulebench meters` and `joulebench regions`: what measures here, and the
//! bundled carbon-intensity table.

use super::args::MeterArgs;
use anyhow::Result;
use joulebench::console::meters::{Target, calibrate, report};

pub fn meters(meter: MeterArgs, calibrate_seconds: Option<f64>) -> Result<i32> {
    let target = Target {
        device: meter.device()?.0,
        settings: meter.checked()?,
    };
    match calibrate_seconds {
        None => print!("{}", report(&target)?),
        Some(s) => print!("{}", calibrate(&target, s)?),
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
