//! Fashion-MNIST from Debian's `dataset-fashion-mnist` package.
//!
//! Splits are fixed: training = the first 55,000 training images, validation =
//! the last 5,000, test = the official 10,000. Pixels are scaled to [0, 1].

use super::idx::{self, IdxError};
use super::{Split, Splits};
use std::path::{Path, PathBuf};

pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Environment variable that overrides the dataset folder.
pub const ENV_DIR: &str = "JOULEBENCH_FASHION_MNIST";
pub const VALIDATION_SIZE: usize = 5_000;
pub const CLASSES: usize = 10;
pub const INSTALL_HINT: &str = "install it with `sudo apt-get install dataset-fashion-mnist` \
(Debian/Ubuntu; files land in /usr/share/datasets/fashion-mnist), or point \
JOULEBENCH_FASHION_MNIST, --data-dir or the suite's [data] fashion_mnist at a folder holding \
train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz) and \
t10k-labels-idx1-ubyte(.gz)";

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("Fashion-MNIST not found in {dir}: missing {file}; {hint}", hint = INSTALL_HINT)]
    Missing { dir: PathBuf, file: String },
    #[error("Fashion-MNIST in {dir} is unusable: {source}; reinstall it: {hint}", hint = INSTALL_HINT)]
    Corrupt {
        dir: PathBuf,
        #[source]
        source: IdxError,
    },
    #[error(
        "Fashion-MNIST in {dir}: {images} has {n_images} images but {labels} has {n_labels} labels"
    )]
    CountMismatch {
        dir: PathBuf,
        images: String,
        labels: String,
        n_images: usize,
        n_labels: usize,
    },
    #[error("Fashion-MNIST in {dir}: {file} holds label {label}, allowed 0..=9")]
    BadLabel {
        dir: PathBuf,
        file: String,
        label: u8,
    },
    #[error(
        "Fashion-MNIST in {dir}: the training files hold {n} images, too few for a {VALIDATION_SIZE}-image validation split plus training"
    )]
    TooSmall { dir: PathBuf, n: usize },
    #[error("tensor error while preparing data: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Which folder to read: flag > environment > suite > default.
pub fn resolve_dir(flag: Option<&Path>, suite: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(ENV_DIR).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = suite {
        return p.to_path_buf();
    }
    PathBuf::from(DEFAULT_DIR)
}

fn find(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(&name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(DataError::Missing {
        dir: dir.to_path_buf(),
        file: format!("{stem}(.gz)"),
    })
}

/// Raw bytes of one official file pair.
struct Pair {
    images: Vec<u8>,
    labels: Vec<u8>,
    n: usize,
}

fn load_pair(dir: &Path, prefix: &str) -> Result<Pair, DataError> {
    let img_stem = format!("{prefix}-images-idx3-ubyte");
    let lbl_stem = format!("{prefix}-labels-idx1-ubyte");
    let img_path = find(dir, &img_stem)?;
    let lbl_path = find(dir, &lbl_stem)?;
    let corrupt = |source| DataError::Corrupt {
        dir: dir.to_path_buf(),
        source,
    };
    let images = idx::read(&img_path, 3).map_err(corrupt)?;
    let labels = idx::read(&lbl_path, 1).map_err(corrupt)?;
    if images.dims[1] != 28 || images.dims[2] != 28 {
        return Err(corrupt(IdxError::BadShape {
            path: img_path,
            found: images.dims,
            expected: "N x 28 x 28".into(),
        }));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(DataError::CountMismatch {
            dir: dir.to_path_buf(),
            images: img_stem,
            labels: lbl_stem,
            n_images: images.dims[0],
            n_labels: labels.dims[0],
        });
    }
    if let Some(&bad) = labels.data.iter().find(|&&l| l as usize >= CLASSES) {
        return Err(DataError::BadLabel {
            dir: dir.to_path_buf(),
            file: lbl_stem,
            label: bad,
        });
    }
    Ok(Pair {
        n: images.dims[0],
        images: images.data,
        labels: labels.data,
    })
}

fn split(p: &Pair, range: std::ops::Range<usize>) -> Split {
    let px = 28 * 28;
    Split {
        features: super::Features::F32(
            p.images[range.start * px..range.end * px]
                .iter()
                .map(|&b| b as f32 / 255.0)
                .collect(),
        ),
        labels: p.labels[range.clone()].iter().map(|&l| l as u32).collect(),
        feature_shape: vec![1, 28, 28],
        label_len: 1,
    }
}

/// Loads the three splits from `dir`.
pub fn load(dir: &Path) -> Result<Splits, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            dir: dir.to_path_buf(),
            file: "the folder itself".into(),
        });
    }
    let train = load_pair(dir, "train")?;
    let test = load_pair(dir, "t10k")?;
    if train.n <= VALIDATION_SIZE {
        return Err(DataError::TooSmall {
            dir: dir.to_path_buf(),
            n: train.n,
        });
    }
    let cut = train.n - VALIDATION_SIZE;
    Ok(Splits {
        name: "fashion-mnist".into(),
        source: dir.to_path_buf(),
        classes: CLASSES,
        train: split(&train, 0..cut),
        validation: split(&train, cut..train.n),
        test: split(&test, 0..test.n),
    })
}

/// Writes a small synthetic dataset in the Fashion-MNIST layout (tests, demos).
///
/// Each class gets a distinct bright block, plus seeded noise, so a model can
/// learn it in a few steps. `n_train` must exceed the 5,000-image validation split.
pub fn write_fixture(dir: &Path, n_train: usize, n_test: usize, seed: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = crate::util::rng::Rng::new(seed);
    let mut make = |n: usize| {
        let mut imgs = vec![0u8; n * 784];
        let mut labels = vec![0u8; n];
        for i in 0..n {
            let c = rng.below(CLASSES);
            labels[i] = c as u8;
            let img = &mut imgs[i * 784..(i + 1) * 784];
            for (j, px) in img.iter_mut().enumerate() {
                let (r, col) = (j / 28, j % 28);
                let in_block = r / 7 == c % 4 && col / 7 == c / 4 + (c % 2);
                let noise = (rng.next_f64() * 90.0) as u8;
                *px = if in_block { 160 + noise } else { noise };
            }
        }
        (imgs, labels)
    };
    let (ti, tl) = make(n_train);
    let (si, sl) = make(n_test);
    idx::write(
        &dir.join("train-images-idx3-ubyte.gz"),
        &[n_train, 28, 28],
        &ti,
        true,
    )?;
    idx::write(
        &dir.join("train-labels-idx1-ubyte.gz"),
        &[n_train],
        &tl,
        true,
    )?;
    idx::write(
        &dir.join("t10k-images-idx3-ubyte"),
        &[n_test, 28, 28],
        &si,
        false,
    )?;
    idx::write(&dir.join("t10k-labels-idx1-ubyte"), &[n_test], &sl, false)?;
    Ok(())
}
