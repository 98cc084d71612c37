//! Running a plan: trials in order with their measurement, the data they
//! train on, and the measurement settings in force.

pub mod datasets;
pub mod options;
pub mod rounds;
pub mod runner;
