//! Text corpora: whole files (Tiny Shakespeare), TinyTalks question/answer pairs, and TinyStories
//! (stories separated by `<|endoftext|>`). Files must be UTF-8 (`.gz` is decompressed).

use std::path::Path;

use crate::error::{DataError, Result};
use crate::io::locate_file;
pub use crate::io::read_text;
use crate::resolve::resolve_dataset_dir;

/// The separator between TinyStories stories.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// One TinyTalks exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QaPair {
    /// The question, without the `Q: ` prefix.
    pub question: String,
    /// The answer, without the `A: ` prefix.
    pub answer: String,
}

impl QaPair {
    /// The pair in the file layout: `Q: question\nA: answer\n`.
    pub fn to_text(&self) -> String {
        format!("Q: {}\nA: {}\n", self.question, self.answer)
    }
}

/// Parse TinyTalks text: blocks `Q: ...\nA: ...` separated by blank lines (an answer may continue
/// on following lines). `path` names the file in errors.
pub fn parse_tinytalks(text: &str, path: &Path) -> Result<Vec<QaPair>> {
    let mut pairs = Vec::new();
    let mut question: Option<(usize, String)> = None;
    let mut answer: Option<String> = None;
    let mut finish = |q: &mut Option<(usize, String)>, a: &mut Option<String>| -> Result<()> {
        match (q.take(), a.take()) {
            (Some((_, question)), Some(answer)) => {
                pairs.push(QaPair { question, answer });
                Ok(())
            }
            (Some((line, _)), None) => Err(DataError::format(
                path,
                format!("line {line}: question has no `A:` answer"),
            )),
            _ => Ok(()),
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            finish(&mut question, &mut answer)?;
        } else if let Some(q) = line.strip_prefix("Q:") {
            finish(&mut question, &mut answer)?;
            question = Some((line_no, q.trim().to_string()));
        } else if let Some(a) = line.strip_prefix("A:") {
            if question.is_none() || answer.is_some() {
                return Err(DataError::format(
                    path,
                    format!("line {line_no}: `A:` line without a `Q:` line before it"),
                ));
            }
            answer = Some(a.trim().to_string());
        } else if let Some(a) = answer.as_mut() {
            a.push('\n');
            a.push_str(line.trim_end());
        } else {
            return Err(DataError::format(
                path,
                format!(
                    "line {line_no}: expected a line starting with `Q:` or `A:`, found {line:?}"
                ),
            ));
        }
    }
    finish(&mut question, &mut answer)?;
    Ok(pairs)
}

/// TinyTalks text of `pairs` (the inverse of [`parse_tinytalks`]).
pub fn format_tinytalks(pairs: &[QaPair]) -> String {
    pairs
        .iter()
        .map(QaPair::to_text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Read a TinyTalks file.
pub fn load_tinytalks(path: &Path) -> Result<Vec<QaPair>> {
    parse_tinytalks(&read_text(path)?, path)
}

/// TinyTalks v1: 301 pairs, with a fixed train/val/test split (210/45/46).
#[derive(Clone, Debug)]
pub struct TinyTalks {
    /// Every pair (`tinytalks_v1.txt`).
    pub all: Vec<QaPair>,
    /// `splits/train.txt`.
    pub train: Vec<QaPair>,
    /// `splits/val.txt`.
    pub val: Vec<QaPair>,
    /// `splits/test.txt`.
    pub test: Vec<QaPair>,
}

impl TinyTalks {
    /// The dataset's folder name under a data root.
    pub const NAME: &'static str = "tinytalks";
    /// The files it needs.
    pub const FILES: [&'static str; 4] = [
        "tinytalks_v1.txt",
        "splits/train.txt",
        "splits/val.txt",
        "splits/test.txt",
    ];

    /// Load the four files from `dir`.
    pub fn load(dir: &Path) -> Result<TinyTalks> {
        let load =
            |name: &str| load_tinytalks(&locate_file(dir, name).unwrap_or_else(|| dir.join(name)));
        Ok(TinyTalks {
            all: load(TinyTalks::FILES[0])?,
            train: load(TinyTalks::FILES[1])?,
            val: load(TinyTalks::FILES[2])?,
            test: load(TinyTalks::FILES[3])?,
        })
    }

    /// Find TinyTalks (`--data-dir` > `TINYTORCH_DATA` > `./data`) and load it.
    pub fn find(cli_dir: Option<&Path>) -> Result<TinyTalks> {
        TinyTalks::load(&resolve_dataset_dir(
            cli_dir,
            TinyTalks::NAME,
            &TinyTalks::FILES,
        )?)
    }
}

/// Split TinyStories text on `<|endoftext|>`; stories are trimmed and empty ones dropped.
pub fn parse_tinystories(text: &str) -> Vec<String> {
    text.split(END_OF_TEXT)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Read a TinyStories file.
pub fn load_tinystories(path: &Path) -> Result<Vec<String>> {
    Ok(parse_tinystories(&read_text(path)?))
}

/// TinyStories: short stories separated by `<|endoftext|>`.
pub struct TinyStories;

impl TinyStories {
    /// The dataset's folder name under a data root.
    pub const NAME: &'static str = "tinystories";
    /// The file it needs (any one of these names).
    pub const FILES: [&'static str; 1] = [
        "TinyStories-valid.txt|TinyStories-train.txt|TinyStoriesV2-GPT4-valid.txt|tinystories.txt",
    ];

    /// Find a TinyStories file (`--data-dir` > `TINYTORCH_DATA` > `./data`) and load its stories.
    pub fn find(cli_dir: Option<&Path>) -> Result<Vec<String>> {
        let dir = resolve_dataset_dir(cli_dir, TinyStories::NAME, &TinyStories::FILES)?;
        let path = locate_file(&dir, TinyStories::FILES[0]).unwrap_or(dir);
        load_tinystories(&path)
    }
}

/// Tiny Shakespeare: one plain-text file of plays (`SPEAKER:\nlines\n\n`).
pub struct Shakespeare;

impl Shakespeare {
    /// The dataset's folder name under a data root.
    pub const NAME: &'static str = "shakespeare";
    /// The file it needs (any one of these names).
    pub const FILES: [&'static str; 1] = ["tinyshakespeare_like.txt|input.txt|tinyshakespeare.txt"];

    /// Find the Shakespeare text (`--data-dir` > `TINYTORCH_DATA` > `./data`) and read it.
    pub fn find(cli_dir: Option<&Path>) -> Result<String> {
        let dir = resolve_dataset_dir(cli_dir, Shakespeare::NAME, &Shakespeare::FILES)?;
        let path = locate_file(&dir, Shakespeare::FILES[0]).unwrap_or(dir);
        read_text(&path)
    }
}
