//! A character-level English corpus from Debian's `fortunes` package.
//!
//! All fortune files under the folder (not the `.dat` indexes or `.u8`
//! links), in name order, with the `%` separator lines removed, form the
//! text. Vocabulary: the distinct bytes of the text, sorted. Fixed split by
//! position: the first 90% trains, the next 5% validates, the last 5% tests.
//! Samples are non-overlapping windows of `context + 1` bytes: input = the
//! first `context`, labels = the last `context` (next-character prediction).

use super::{Features, Split, Splits};
use std::path::{Path, PathBuf};

pub const DEFAULT_DIR: &str = "/usr/share/games/fortunes";
pub const ENV_DIR: &str = "JOULEBENCH_CORPUS";
pub const INSTALL_HINT: &str = "install it with `sudo apt-get install fortunes` (Debian/Ubuntu; \
files land in /usr/share/games/fortunes), or point JOULEBENCH_CORPUS, --corpus-dir or the \
suite's [data] corpus at a folder of plain-text files";

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("text corpus not found: {dir} {problem}; {hint}", hint = INSTALL_HINT)]
    Missing { dir: PathBuf, problem: String },
    #[error(
        "text corpus in {dir} holds only {bytes} bytes, too little for context {context} (need at least {need})"
    )]
    TooSmall {
        dir: PathBuf,
        bytes: usize,
        context: usize,
        need: usize,
    },
}

/// Which folder to read: flag > environment > suite > default.
pub fn resolve_dir(flag: Option<&Path>, suite: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os(ENV_DIR).filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    suite.map_or_else(|| PathBuf::from(DEFAULT_DIR), Path::to_path_buf)
}

/// The corpus as token ids with its vocabulary.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub source: PathBuf,
    /// Byte value of each token id.
    pub vocab: Vec<u8>,
    pub tokens: Vec<u32>,
}

impl Corpus {
    /// Reads and tokenizes every fortune file in `dir`.
    pub fn load(dir: &Path) -> Result<Corpus, CorpusError> {
        let missing = |problem: String| CorpusError::Missing {
            dir: dir.to_path_buf(),
            problem,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| missing(format!("cannot be read ({e})")))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file() && !p.is_symlink() && p.extension().is_none())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(missing("holds no text files".into()));
        }
        let mut text = Vec::new();
        for f in &files {
            let bytes = std::fs::read(f).map_err(|e| missing(format!("{}: {e}", f.display())))?;
            let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            for line in body.split(|&b| b == b'\n') {
                if line == b"%" {
                    continue;
                }
                text.extend_from_slice(line);
                text.push(b'\n');
            }
        }
        Ok(Self::from_text(dir, &text))
    }

    /// Tokenizes raw bytes (tests use this directly).
    pub fn from_text(source: &Path, text: &[u8]) -> Corpus {
        let mut seen = [false; 256];
        for &b in text {
            seen[b as usize] = true;
        }
        let vocab: Vec<u8> = (0..=255u8).filter(|&b| seen[b as usize]).collect();
        let mut id = [0u32; 256];
        for (i, &b) in vocab.iter().enumerate() {
            id[b as usize] = i as u32;
        }
        Corpus {
            source: source.to_path_buf(),
            tokens: text.iter().map(|&b| id[b as usize]).collect(),
            vocab,
        }
    }

    /// Entropy in nats of the unigram (single-character) distribution of `tokens`.
    pub fn unigram_entropy(tokens: &[u32], vocab: usize) -> f64 {
        let mut counts = vec![0u64; vocab];
        for &t in tokens {
            counts[t as usize] += 1;
        }
        let n = tokens.len() as f64;
        counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f64 / n;
                -p * p.ln()
            })
            .sum()
    }

    /// Decodes ids back to text (lossy for non-UTF-8 bytes).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().map(|&i| self.vocab[i as usize]).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Train / validation / test splits of `context`-token windows.
    pub fn splits(&self, context: usize) -> Result<Splits, CorpusError> {
        let n = self.tokens.len();
        let need = 40 * (context + 1);
        if n < need {
            return Err(CorpusError::TooSmall {
                dir: self.source.clone(),
                bytes: n,
                context,
                need,
            });
        }
        let (a, b) = (n * 90 / 100, n * 95 / 100);
        let windows = |range: std::ops::Range<usize>| {
            let t = &self.tokens[range];
            let count = t.len() / (context + 1);
            let mut x = Vec::with_capacity(count * context);
            let mut y = Vec::with_capacity(count * context);
            for w in t.chunks_exact(context + 1) {
                x.extend_from_slice(&w[..context]);
                y.extend_from_slice(&w[1..]);
            }
            Split {
                features: Features::U32(x),
                labels: y,
                feature_shape: vec![context],
                label_len: context,
            }
        };
        Ok(Splits {
            name: "fortunes-chars".into(),
            source: self.source.clone(),
            classes: self.vocab.len(),
            train: windows(0..a),
            validation: windows(a..b),
            test: windows(b..n),
        })
    }
}
