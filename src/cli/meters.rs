//! `joulebench meters` and `joulebench regions`: what measures here, and the
//! bundled carbon-intensity table.

use super::args::MeterArgs;
use anyhow::Result;
use joulebench::console::meters::{Target, calibrate, report};
use joulebench::util::table::{Col, TextTable};

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
    let mut t = TextTable::new(&[
        ("code", Col::Left),
        ("gCO2e/kWh", Col::Right),
        ("year", Col::Right),
        ("name (source)", Col::Wrap),
    ]);
    for r in joulebench::impact::regions()? {
        t.row([
            r.code.to_string(),
            format!("{:.1}", r.g_co2e_per_kwh),
            r.year.map_or("-".into(), |y| y.to_string()),
            format!("{} ({})", r.name, r.source),
        ]);
    }
    print!("{}", t.render());
    println!(
        "\nHourly profiles (give the id as the region; CO2e then uses each hour's intensity, `intensity = \"annual\"` turns it off):"
    );
    let mut t = TextTable::new(&[
        ("id", Col::Left),
        ("year", Col::Right),
        ("min", Col::Right),
        ("mean", Col::Right),
        ("max", Col::Right),
        ("name; annual row; file", Col::Wrap),
    ]);
    let mut families = Vec::new();
    for b in joulebench::impact::hourly::BUNDLED {
        let p = b.load()?;
        let (min, max) = p
            .values
            .iter()
            .fold((f64::MAX, 0.0f64), |(a, c), v| (a.min(*v), c.max(*v)));
        let mean = p.values.iter().sum::<f64>() / p.values.len() as f64;
        t.row([
            b.id.to_string(),
            b.year.to_string(),
            format!("{min:.1}"),
            format!("{mean:.1}"),
            format!("{max:.1}"),
            format!("{}; {}; {}", b.name, b.annual, b.file),
        ]);
        if !families.contains(&b.family) {
            families.push(b.family);
        }
    }
    print!("{}", t.render());
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
