//! IDX files (the MNIST family's format), gzipped or not.
//!
//! Layout: a 4-byte magic `00 00 <type> <ndims>`, then `ndims` big-endian u32
//! dimensions, then the data. We read unsigned-byte (type 0x08) files only.

use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    #[error("{path}: file not found")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not an IDX file of unsigned bytes: magic bytes are {found:02x?}, expected 00 00 08 {ndims:02x}"
    )]
    BadMagic {
        path: PathBuf,
        found: [u8; 4],
        ndims: u8,
    },
    #[error("{path}: truncated: header promises {expected} data bytes, file holds {got}")]
    Truncated {
        path: PathBuf,
        expected: usize,
        got: usize,
    },
    #[error("{path}: {extra} unexpected bytes after the data (corrupt or wrong file)")]
    TrailingBytes { path: PathBuf, extra: usize },
    #[error("{path}: unexpected shape {found:?}, expected {expected}")]
    BadShape {
        path: PathBuf,
        found: Vec<usize>,
        expected: String,
    },
}

/// A decoded IDX array of bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

fn read_all(path: &Path) -> Result<Vec<u8>, IdxError> {
    let raw = std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            IdxError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            IdxError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|source| IdxError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    source.kind(),
                    format!("gzip stream is corrupt or truncated ({source})"),
                ),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads an IDX file with `ndims` dimensions of unsigned bytes.
pub fn read(path: &Path, ndims: u8) -> Result<IdxArray, IdxError> {
    let bytes = read_all(path)?;
    decode(path, &bytes, ndims)
}

/// Decodes IDX bytes; `path` is used in messages only.
pub fn decode(path: &Path, bytes: &[u8], ndims: u8) -> Result<IdxArray, IdxError> {
    let p = || path.to_path_buf();
    let mut magic = [0u8; 4];
    let n = bytes.len().min(4);
    magic[..n].copy_from_slice(&bytes[..n]);
    if n < 4 || magic != [0, 0, 0x08, ndims] {
        return Err(IdxError::BadMagic {
            path: p(),
            found: magic,
            ndims,
        });
    }
    let header = 4 + 4 * ndims as usize;
    if bytes.len() < header {
        return Err(IdxError::Truncated {
            path: p(),
            expected: header,
            got: bytes.len(),
        });
    }
    let dims: Vec<usize> = (0..ndims as usize)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .unwrap_or(usize::MAX);
    let got = bytes.len() - header;
    if got < expected {
        return Err(IdxError::Truncated {
            path: p(),
            expected,
            got,
        });
    }
    if got > expected {
        return Err(IdxError::TrailingBytes {
            path: p(),
            extra: got - expected,
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Encodes bytes as IDX (used by tests and fixtures).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Writes an IDX file, gzipped when `gzip` is true (used by tests and fixtures).
pub fn write(path: &Path, dims: &[usize], data: &[u8], gzip: bool) -> std::io::Result<()> {
    let raw = encode(dims, data);
    if gzip {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&raw)?;
        std::fs::write(path, enc.finish()?)
    } else {
        std::fs::write(path, raw)
    }
}
