//! Energy → kWh → CO2e and water.
//!
//! Facility energy = IT energy × PUE. CO2e = facility kWh × grid intensity.
//! Water (Li et al., "Making AI Less Thirsty", arXiv 2304.03271) = IT kWh ×
//! on-site WUE + facility kWh × off-site water intensity of generation (EWIF).
//! PUE is applied once, to the energy; WUE once, to the IT energy.
//!
//! Defaults and their sources:
//! - PUE 1.56: Uptime Institute Global Data Center Survey 2024, industry average.
//! - on-site WUE 1.8 L/kWh and off-site 7.6 L/kWh: Shehabi et al., United States
//!   Data Center Energy Usage Report, LBNL 2016 (US averages).
//! - grid intensity: the bundled table `data/carbon-intensity.csv` (country
//!   figures from Our World in Data / Ember via codecarbon 3.3.2; cloud regions
//!   from the providers), default region `WORLD` (Ember 2023 world average).

pub mod hourly;
pub mod schedule;

use crate::util::units::Joules;
use serde::{Deserialize, Serialize};

pub const TABLE_CSV: &str = include_str!("../../data/carbon-intensity.csv");
pub const TABLE_NAME: &str =
    "joulebench carbon-intensity table v1 (OWID/Ember via codecarbon 3.3.2; cloud providers)";
pub const DEFAULT_REGION: &str = "WORLD";
pub const DEFAULT_PUE: f64 = 1.56;
pub const DEFAULT_WUE_ONSITE: f64 = 1.8;
pub const DEFAULT_WATER_OFFSITE: f64 = 7.6;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImpactError {
    #[error(
        "unknown region `{region}`; did you mean: {suggestions}? (`joulebench regions` lists all {count})"
    )]
    UnknownRegion {
        region: String,
        suggestions: String,
        count: usize,
    },
    #[error("{field} = {value} is not allowed: {allowed}")]
    Invalid {
        field: &'static str,
        value: f64,
        allowed: &'static str,
    },
    #[error("{field} = {value:?} is not allowed: {allowed}")]
    InvalidText {
        field: &'static str,
        value: String,
        allowed: String,
    },
    #[error("bundled carbon table is malformed at line {line}: {message}")]
    Table { line: usize, message: String },
}

/// One row of the carbon table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub g_co2e_per_kwh: f64,
    /// Year of the figure, where the source gives one.
    pub year: Option<u32>,
    pub source: String,
}

/// Parses the bundled table (comment lines start with `#`).
pub fn regions() -> Result<Vec<Region>, ImpactError> {
    let body: String = TABLE_CSV
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut rdr = csv::Reader::from_reader(body.as_bytes());
    let mut out = Vec::new();
    for (i, row) in rdr.records().enumerate() {
        let table = |message: String| ImpactError::Table {
            line: i + 2,
            message,
        };
        let row = row.map_err(|e| table(e.to_string()))?;
        let g: f64 = row[3]
            .parse()
            .map_err(|_| table(format!("intensity {:?} is not a number", &row[3])))?;
        out.push(Region {
            code: row[0].to_string(),
            name: row[1].to_string(),
            kind: row[2].to_string(),
            g_co2e_per_kwh: g,
            year: row[4].parse().ok(),
            source: row[5].to_string(),
        });
    }
    Ok(out)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Finds a region by code (case-insensitive) or exact country name.
/// Checks that `region` names a bundled hourly profile or a row of the
/// annual table (what `ImpactSettings::new` accepts), without building the settings.
pub fn check_region(region: &str) -> Result<(), ImpactError> {
    match hourly::find(region) {
        Some(b) => lookup(b.annual).map(|_| ()),
        None => lookup(region).map(|_| ()),
    }
}

pub fn lookup(region: &str) -> Result<Region, ImpactError> {
    let all = regions()?;
    if region.chars().count() > 100 {
        let head: String = region.chars().take(60).collect();
        return Err(ImpactError::UnknownRegion {
            region: format!("{head}… ({} characters in all)", region.chars().count()),
            suggestions: "a country code, country name or cloud region of at most 100 characters"
                .into(),
            count: all.len(),
        });
    }
    let q = region.to_lowercase();
    if let Some(r) = all
        .iter()
        .find(|r| r.code.to_lowercase() == q || r.name.to_lowercase() == q)
    {
        return Ok(r.clone());
    }
    let mut scored: Vec<(usize, &Region)> = all
        .iter()
        .map(|r| {
            let d = edit_distance(&q, &r.code.to_lowercase())
                .min(edit_distance(&q, &r.name.to_lowercase()));
            let d = if r.name.to_lowercase().contains(&q) || r.code.to_lowercase().contains(&q) {
                0
            } else {
                d
            };
            (d, r)
        })
        .collect();
    scored.sort_by_key(|(d, r)| (*d, r.code.clone()));
    let suggestions = scored
        .iter()
        .take(5)
        .map(|(_, r)| format!("{} ({})", r.code, r.name))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ImpactError::UnknownRegion {
        region: region.to_string(),
        suggestions,
        count: all.len(),
    })
}

/// How grid intensity is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Intensity {
    /// One yearly average for the region (the bundled annual table).
    #[default]
    Annual,
    /// The intensity of each UTC hour the energy was drawn in (bundled
    /// hourly profile of the region, same calendar hour of its data year).
    Hourly,
}

/// CO2e from hourly intensity, beside the annual figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourlyImpact {
    /// Profile id and its data year.
    pub profile: String,
    pub year: i32,
    pub gross_co2e_g: f64,
    pub net_co2e_g: Option<f64>,
    /// Effective intensity over the gross energy, gCO2e/kWh.
    pub g_co2e_per_kwh: f64,
    /// How wall-clock hours were matched to the data year.
    pub mapping: String,
}

/// The constants an impact figure is computed with (all recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpactSettings {
    /// The annual-table region (for an hourly grid, its country's row).
    pub region: Region,
    /// `annual` or `hourly` (older records: annual).
    #[serde(default)]
    pub intensity: Intensity,
    /// The hourly profile used when `intensity` is hourly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly: Option<hourly::ProfileRef>,
    pub dataset: String,
    pub pue: f64,
    /// On-site water usage effectiveness, litres per kWh of IT energy.
    pub wue_onsite_l_per_kwh: f64,
    /// Water consumed to generate electricity, litres per kWh delivered.
    pub water_offsite_l_per_kwh: f64,
}

impl ImpactSettings {
    pub fn new(
        region: Option<&str>,
        pue: Option<f64>,
        wue: Option<f64>,
        offsite: Option<f64>,
    ) -> Result<Self, ImpactError> {
        let pue = pue.unwrap_or(DEFAULT_PUE);
        if !(pue.is_finite() && (1.0..=5.0).contains(&pue)) {
            return Err(ImpactError::Invalid {
                field: "pue",
                value: pue,
                allowed: "PUE is facility energy / IT energy, a number in [1, 5]",
            });
        }
        let check = |field, v: f64| {
            if v.is_finite() && (0.0..=100.0).contains(&v) {
                Ok(v)
            } else {
                Err(ImpactError::Invalid {
                    field,
                    value: v,
                    allowed: "litres per kWh, a number in [0, 100]",
                })
            }
        };
        let requested = region.unwrap_or(DEFAULT_REGION);
        let (annual, profile) = match hourly::find(requested) {
            Some(b) => (lookup(b.annual)?, Some(b)),
            None => {
                let r = lookup(requested)?;
                let p = hourly::for_annual(&r.code);
                (r, p)
            }
        };
        Ok(Self {
            region: annual,
            intensity: if profile.is_some() {
                Intensity::Hourly
            } else {
                Intensity::Annual
            },
            hourly: profile.map(|b| b.reference()),
            dataset: TABLE_NAME.into(),
            pue,
            wue_onsite_l_per_kwh: check("wue_onsite", wue.unwrap_or(DEFAULT_WUE_ONSITE))?,
            water_offsite_l_per_kwh: check(
                "water_offsite",
                offsite.unwrap_or(DEFAULT_WATER_OFFSITE),
            )?,
        })
    }

    /// Sets the intensity mode (`hourly` or `annual`; None keeps the
    /// default: hourly where the region has a bundled profile).
    pub fn with_intensity(mut self, mode: Option<&str>) -> Result<Self, ImpactError> {
        match mode {
            None => {}
            Some("annual") => {
                self.intensity = Intensity::Annual;
                self.hourly = None;
            }
            Some("hourly") if self.hourly.is_some() => self.intensity = Intensity::Hourly,
            Some("hourly") => {
                return Err(ImpactError::InvalidText {
                    field: "intensity",
                    value: "hourly".into(),
                    allowed: format!(
                        "region {} has no bundled hourly profile; regions with one: {}",
                        self.region.code,
                        hourly::BUNDLED
                            .iter()
                            .map(|b| b.id)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            Some(other) => {
                return Err(ImpactError::InvalidText {
                    field: "intensity",
                    value: crate::util::clip(other),
                    allowed: "hourly | annual".into(),
                });
            }
        }
        Ok(self)
    }

    /// CO2e of windows from the hourly profile, when the mode is hourly and
    /// every window has its wall-clock start.
    pub fn hourly_impact(
        &self,
        gross: &[hourly::Span],
        net: Option<&[hourly::Span]>,
    ) -> Option<HourlyImpact> {
        if self.intensity != Intensity::Hourly {
            return None;
        }
        let b = hourly::find(&self.hourly.as_ref()?.id)?;
        let p = b.load().ok()?;
        let g = p.grams(gross, self.pue);
        let kwh: f64 = gross.iter().map(|s| s.joules).sum::<f64>() / 3.6e6 * self.pue;
        Some(HourlyImpact {
            profile: b.id.into(),
            year: b.year,
            gross_co2e_g: g,
            net_co2e_g: net.map(|n| p.grams(n, self.pue)),
            g_co2e_per_kwh: if kwh > 0.0 { g / kwh } else { 0.0 },
            mapping: format!(
                "each UTC hour mapped to the same month, day and hour of {} (29 Feb -> 28 Feb)",
                b.year
            ),
        })
    }

    /// Impact of `energy` of IT (device) energy.
    pub fn impact(&self, energy: Joules) -> Impact {
        let kwh_it = energy.kwh();
        let kwh_facility = kwh_it * self.pue;
        Impact {
            kwh_it,
            kwh_facility,
            co2e_g: kwh_facility * self.region.g_co2e_per_kwh,
            water_l: kwh_it * self.wue_onsite_l_per_kwh
                + kwh_facility * self.water_offsite_l_per_kwh,
        }
    }
}

/// CO2e and water of some energy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    pub kwh_it: f64,
    pub kwh_facility: f64,
    pub co2e_g: f64,
    pub water_l: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_energy_gives_known_grams_and_litres() {
        let s = ImpactSettings::new(Some("FRA"), Some(1.5), Some(2.0), Some(4.0)).unwrap();
        assert_eq!(s.region.name, "France");
        // 10 kWh of IT energy.
        let i = s.impact(Joules(36e6));
        assert!((i.kwh_it - 10.0).abs() < 1e-12);
        assert!((i.kwh_facility - 15.0).abs() < 1e-12); // PUE once
        assert!((i.co2e_g - 15.0 * 56.039).abs() < 1e-9);
        // WUE once on IT energy, off-site on facility energy: 10*2 + 15*4
        assert!((i.water_l - 80.0).abs() < 1e-9);
    }

    #[test]
    fn defaults_are_documented_values() {
        let s = ImpactSettings::new(None, None, None, None).unwrap();
        assert_eq!(s.region.code, "WORLD");
        assert_eq!(s.region.g_co2e_per_kwh, 481.0);
        assert_eq!(
            (s.pue, s.wue_onsite_l_per_kwh, s.water_offsite_l_per_kwh),
            (1.56, 1.8, 7.6)
        );
        let i = s.impact(Joules(3.6e6));
        assert!((i.co2e_g - 1.56 * 481.0).abs() < 1e-9);
    }

    #[test]
    fn lookup_by_code_name_and_cloud_region_and_close_matches() {
        assert_eq!(lookup("deu").unwrap().code, "DEU");
        assert_eq!(lookup("Norway").unwrap().code, "NOR");
        assert_eq!(lookup("gcp:europe-west1").unwrap().g_co2e_per_kwh, 122.0);
        let e = lookup("Frnace").unwrap_err().to_string();
        assert!(
            e.contains("unknown region `Frnace`") && e.contains("FRA (France)"),
            "{e}"
        );
        assert!(regions().unwrap().len() > 250);
    }

    #[test]
    fn regions_with_a_profile_default_to_hourly() {
        let s = ImpactSettings::new(Some("GB"), None, None, None).unwrap();
        assert_eq!(
            (s.region.code.as_str(), s.intensity),
            ("GBR", Intensity::Hourly)
        );
        assert_eq!(s.hourly.as_ref().unwrap().year, 2023);
        let s = ImpactSettings::new(Some("deu"), None, None, None).unwrap();
        assert_eq!(s.hourly.as_ref().unwrap().id, "DE");
        let s = ImpactSettings::new(Some("US-CAL-CISO"), None, None, None).unwrap();
        assert_eq!(s.region.code, "USA");
        let a = s.clone().with_intensity(Some("annual")).unwrap();
        assert_eq!((a.intensity, a.hourly.is_none()), (Intensity::Annual, true));
        let w = ImpactSettings::new(None, None, None, None).unwrap();
        assert_eq!(w.intensity, Intensity::Annual);
        let e = w
            .clone()
            .with_intensity(Some("hourly"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("WORLD has no bundled hourly profile") && e.contains("GB, DE"),
            "{e}"
        );
        let e = w.with_intensity(Some("daily")).unwrap_err().to_string();
        assert!(e.contains("hourly | annual"), "{e}");
    }

    #[test]
    fn impossible_constants_are_rejected() {
        let e = ImpactSettings::new(None, Some(0.9), None, None).unwrap_err();
        assert!(e.to_string().contains("pue = 0.9 is not allowed"), "{e}");
        assert!(ImpactSettings::new(None, None, Some(-1.0), None).is_err());
    }
}
