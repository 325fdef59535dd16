//! `transformer-2017` on the user's own text, driven as a user drives it: `--text` (a file or a
//! folder) with the char and BPE tokenizers, generation and `--eval` from the saved checkpoint,
//! `--checkpoint-every` keeping the latest and the best-validation model, Ctrl-C (a real SIGINT)
//! and `--stop-after` writing a resumable checkpoint whose printed command continues the run to
//! weights identical to an uninterrupted run's, and one test per refusal. Every model is tiny
//! (1 layer, 16 wide, a handful of steps) so each test takes well under a second or two.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_transformer-2017");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tt-transformer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TINYTORCH_DATA")
        .output()
        .expect("the binary starts")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_ok(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(
        out.status.success(),
        "failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// Assert a run failed before any work with every needle in its stderr (and no panic).
fn assert_refused(out: &Output, needles: &[&str]) {
    let (stdout, stderr) = text(out);
    assert!(!out.status.success(), "expected a refusal, got:\n{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "missing {n:?} in stderr:\n{stderr}");
    }
}

/// A corpus of the embedded mini-language, `lines` sentences.
fn write_corpus(dir: &Path, name: &str, lines: usize) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, milestones::corpus::generate(lines, 7)).unwrap();
    path
}

/// The tiny model every test trains.
const TINY: [&str; 10] = [
    "--n-layer",
    "1",
    "--n-head",
    "2",
    "--n-embd",
    "16",
    "--block-size",
    "16",
    "--batch-size",
    "4",
];

fn train(corpus: &Path, save: &Path, steps: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--text",
        corpus.to_str().unwrap(),
        "--steps",
        steps,
        "--save",
        save.to_str().unwrap(),
    ];
    args.extend(TINY);
    args.extend(extra);
    run(&args)
}

fn json_of(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A safetensors file's tensor bytes (after the header) and its header as parsed JSON (the
/// header's key order is not fixed, its content is).
fn tensors_and_header(path: &Path) -> (Vec<u8>, Value) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (bytes[8 + n..].to_vec(), header)
}

#[test]
fn own_text_trains_generates_and_evaluates_with_char_and_bpe() {
    let dir = temp_dir("own-text");
    let corpus = write_corpus(&dir, "story.txt", 300);
    for (tokenizer, extra) in [
        ("char", vec![]),
        ("bpe", vec!["--tokenizer", "bpe", "--vocab-size", "300"]),
    ] {
        let save = dir.join(format!("{tokenizer}.safetensors"));
        let json = dir.join(format!("{tokenizer}.json"));
        let mut flags = extra.clone();
        flags.extend(["--json", json.to_str().unwrap()]);
        let stdout = assert_ok(&train(&corpus, &save, "3", &flags));
        assert!(
            stdout.contains("story.txt"),
            "the file read is named:\n{stdout}"
        );
        assert!(
            stdout.contains("model for ") && stdout.contains("1 layers x 2 heads x 16 dims"),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("({tokenizer})")), "{stdout}");
        let j = json_of(&json);
        assert_eq!(j["dataset"], "text");
        assert!(j["metrics"]["val_loss"].as_f64().unwrap().is_finite());
        // The checkpoint alone generates, with the tokenizer it was trained with.
        let gen = run(&[
            "--load",
            save.to_str().unwrap(),
            "--prompt",
            "the ",
            "--max-new-tokens",
            "12",
        ]);
        assert!(!assert_ok(&gen).is_empty());
        // --eval: loss, perplexity and bits on a text, no training; --json report.
        let eval_json = dir.join(format!("{tokenizer}-eval.json"));
        let out = run(&[
            "--eval",
            save.to_str().unwrap(),
            "--text",
            corpus.to_str().unwrap(),
            "--json",
            eval_json.to_str().unwrap(),
        ]);
        let stdout = assert_ok(&out);
        assert!(stdout.contains("bits per character"), "{stdout}");
        let m = &json_of(&eval_json)["metrics"];
        let loss = m["loss"].as_f64().unwrap();
        assert!((m["perplexity"].as_f64().unwrap() - loss.exp()).abs() < 1e-6 * loss.exp());
        assert!(
            (m["bits_per_token"].as_f64().unwrap() - loss / std::f64::consts::LN_2).abs() < 1e-9
        );
        // Three steps from a uniform guess stay near ln(vocabulary).
        assert!(loss > 1.0 && loss < 7.0, "{m}");
        if tokenizer == "bpe" {
            // Merged tokens cover several characters each.
            assert!(
                m["bits_per_character"].as_f64().unwrap() < m["bits_per_token"].as_f64().unwrap()
            );
        }
    }
}

/// A folder: every `.txt` under it, in sorted order, each file named; `--threads` is reported.
#[test]
fn a_folder_of_txt_files_is_read_in_sorted_order() {
    let dir = temp_dir("folder");
    let texts = dir.join("texts");
    std::fs::create_dir_all(texts.join("b")).unwrap();
    write_corpus(&texts, "a.txt", 100);
    write_corpus(&texts.join("b"), "c.txt", 100);
    std::fs::write(texts.join("notes.md"), "ignored").unwrap();
    let json = dir.join("run.json");
    let out = train(
        &texts,
        &dir.join("m.safetensors"),
        "2",
        &["--threads", "1", "--json", json.to_str().unwrap()],
    );
    let stdout = assert_ok(&out);
    // --threads sets the pool and the report says so.
    assert_eq!(json_of(&json)["threads"], 1);
    let a = stdout.find("a.txt").expect("a.txt named");
    let c = stdout.find("c.txt").expect("c.txt named");
    assert!(a < c && !stdout.contains("notes.md"), "{stdout}");
}

#[test]
fn checkpoint_every_keeps_the_latest_and_the_best() {
    let dir = temp_dir("every");
    let corpus = write_corpus(&dir, "c.txt", 200);
    let save = dir.join("run.safetensors");
    let out = train(&corpus, &save, "4", &["--checkpoint-every", "2"]);
    let stdout = assert_ok(&out);
    let best = dir.join("run.best.safetensors");
    assert!(stdout.contains(&best.display().to_string()), "{stdout}");
    for path in [&save, &best] {
        let gen = run(&["--load", path.to_str().unwrap(), "--max-new-tokens", "5"]);
        assert_ok(&gen);
    }
    // The best copy is resumable: it holds the trainer's state.
    let (_, header) = tensors_and_header(&best);
    let meta = &header["__metadata__"];
    assert!(
        meta["extra.trainer"].is_string() && meta["extra.run"].is_string(),
        "{meta}"
    );
}

/// The run interrupted after step 3 (by `--stop-after`, which takes the Ctrl-C path), resumed
/// with the command it printed, ends with exactly the weights of the uninterrupted run.
#[test]
fn an_interrupted_run_resumed_equals_the_uninterrupted_run() {
    let dir = temp_dir("resume");
    let corpus = write_corpus(&dir, "c.txt", 200);
    let whole = dir.join("whole.safetensors");
    assert_ok(&train(&corpus, &whole, "7", &[]));
    let part = dir.join("part.safetensors");
    let out = train(&corpus, &part, "7", &["--stop-after", "3"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted after step 3 of 7"), "{stderr}");
    let command = stderr
        .lines()
        .skip_while(|l| !l.starts_with("resume with:"))
        .nth(1)
        .expect("the resume command is printed")
        .trim()
        .to_string();
    assert!(
        command.contains("--resume") && !command.contains("--stop-after"),
        "{command}"
    );
    let words: Vec<&str> = command.split_whitespace().collect();
    let resumed = Command::new(words[0])
        .args(&words[1..])
        .env_remove("TINYTORCH_DATA")
        .output()
        .unwrap();
    assert_ok(&resumed);
    assert_eq!(tensors_and_header(&whole), tensors_and_header(&part));
}

/// A real SIGINT: the step in flight finishes, a resumable checkpoint is written, the exit is
/// non-zero with the resume command; resuming with other flags or another corpus is refused,
/// naming what differs.
#[test]
fn ctrl_c_writes_a_resumable_checkpoint_and_resume_checks_the_run() {
    let dir = temp_dir("sigint");
    let corpus = write_corpus(&dir, "c.txt", 200);
    let save = dir.join("long.safetensors");
    let mut args: Vec<&str> = vec![
        "--text",
        corpus.to_str().unwrap(),
        "--steps",
        "1000000",
        "--save",
        save.to_str().unwrap(),
    ];
    args.extend(TINY);
    let mut child = Command::new(BIN)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The handler is installed before the model line is printed.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    loop {
        let line = lines.next().expect("output").unwrap();
        if line.starts_with("transformer-2017 on text") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_millis(200));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("resume with:") && stderr.contains("--resume"),
        "{stderr}"
    );
    let (_, header) = tensors_and_header(&save);
    assert!(header["__metadata__"]["extra.trainer"].is_string());

    // Other model flags: refused, naming the setting.
    let mut other = args.clone();
    let i = other.iter().position(|a| *a == "--n-embd").unwrap();
    other[i + 1] = "32";
    other.extend(["--resume", save.to_str().unwrap()]);
    assert_refused(
        &run(&other),
        &[
            "--resume",
            "different run",
            "n_embd: 16 in the checkpoint, 32 now",
        ],
    );
    // Another corpus: refused, naming the corpus hash.
    let changed = write_corpus(&dir, "other.txt", 210);
    let mut other = args.clone();
    other[1] = changed.to_str().unwrap();
    other.extend(["--resume", save.to_str().unwrap()]);
    assert_refused(&run(&other), &["corpus_hash"]);
}

#[test]
fn resuming_a_finished_model_is_refused() {
    let dir = temp_dir("finished");
    let corpus = write_corpus(&dir, "c.txt", 200);
    let save = dir.join("m.safetensors");
    assert_ok(&train(&corpus, &save, "2", &[]));
    let out = train(&corpus, &save, "2", &["--resume", save.to_str().unwrap()]);
    assert_refused(&out, &["finished model, not a resumable run"]);
}

#[test]
fn zero_sizes_are_refused_not_clamped() {
    for flag in [
        "--threads",
        "--steps",
        "--batch-size",
        "--block-size",
        "--n-layer",
        "--checkpoint-every",
    ] {
        assert_refused(&run(&[flag, "0"]), &[&format!("{flag} 0 is out of range")]);
    }
}

#[test]
fn flags_the_mode_does_not_use_are_refused_by_name() {
    assert_refused(&run(&["--epochs", "2"]), &["does not use --epochs"]);
    assert_refused(&run(&["--prompt", "hi"]), &["does not use --prompt"]);
    assert_refused(
        &run(&["--task", "reverse", "--dropout", "0.1"]),
        &["--task reverse/copy/sort/mixed does not use --dropout"],
    );
    assert_refused(
        &run(&["--load", "m.safetensors", "--steps", "3"]),
        &["--load does not use --steps"],
    );
    assert_refused(
        &run(&["--val-fraction", "0.2"]),
        &["--val-fraction applies to --text"],
    );
    assert_refused(
        &run(&["--vocab-size", "300"]),
        &["--vocab-size applies to --tokenizer bpe"],
    );
    assert_refused(
        &run(&["--eval", "m.safetensors"]),
        &["--eval needs the text"],
    );
}

#[test]
fn unwritable_outputs_are_refused_at_start_and_leave_nothing() {
    let dir = temp_dir("outputs");
    let corpus = write_corpus(&dir, "c.txt", 200);
    let missing = dir.join("no-folder").join("x.json");
    assert_refused(
        &train(
            &corpus,
            &dir.join("m.safetensors"),
            "2",
            &["--json", missing.to_str().unwrap()],
        ),
        &["--json", "does not exist"],
    );
    assert_refused(
        &train(
            &corpus,
            &dir.join("m.safetensors"),
            "2",
            &["--plot", dir.to_str().unwrap()],
        ),
        &["--plot", "is a directory"],
    );
    let out = train(&corpus, &dir, "2", &[]);
    assert_refused(&out, &["--save", "is a directory"]);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".probe"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_validation_split_too_short_for_one_window_is_refused() {
    let dir = temp_dir("short-val");
    let corpus = dir.join("short.txt");
    // 130 characters: 13 for validation, fewer than one window of 16 + 1.
    std::fs::write(&corpus, "the cat sat.\n".repeat(10)).unwrap();
    let out = train(&corpus, &dir.join("m.safetensors"), "2", &[]);
    assert_refused(
        &out,
        &["--text", "13 for validation", "block_size + 1 = 17"],
    );
}

#[test]
fn prompt_characters_outside_the_vocabulary_are_refused_by_name() {
    let dir = temp_dir("prompt");
    let corpus = write_corpus(&dir, "c.txt", 200);
    let save = dir.join("m.safetensors");
    assert_ok(&train(&corpus, &save, "2", &[]));
    let out = run(&["--load", save.to_str().unwrap(), "--prompt", "the Zebra🦀"]);
    assert_refused(&out, &["'Z' (U+005A)", "U+1F980"]);
    let out = run(&[
        "--load",
        save.to_str().unwrap(),
        "--max-new-tokens",
        "100000000",
    ]);
    assert_refused(&out, &["--max-new-tokens 100000000 is out of range"]);
}

#[test]
fn a_corpus_with_no_newline_works_end_to_end() {
    let dir = temp_dir("no-newline");
    let corpus = dir.join("flat.txt");
    std::fs::write(&corpus, "abcde fghij ".repeat(60)).unwrap();
    let save = dir.join("m.safetensors");
    assert_ok(&train(&corpus, &save, "2", &[]));
    let gen = run(&["--load", save.to_str().unwrap(), "--max-new-tokens", "8"]);
    assert_ok(&gen);
}

#[test]
fn a_missing_text_file_is_named() {
    let dir = temp_dir("missing");
    let nowhere = dir.join("nowhere.txt");
    let out = train(&nowhere, &dir.join("m.safetensors"), "2", &[]);
    assert_refused(&out, &["--text", "nowhere.txt"]);
}
