//! IDX reader and Fashion-MNIST loader: round trips and every error.

use joulebench::data::fashion_mnist::{self, DataError};
use joulebench::data::idx::{self, IdxError};
use std::path::Path;

#[test]
fn idx_round_trips_plain_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8 * 7).collect();
    for gz in [false, true] {
        let p = dir.path().join(format!("a{gz}"));
        idx::write(&p, &[2, 3, 4], &data, gz).unwrap();
        let a = idx::read(&p, 3).unwrap();
        assert_eq!(a.dims, vec![2, 3, 4]);
        assert_eq!(a.data, data);
    }
}

#[test]
fn idx_errors_name_the_problem() {
    let p = Path::new("x.idx");
    let good = idx::encode(&[3, 2], &[1, 2, 3, 4, 5, 6]);
    assert!(matches!(
        idx::decode(p, &good[..good.len() - 2], 2),
        Err(IdxError::Truncated {
            expected: 6,
            got: 4,
            ..
        })
    ));
    let mut extra = good.clone();
    extra.push(9);
    assert!(matches!(
        idx::decode(p, &extra, 2),
        Err(IdxError::TrailingBytes { extra: 1, .. })
    ));
    let e = idx::decode(p, &good, 3).unwrap_err().to_string();
    assert!(e.contains("not an IDX file of unsigned bytes"), "{e}");
    let mut wrong_type = good.clone();
    wrong_type[2] = 0x0D; // float
    assert!(matches!(
        idx::decode(p, &wrong_type, 2),
        Err(IdxError::BadMagic { .. })
    ));
    assert!(matches!(
        idx::decode(p, &good[..3], 2),
        Err(IdxError::BadMagic { .. })
    ));
    assert!(matches!(
        idx::decode(p, &good[..9], 2),
        Err(IdxError::Truncated { .. })
    ));
    assert!(matches!(
        idx::read(Path::new("/nonexistent/x"), 2),
        Err(IdxError::NotFound { .. })
    ));
}

#[test]
fn fixture_dataset_loads_with_fixed_splits() {
    let dir = tempfile::tempdir().unwrap();
    fashion_mnist::write_fixture(dir.path(), 5_300, 120, 1).unwrap();
    let s = fashion_mnist::load(dir.path()).unwrap();
    assert_eq!(s.train.len(), 300);
    assert_eq!(s.validation.len(), 5_000);
    assert_eq!(s.test.len(), 120);
    let joulebench::data::Features::F32(px) = &s.train.features else {
        panic!("images are f32")
    };
    assert_eq!(px.len(), 300 * 784);
    assert!(px.iter().all(|&x| (0.0..=1.0).contains(&x)));
    assert!(s.train.labels.iter().all(|&l| l < 10));
}

fn write_set(dir: &Path, n_img: usize, n_lbl: usize) {
    idx::write(
        &dir.join("train-images-idx3-ubyte.gz"),
        &[n_img, 28, 28],
        &vec![0; n_img * 784],
        true,
    )
    .unwrap();
    idx::write(
        &dir.join("train-labels-idx1-ubyte.gz"),
        &[n_lbl],
        &vec![1; n_lbl],
        true,
    )
    .unwrap();
    idx::write(
        &dir.join("t10k-images-idx3-ubyte.gz"),
        &[2, 28, 28],
        &[0; 2 * 784],
        true,
    )
    .unwrap();
    idx::write(&dir.join("t10k-labels-idx1-ubyte.gz"), &[2], &[0, 1], true).unwrap();
}

#[test]
fn dataset_errors_say_what_is_wrong_and_how_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let e = fashion_mnist::load(&dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Fashion-MNIST not found")
            && e.contains("apt-get install dataset-fashion-mnist"),
        "{e}"
    );

    write_set(dir.path(), 5_010, 5_009);
    let e = fashion_mnist::load(dir.path()).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                n_images: 5010,
                n_labels: 5009,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("has 5010 images but"), "{e}");

    write_set(dir.path(), 5_010, 5_010);
    assert!(fashion_mnist::load(dir.path()).is_ok());
    // Truncate the gzipped training images: a corrupt stream.
    let p = dir.path().join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = fashion_mnist::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("unusable") && e.contains("train-images-idx3-ubyte.gz"),
        "{e}"
    );
    assert!(e.contains("apt-get install dataset-fashion-mnist"), "{e}");

    std::fs::remove_file(&p).unwrap();
    let e = fashion_mnist::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("missing train-images-idx3-ubyte(.gz)"), "{e}");

    write_set(dir.path(), 5_010, 5_010);
    idx::write(
        &dir.path().join("t10k-labels-idx1-ubyte.gz"),
        &[2],
        &[0, 12],
        true,
    )
    .unwrap();
    let e = fashion_mnist::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("holds label 12, allowed 0..=9"), "{e}");

    write_set(dir.path(), 100, 100);
    let e = fashion_mnist::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("too few for a 5000-image validation split"),
        "{e}"
    );
}
