//! Physical-unit newtypes. Every energy, power and time figure in the crate is
//! one of these, so a joule can never be added to a second by accident.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Div, Mul, Sub};

macro_rules! unit {
    ($name:ident, $suffix:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub f64);

        impl $name {
            pub const ZERO: Self = Self(0.0);
            pub fn value(self) -> f64 {
                self.0
            }
            pub fn is_finite(self) -> bool {
                self.0.is_finite()
            }
            pub fn max(self, other: Self) -> Self {
                Self(self.0.max(other.0))
            }
        }
        impl Add for $name {
            type Output = Self;
            fn add(self, o: Self) -> Self {
                Self(self.0 + o.0)
            }
        }
        impl AddAssign for $name {
            fn add_assign(&mut self, o: Self) {
                self.0 += o.0;
            }
        }
        impl Sub for $name {
            type Output = Self;
            fn sub(self, o: Self) -> Self {
                Self(self.0 - o.0)
            }
        }
        impl Mul<f64> for $name {
            type Output = Self;
            fn mul(self, k: f64) -> Self {
                Self(self.0 * k)
            }
        }
        impl std::iter::Sum for $name {
            fn sum<I: Iterator<Item = Self>>(it: I) -> Self {
                Self(it.map(|x| x.0).sum())
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match f.precision() {
                    Some(p) => write!(f, "{:.*} {}", p, self.0, $suffix),
                    None => write!(f, "{} {}", self.0, $suffix),
                }
            }
        }
    };
}

unit!(Joules, "J", "Energy in joules.");
unit!(Watts, "W", "Power in watts.");
unit!(Seconds, "s", "Duration in seconds.");

impl Mul<Seconds> for Watts {
    type Output = Joules;
    fn mul(self, s: Seconds) -> Joules {
        Joules(self.0 * s.0)
    }
}

impl Div<Seconds> for Joules {
    type Output = Watts;
    fn div(self, s: Seconds) -> Watts {
        Watts(self.0 / s.0)
    }
}

impl Joules {
    /// Kilowatt-hours (1 kWh = 3.6 MJ).
    pub fn kwh(self) -> f64 {
        self.0 / 3.6e6
    }
}

impl Seconds {
    pub fn from_duration(d: std::time::Duration) -> Self {
        Self(d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watts_times_seconds_is_joules() {
        assert_eq!(Watts(10.0) * Seconds(3.0), Joules(30.0));
        assert_eq!(Joules(30.0) / Seconds(3.0), Watts(10.0));
        assert!((Joules(3.6e6).kwh() - 1.0).abs() < 1e-12);
        assert_eq!(format!("{:.1}", Joules(2.25)), "2.2 J");
    }
}
