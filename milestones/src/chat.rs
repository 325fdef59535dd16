//! Chat with a model trained on TinyTalks (`transformer-2017 --load MODEL --chat`): each line of
//! input is a question, put in the layout the model was trained on (`Q: question\nA:`), and the
//! model's greedy continuation up to the end of its line is the answer. The loop reads any
//! `BufRead`, so it works interactively and in a pipe alike; end of input ends it.

use std::io::{BufRead, Write};

use models::checkpoint::TokenizerSpec;
use models::gpt::Gpt;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// How answers are generated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChatOptions {
    /// Most tokens an answer may take (it usually ends earlier, at its newline).
    pub max_new_tokens: usize,
    /// Sampling temperature (0 is greedy: the same question always gets the same answer).
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub seed: u64,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            max_new_tokens: 120,
            temperature: 0.0,
            top_k: None,
            seed: 0,
        }
    }
}

/// The prompt of a question, in TinyTalks' layout.
pub fn chat_prompt(question: &str) -> String {
    format!("Q: {}\nA:", question.trim())
}

/// The model's answer to `question`: its continuation of [`chat_prompt`] up to the first newline
/// (or a following `Q:`), trimmed.
pub fn answer(
    gpt: &Gpt,
    tokenizer: &TokenizerSpec,
    question: &str,
    opts: &ChatOptions,
) -> BoxResult<String> {
    let prompt = tokenizer.encode(&chat_prompt(question))?;
    let ids = gpt.generate(
        &prompt,
        opts.max_new_tokens,
        opts.temperature,
        opts.top_k,
        opts.seed,
    )?;
    let text = tokenizer.decode(&ids[prompt.len()..])?;
    let line = text.trim_start().lines().next().unwrap_or("");
    let line = line.split("Q:").next().unwrap_or("");
    Ok(line.trim().to_string())
}

/// Answers every non-blank line of `input` on `output` (one `A: ...` line each, flushed at once so
/// a pipe sees it), until end of input. When `prompt` is given it is written before each
/// question (for a terminal). A question the model cannot read (a character outside its
/// vocabulary) gets an explanation instead of an answer and the loop goes on. Returns the number
/// of questions answered.
pub fn chat_loop<R: BufRead, W: Write>(
    gpt: &Gpt,
    tokenizer: &TokenizerSpec,
    input: R,
    mut output: W,
    opts: &ChatOptions,
    prompt: Option<&str>,
) -> BoxResult<usize> {
    let mut answered = 0;
    let mut lines = input.lines();
    loop {
        if let Some(p) = prompt {
            write!(output, "{p}")?;
            output.flush()?;
        }
        let Some(line) = lines.next() else {
            break;
        };
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match answer(gpt, tokenizer, &line, opts) {
            Ok(a) => {
                writeln!(output, "A: {a}")?;
                answered += 1;
            }
            Err(e) => writeln!(output, "(cannot answer this question: {e})")?,
        }
        output.flush()?;
    }
    if prompt.is_some() {
        writeln!(output)?;
    }
    Ok(answered)
}
