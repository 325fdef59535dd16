//! What a language model trains on: the embedded language the project generates, a named dataset
//! read from `--data-dir` (Shakespeare, TinyTalks, TinyStories), or the user's own text
//! (`--text FILE`, or every `.txt` file under a folder in sorted order). Each becomes a
//! [`Corpus`]: training text, validation text (never the same text: a split too short for one
//! window is refused), and for TinyTalks the held-out questions.

use std::path::{Path, PathBuf};

use crate::corpus;

use super::BoxResult;

/// Training text, validation text, and held-out TinyTalks questions (with their answers).
#[derive(Debug, Clone)]
pub struct Corpus {
    /// `embedded`, a dataset's name, or `text` for `--text`.
    pub name: String,
    pub train: String,
    pub val: String,
    pub questions: Vec<(String, String)>,
}

/// Where the text comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The generated mini-language.
    Embedded,
    /// A named dataset, looked for under the directory given (else `TINYTORCH_DATA`, `./data`).
    Dataset(&'a str, Option<&'a Path>),
    /// A UTF-8 file, or a folder of `.txt` files.
    Text(&'a Path),
}

/// A corpus before its train/validation split (which, for `--text`, depends on the block size
/// and so on the recipe, which depends on the corpus's size).
#[derive(Debug, Clone)]
pub struct RawCorpus {
    pub name: String,
    /// The files read (for `--text`), in order.
    pub files: Vec<PathBuf>,
    text: String,
    /// Named datasets come split already.
    split: Option<(String, String)>,
    questions: Vec<(String, String)>,
}

/// The first `fraction` of `text` by bytes, moved back to a character boundary.
fn cut_at(text: &str, fraction_num: usize) -> usize {
    let cut = text.len() * fraction_num / 10;
    (0..=cut)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

impl RawCorpus {
    /// Read the corpus of `source`.
    pub fn read(source: Source) -> BoxResult<RawCorpus> {
        let named = |name: &str, train: String, val: String, questions| RawCorpus {
            name: name.to_string(),
            files: Vec::new(),
            text: String::new(),
            split: Some((train, val)),
            questions,
        };
        Ok(match source {
            Source::Embedded => {
                // Deterministic, and independent of --seed so the corpus is the same for every run.
                let text = corpus::generate(6000, 2017);
                let cut = cut_at(&text, 9);
                let cut = text[..cut].rfind('\n').map_or(cut, |i| i + 1);
                named("embedded", text[..cut].into(), text[cut..].into(), Vec::new())
            }
            Source::Dataset("shakespeare", dir) => {
                let text = data::Shakespeare::find(dir)?;
                let cut = cut_at(&text, 9);
                named("shakespeare", text[..cut].into(), text[cut..].into(), Vec::new())
            }
            Source::Dataset("tinytalks", dir) => {
                let talks = data::TinyTalks::find(dir)?;
                let join =
                    |pairs: &[data::QaPair]| pairs.iter().map(|p| p.to_text()).collect::<String>();
                let questions = talks
                    .test
                    .iter()
                    .map(|p| (p.question.clone(), p.answer.clone()))
                    .collect();
                named("tinytalks", join(&talks.train), join(&talks.val), questions)
            }
            Source::Dataset("tinystories", dir) => {
                let text = data::TinyStories::find(dir)?.join("\n\n");
                let cut = cut_at(&text, 9);
                named("tinystories", text[..cut].into(), text[cut..].into(), Vec::new())
            }
            Source::Dataset(other, _) => {
                return Err(format!(
                    "unknown dataset '{other}': choose shakespeare, tinytalks, tinystories, or none for the embedded corpus"
                )
                .into())
            }
            Source::Text(path) => {
                let files = text_files(path)?;
                let mut text = String::new();
                for file in &files {
                    text.push_str(&data::io::read_text(file)?);
                }
                RawCorpus {
                    name: "text".to_string(),
                    files,
                    text,
                    split: None,
                    questions: Vec::new(),
                }
            }
        })
    }

    /// Characters of training text (for `--text`, before the split: the whole text).
    pub fn chars(&self) -> usize {
        match &self.split {
            Some((train, _)) => train.chars().count(),
            None => self.text.chars().count(),
        }
    }

    /// Split into training and validation text: `--text` by `val_fraction` on a character
    /// boundary (see [`data::split_text_train_val`]); named datasets keep their own split. Either
    /// way both parts must hold one window of `block_size + 1` characters, or the error says so
    /// (a validation loss is never computed on training text).
    pub fn split(self, val_fraction: f64, block_size: usize) -> BoxResult<Corpus> {
        let (train, val) = match self.split {
            Some(parts) => parts,
            None => {
                let (train, val) = data::split_text_train_val(&self.text, val_fraction, block_size)
                    .map_err(|e| format!("--text: {e}"))?;
                (train.to_string(), val.to_string())
            }
        };
        let need = block_size + 1;
        for (part, text) in [("training", &train), ("validation", &val)] {
            let n = text.chars().count();
            if n < need {
                return Err(format!(
                    "the {} corpus's {part} text has {n} characters; one window needs block_size + 1 = {need} (use a smaller --block-size)",
                    self.name
                )
                .into());
            }
        }
        Ok(Corpus {
            name: self.name,
            train,
            val,
            questions: self.questions,
        })
    }
}

/// `path` itself when it is a file, else every `.txt` file under it (recursively), sorted by
/// path; a folder with none is an error naming it.
pub fn text_files(path: &Path) -> BoxResult<Vec<PathBuf>> {
    if !path.is_dir() {
        data::io::check_regular_file(path).map_err(|e| format!("--text: {e}"))?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| format!("--text {}: cannot list the folder: {e}", dir.display()))?;
        for entry in entries {
            let p = entry
                .map_err(|e| format!("--text {}: cannot list the folder: {e}", dir.display()))?
                .path();
            if p.is_dir() {
                pending.push(p);
            } else if p.extension().is_some_and(|e| e == "txt") {
                files.push(p);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!("--text {}: the folder holds no .txt file", path.display()).into());
    }
    Ok(files)
}

/// A 64-bit FNV-1a hash of the training and validation text, stored in resumable checkpoints so
/// a run is never continued on another corpus (a check, not a cryptographic digest).
pub fn corpus_hash(corpus: &Corpus) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in corpus
        .train
        .bytes()
        .chain(std::iter::once(0xff))
        .chain(corpus.val.bytes())
    {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_read_in_sorted_order_and_split_on_characters() {
        let dir = std::env::temp_dir().join(format!("tt-sources-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::fs::write(dir.join("b/2.txt"), "é".repeat(200)).unwrap();
        std::fs::write(dir.join("a.txt"), "x".repeat(200)).unwrap();
        std::fs::write(dir.join("skip.md"), "not text").unwrap();
        let raw = RawCorpus::read(Source::Text(&dir)).unwrap();
        assert_eq!(raw.files, vec![dir.join("a.txt"), dir.join("b/2.txt")]);
        assert_eq!(raw.chars(), 400);
        let corpus = raw.clone().split(0.1, 16).unwrap();
        assert_eq!(corpus.val, "é".repeat(40));
        let e = raw.split(0.1, 64).unwrap_err().to_string();
        assert!(
            e.contains("--text") && e.contains("block_size + 1 = 65"),
            "{e}"
        );
        let empty = dir.join("b");
        std::fs::remove_file(empty.join("2.txt")).unwrap();
        let e = text_files(&empty).unwrap_err().to_string();
        assert!(e.contains("holds no .txt file"), "{e}");
        assert_ne!(
            corpus_hash(&corpus),
            corpus_hash(&Corpus {
                val: "é".repeat(39),
                ..corpus.clone()
            })
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
