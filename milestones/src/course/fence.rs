//! Solution fences: finding `// BEGIN SOLUTION` ... `// END SOLUTION` regions in a source file,
//! validating them, and rewriting each into the panic a student replaces with their own code.
//!
//! Pure string logic (no file system), so the rules are unit-tested on small examples.

use std::fmt;

/// The line (trimmed) that opens a fenced body.
pub const BEGIN: &str = "// BEGIN SOLUTION";
/// The line (trimmed) that closes a fenced body.
pub const END: &str = "// END SOLUTION";
/// The prefix (after `// `) of a hint comment above a fence.
pub const HINT: &str = "HINT:";
/// The hint used when a fence has no `// HINT:` comment above it.
pub const DEFAULT_HINT: &str = "implement this (see the chapter README)";

/// One fenced region of a file (1-based line numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// Line of `// BEGIN SOLUTION`.
    pub begin: usize,
    /// Line of `// END SOLUTION`.
    pub end: usize,
    /// The joined `// HINT:` text above the fence, if any.
    pub hint: Option<String>,
    /// Whether the fence starts right after the line opening its block (the whole body is fenced);
    /// when false, code above the fence stays in the student edition.
    pub whole_body: bool,
}

/// What is wrong with a file's fences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceErrorKind {
    /// A `BEGIN` inside a fence that is still open (opened at `open`).
    Nested { open: usize },
    /// An `END` with no open fence.
    EndWithoutBegin,
    /// A `BEGIN` never closed before the end of the file.
    Unclosed,
    /// Code follows the `END` inside the same block, so replacing the fence with a panic would
    /// leave that code unreachable (or referring to variables the fence defined).
    NotBlockEnd,
}

/// A fence error, naming the file and the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceError {
    pub file: String,
    pub line: usize,
    pub kind: FenceErrorKind,
}

impl fmt::Display for FenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, line) = (&self.file, self.line);
        match &self.kind {
            FenceErrorKind::Nested { open } => write!(
                f,
                "{file}:{line}: nested `{BEGIN}`: the fence opened at line {open} is not closed yet"
            ),
            FenceErrorKind::EndWithoutBegin => {
                write!(f, "{file}:{line}: `{END}` without a matching `{BEGIN}`")
            }
            FenceErrorKind::Unclosed => write!(
                f,
                "{file}:{line}: `{BEGIN}` is never closed by `{END}` (unbalanced fence)"
            ),
            FenceErrorKind::NotBlockEnd => write!(
                f,
                "{file}:{line}: the fence ending here is not a whole function body: code follows \
                 `{END}` before the closing `}}` (fence the body to its end)"
            ),
        }
    }
}

impl std::error::Error for FenceError {}

/// A rewritten file and the fences it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub text: String,
    pub fences: Vec<Fence>,
}

fn is_plain_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("//") && !t.starts_with("///") && !t.starts_with("//!")
}

/// The text of a plain `//` comment line, without the slashes and surrounding space.
fn comment_text(line: &str) -> &str {
    line.trim().trim_start_matches("//").trim()
}

/// The hint of the fence whose `BEGIN` is `lines[begin]` (0-based): the run of plain `//`
/// comment lines right above it, from its first `HINT:` line on, joined with spaces (a repeated
/// `HINT:` prefix is dropped; lines before the first `HINT:` are ordinary comments).
fn hint_above(lines: &[&str], begin: usize) -> Option<String> {
    let mut top = begin;
    while top > 0 && is_plain_comment(lines[top - 1]) {
        let t = lines[top - 1].trim();
        if t == BEGIN || t == END {
            break;
        }
        top -= 1;
    }
    let run = &lines[top..begin];
    let first = run.iter().position(|l| comment_text(l).starts_with(HINT))?;
    let parts: Vec<&str> = run[first..]
        .iter()
        .map(|l| {
            let t = comment_text(l);
            t.strip_prefix(HINT).unwrap_or(t).trim()
        })
        .filter(|t| !t.is_empty())
        .collect();
    let hint = parts.join(" ");
    (!hint.is_empty()).then_some(hint)
}

/// Whether the first code line above the comments preceding `begin` opens a block.
fn opens_block(lines: &[&str], begin: usize) -> bool {
    lines[..begin]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|t| !t.is_empty() && !t.starts_with("//"))
        .is_some_and(|t| t.ends_with('{'))
}

/// Whether the first code line after `end` closes a block.
fn closes_block(lines: &[&str], end: usize) -> bool {
    lines[end + 1..]
        .iter()
        .map(|l| l.trim())
        .find(|t| !t.is_empty() && !t.starts_with("//"))
        .is_some_and(|t| t.starts_with('}'))
}

/// Finds and validates the fences of one file. `file` only names it in errors. Every error of the
/// file is returned (in line order), not just the first.
pub fn find_fences(file: &str, source: &str) -> Result<Vec<Fence>, Vec<FenceError>> {
    let lines: Vec<&str> = source.split('\n').collect();
    let mut fences = Vec::new();
    let mut errors = Vec::new();
    let mut open: Option<usize> = None;
    let err = |line: usize, kind| FenceError {
        file: file.to_string(),
        line: line + 1,
        kind,
    };
    for (i, line) in lines.iter().enumerate() {
        match line.trim() {
            BEGIN => {
                if let Some(o) = open {
                    errors.push(err(i, FenceErrorKind::Nested { open: o + 1 }));
                } else {
                    open = Some(i);
                }
            }
            END => match open.take() {
                None => errors.push(err(i, FenceErrorKind::EndWithoutBegin)),
                Some(b) => {
                    if !closes_block(&lines, i) {
                        errors.push(err(i, FenceErrorKind::NotBlockEnd));
                    }
                    fences.push(Fence {
                        begin: b + 1,
                        end: i + 1,
                        hint: hint_above(&lines, b),
                        whole_body: opens_block(&lines, b),
                    });
                }
            },
            _ => {}
        }
    }
    if let Some(o) = open {
        errors.push(err(o, FenceErrorKind::Unclosed));
    }
    if errors.is_empty() {
        Ok(fences)
    } else {
        Err(errors)
    }
}

/// Escapes a hint for a Rust string literal that is also a format string: backslashes and quotes
/// for the literal, braces for the formatting machinery; control characters become spaces.
pub fn escape_hint(hint: &str) -> String {
    let mut out = String::with_capacity(hint.len());
    for c in hint.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '{' => out.push_str("{{"),
            '}' => out.push_str("}}"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The name of the panicking placeholder macro, written so this file never contains the literal
/// macro call (shipped sources are checked for it).
pub const PLACEHOLDER: &str = concat!("to", "do");

/// The placeholder line for a fence: `<indent><placeholder>!("<chapter>: <hint>")`.
pub fn placeholder_line(indent: &str, chapter: &str, hint: Option<&str>) -> String {
    let text = format!("{chapter}: {}", hint.unwrap_or(DEFAULT_HINT));
    format!("{indent}{PLACEHOLDER}!(\"{}\")", escape_hint(&text))
}

/// Rewrites the body of every fence of `source` into a placeholder naming `chapter` and the
/// fence's hint, at the `BEGIN` line's indentation. The fence lines and the hint comments stay, so
/// the student writes between them and the body can be found again (to hash it, or to put the
/// placeholder back); rewriting a rewritten file changes nothing. Line endings are kept.
pub fn rewrite_source(
    chapter: &str,
    file: &str,
    source: &str,
) -> Result<Rewritten, Vec<FenceError>> {
    let fences = find_fences(file, source)?;
    if fences.is_empty() {
        return Ok(Rewritten {
            text: source.to_string(),
            fences,
        });
    }
    let lines: Vec<&str> = source.split('\n').collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut next = 0; // index into `fences`
    let mut i = 0;
    while i < lines.len() {
        if let Some(f) = fences.get(next).filter(|f| f.begin == i + 1) {
            let begin = lines[i];
            let indent = &begin[..begin.len() - begin.trim_start().len()];
            let mut line = placeholder_line(indent, chapter, f.hint.as_deref());
            if begin.ends_with('\r') {
                line.push('\r');
            }
            out.push(begin.to_string());
            out.push(line);
            out.push(lines[f.end - 1].to_string()); // the END line
            i = f.end; // the line after END (0-based)
            next += 1;
        } else {
            out.push(lines[i].to_string());
            i += 1;
        }
    }
    Ok(Rewritten {
        text: out.join("\n"),
        fences,
    })
}

/// The text between a fence's `BEGIN` and `END` lines (without them), with its line endings.
pub fn body<'a>(source: &'a str, fence: &Fence) -> &'a str {
    let mut starts = vec![0];
    starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
    let from = starts.get(fence.begin).copied().unwrap_or(source.len());
    let to = starts.get(fence.end - 1).copied().unwrap_or(source.len());
    &source[from..to.max(from)]
}

/// Whether a fence's body still holds the placeholder the student edition put there.
pub fn holds_placeholder(body: &str, chapter: &str) -> bool {
    body.contains(&format!("{PLACEHOLDER}!(\"{chapter}:"))
}
