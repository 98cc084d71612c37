//! Helpers shared by integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Writes a small synthetic Fashion-MNIST-shaped dataset (5,600 training
/// images: 5,000 validation + 600 training; 400 test).
pub fn fixture_dataset(dir: &Path) -> PathBuf {
    let d = dir.join("fmnist");
    joulebench::data::fashion_mnist::write_fixture(&d, 5_600, 400, 7).unwrap();
    d
}

/// The real Fashion-MNIST folder, or None (the test then skips) unless
/// JOULEBENCH_REQUIRE_DATA=1, which turns a missing dataset into a failure (CI).
pub fn real_dataset() -> Option<PathBuf> {
    let dir = joulebench::data::fashion_mnist::resolve_dir(None, None);
    if dir.join("train-images-idx3-ubyte.gz").exists()
        || dir.join("train-images-idx3-ubyte").exists()
    {
        return Some(dir);
    }
    if std::env::var("JOULEBENCH_REQUIRE_DATA").is_ok_and(|v| v == "1") {
        panic!(
            "JOULEBENCH_REQUIRE_DATA=1 but Fashion-MNIST is missing in {}: apt-get install dataset-fashion-mnist",
            dir.display()
        );
    }
    eprintln!("skipping: Fashion-MNIST not installed in {}", dir.display());
    None
}
