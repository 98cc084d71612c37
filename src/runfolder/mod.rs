//! The run-folder format: `suite.toml`, `manifest.json` and `trials.jsonl`
//! of one run (`store`), the manifest's provenance (`manifest`), and the
//! sharded layout several processes write into and readers merge
//! (`sharded`). Running a plan (`harness`) writes these; `analysis` reads them.

pub mod manifest;
pub mod sharded;
pub mod store;
