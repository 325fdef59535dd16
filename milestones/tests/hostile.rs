//! Hostile command lines and files against the milestone binaries and the course tool: every
//! refusal happens before work starts, names the flag or file, exits non-zero, and leaves nothing
//! behind; a diverged run is an error, not a success.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use milestones::course::edition::make_student_edition;
use milestones::course::CHAPTERS;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tt-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("TINYTORCH_DATA")
        .output()
        .expect("the binary starts")
}

/// Assert a run failed with every needle in its stderr.
fn assert_refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure, got success:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in stderr:\n{err}");
    }
}

const PERCEPTRON: &str = env!("CARGO_BIN_EXE_perceptron-1957");
const XOR: &str = env!("CARGO_BIN_EXE_xor-1969");
const MLP: &str = env!("CARGO_BIN_EXE_mlp-1986");
const CNN: &str = env!("CARGO_BIN_EXE_cnn-1998");
const DOCTOR: &str = env!("CARGO_BIN_EXE_doctor");
const MLPERF: &str = env!("CARGO_BIN_EXE_mlperf-2018");

#[test]
fn unused_zero_and_unwritable_flags_are_refused_by_name() {
    assert_refused(
        &run(XOR, &["--epochs", "3"]),
        &["xor-1969 does not use --epochs"],
    );
    assert_refused(
        &run(XOR, &["--hidden", "0"]),
        &["--hidden 0 is out of range"],
    );
    assert_refused(
        &run(XOR, &["--hidden", "100000000"]),
        &["--hidden 100000000 is out of range", "4096"],
    );
    assert_refused(
        &run(PERCEPTRON, &["--steps", "3"]),
        &["perceptron-1957 does not use --steps"],
    );
    assert_refused(
        &run(PERCEPTRON, &["--epochs", "0"]),
        &["--epochs 0 is out of range"],
    );
    assert_refused(
        &run(MLP, &["--steps", "5"]),
        &["mlp-1986 does not use --steps"],
    );
    assert_refused(
        &run(CNN, &["--batch-size", "0"]),
        &["--batch-size 0 is out of range"],
    );
    // An unwritable output is refused before training (no data needed to see it: the check
    // comes before the dataset is looked for).
    let dir = temp_dir("outputs");
    let json = dir.join("missing-folder").join("run.json");
    assert_refused(
        &run(MLP, &["--json", json.to_str().unwrap()]),
        &["--json", "does not exist"],
    );
    assert_refused(
        &run(PERCEPTRON, &["--plot", dir.to_str().unwrap()]),
        &["--plot", "is a directory"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn threads_are_applied_reported_and_bounded() {
    let dir = temp_dir("threads");
    let json = dir.join("xor.json");
    let out = run(
        XOR,
        &[
            "--quick",
            "--threads",
            "1",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["threads"], 1, "{report}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.contains("threads") && l.contains(" 1 ")),
        "{table}"
    );
    for bin in [PERCEPTRON, XOR, MLP, CNN, DOCTOR, MLPERF] {
        assert_refused(
            &run(bin, &["--threads", "0"]),
            &["--threads 0 is out of range"],
        );
        assert_refused(
            &run(bin, &["--threads", "100000"]),
            &["--threads 100000 is out of range"],
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn doctor_refuses_every_flag_it_does_not_use() {
    let dir = temp_dir("doctor");
    let d = dir.to_str().unwrap();
    let plot = dir.join("p.svg");
    for (args, flag) in [
        (vec!["--data-dir", d], "--data-dir"),
        (vec!["--dataset", "mnist"], "--dataset"),
        (vec!["--epochs", "2"], "--epochs"),
        (vec!["--steps", "2"], "--steps"),
        (vec!["--plot", plot.to_str().unwrap()], "--plot"),
    ] {
        assert_refused(
            &run(DOCTOR, &args),
            &[&format!("doctor does not use {flag}")],
        );
    }
    assert_refused(&run(DOCTOR, &["--lr", "0"]), &["--lr 0 is out of range"]);
    assert_refused(
        &run(DOCTOR, &["--lr", "nan"]),
        &["--lr NaN is out of range"],
    );
    assert_refused(
        &run(DOCTOR, &["--model", "rnn"]),
        &["unknown --model 'rnn'"],
    );
    assert_refused(&run(DOCTOR, &["--break", "x"]), &["unknown --break 'x'"]);
    let missing = dir.join("no-folder").join("r.json");
    assert_refused(
        &run(DOCTOR, &["--json", missing.to_str().unwrap()]),
        &["--json", "does not exist"],
    );
    assert_refused(
        &run(MLPERF, &["--json", missing.to_str().unwrap()]),
        &["--json", "does not exist"],
    );
    assert!(!plot.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// mlperf-2018 checks every flag before training: --runs below 3, an unknown --baseline, a
/// --data-dir or --steps the run would ignore, --load/--save folders that cannot be used.
#[test]
fn mlperf_checks_every_flag_before_training() {
    let dir = temp_dir("mlperf");
    let d = dir.to_str().unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let f = file.to_str().unwrap();
    let below = dir.join("a-file").join("ckpt");
    let missing = dir.join("missing");
    for (args, needles) in [
        (vec!["--runs", "0"], vec!["--runs 0 is out of range"]),
        (
            vec!["--baseline", "gpt"],
            vec!["--baseline gpt: no such variant"],
        ),
        (
            vec!["--data-dir", d],
            vec!["does not use --data-dir", "generated"],
        ),
        (
            vec!["--steps", "5", "--no-generation"],
            vec!["does not use --steps", "--no-generation"],
        ),
        (vec!["--save", f], vec!["--save", "is not a directory"]),
        (
            vec!["--save", below.to_str().unwrap()],
            vec!["--save", "is not a directory"],
        ),
        (
            vec!["--load", missing.to_str().unwrap()],
            vec!["--load", "no such directory"],
        ),
    ] {
        let out = run(MLPERF, &args);
        assert_refused(&out, &needles);
        assert!(out.stdout.is_empty(), "refused before any work: {args:?}");
    }
    assert!(!missing.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_diverging_perceptron_stops_instead_of_succeeding() {
    let out = run(PERCEPTRON, &["--lr", "1e39", "--quick"]);
    assert_refused(&out, &["perceptron-1957", "rerun with a lower --lr"]);
}

/// A TinyDigits folder of `n` training and `n` test rows.
fn write_tinydigits(dir: &Path, n: usize) {
    let mut header = String::from("label");
    for i in 0..64 {
        header.push_str(&format!(",p{i}"));
    }
    let mut text = format!("\u{feff}{header}\n");
    for r in 0..n {
        text.push_str(&(r % 10).to_string());
        for i in 0..64 {
            text.push_str(&format!(",{}", (i * 7 + r * 3) % 17));
        }
        text.push('\n');
    }
    std::fs::write(dir.join("train.csv"), &text).unwrap();
    std::fs::write(dir.join("test.csv"), &text).unwrap();
}

#[test]
fn a_diverging_cnn_is_an_error_and_runs_print_the_files_they_read() {
    let dir = temp_dir("cnn");
    write_tinydigits(&dir, 40);
    let d = dir.to_str().unwrap();
    let out = run(CNN, &["--data-dir", d, "--epochs", "2", "--lr", "1e30"]);
    assert_refused(&out, &["cnn-1998", "rerun with a lower --lr"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("read ") && stdout.contains("train.csv"),
        "{stdout}"
    );
    // A folder holding a header only: named, not a scheduler's error.
    let header: Vec<String> = std::iter::once("label".to_string())
        .chain((0..64).map(|i| format!("p{i}")))
        .collect();
    std::fs::write(dir.join("train.csv"), header.join(",") + "\n").unwrap();
    let out = run(MLP, &["--data-dir", d, "--epochs", "1"]);
    assert_refused(&out, &["train.csv", "no data rows"]);
    // An explicit --data-dir that lacks the files never falls back elsewhere.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(MLP)
        .args(["--data-dir", empty.to_str().unwrap(), "--epochs", "1"])
        .env("TINYTORCH_DATA", &dir)
        .output()
        .unwrap();
    assert_refused(&out, &["from --data-dir"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A minimal workspace with one fence per chapter.
fn small_workspace(ws: &Path) {
    let write = |rel: &str, text: &str| {
        let p = ws.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("Cargo.toml", "[workspace]\nmembers = []\n");
    for c in CHAPTERS {
        write(
            &format!("{c}/src/lib.rs"),
            "pub fn f() -> u8 {\n    // HINT: one\n    // BEGIN SOLUTION\n    1\n    // END SOLUTION\n}\n",
        );
    }
}

#[test]
fn refused_editions_leave_nothing_behind() {
    let dir = temp_dir("edition");
    let ws = dir.join("ws");
    small_workspace(&ws);
    // Into the workspace: refused, and the folder is not created.
    let inside = ws.join("student");
    let e = make_student_edition(&ws, &inside, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("inside its sources"), "{e}");
    assert!(
        !inside.exists(),
        "a refused edition created {}",
        inside.display()
    );
    // --force into a non-empty folder with a bad fence in the workspace: refused, and the
    // folder holds exactly what it held before (no partial copy).
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    std::fs::write(
        ws.join("optim/src/bad.rs"),
        "fn g() {\n    // BEGIN SOLUTION\n}\n",
    )
    .unwrap();
    assert!(make_student_edition(&ws, &out, true).is_err());
    let entries: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(entries.len(), 1);
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".partial-")));
    // Fixed, --force writes the edition beside what was there.
    std::fs::remove_file(ws.join("optim/src/bad.rs")).unwrap();
    make_student_edition(&ws, &out, true).unwrap();
    assert!(out.join("nn/src/lib.rs").exists() && out.join("keep.txt").exists());
    // Into a new folder: a rename of the staged copy.
    let fresh = dir.join("fresh");
    make_student_edition(&ws, &fresh, false).unwrap();
    assert!(fresh.join("Cargo.toml").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
