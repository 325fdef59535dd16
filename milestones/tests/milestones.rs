//! The milestone binaries, run as a user runs them: the generated-data milestones in the default
//! test run (quick versions, with `--json`), error handling for missing and corrupt datasets, and
//! `#[ignore]`d quick runs on the real datasets (`TINYTORCH_DATA`, set by `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tt-milestones-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run a milestone binary in `cwd` with `TINYTORCH_DATA` set to `data` (or removed).
fn run(bin: &str, args: &[&str], cwd: &Path, data: Option<&Path>) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(cwd);
    match data {
        Some(d) => cmd.env("TINYTORCH_DATA", d),
        None => cmd.env_remove("TINYTORCH_DATA"),
    };
    cmd.output().expect("the milestone binary starts")
}

fn json_of(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn metric(json: &Value, name: &str) -> f64 {
    json["metrics"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("metric {name} missing in {json}"))
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README's main job, quick: a GPT learns the embedded language, writes JSON, a plot and a
/// checkpoint, and the checkpoint alone generates text.
#[test]
fn transformer_on_the_embedded_corpus() {
    let dir = temp_dir("embedded");
    let json = dir.join("run.json");
    let svg = dir.join("curve.svg");
    let ckpt = dir.join("model.safetensors");
    let bin = env!("CARGO_BIN_EXE_transformer-2017");
    let args = [
        "--quick",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
        "--save",
        ckpt.to_str().unwrap(),
    ];
    let out = run(bin, &args, &dir, None);
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("val_loss") && stdout.contains("grammatical"),
        "{stdout}"
    );
    let j = json_of(&json);
    assert_eq!(j["milestone"], "transformer-2017");
    assert_eq!(j["dataset"], "embedded");
    assert!(j["params"].as_u64().unwrap() > 10_000);
    assert!(j["seconds"].as_f64().unwrap() > 0.0);
    // 200 steps take the loss from ln(28) = 3.3 to well below 1.5.
    assert!(metric(&j, "val_loss") < 1.5, "{j}");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    // Generation from the checkpoint prints only the generated text.
    let gen = run(
        bin,
        &[
            "--load",
            ckpt.to_str().unwrap(),
            "--prompt",
            "the ",
            "--max-new-tokens",
            "40",
            "--temperature",
            "0",
        ],
        &dir,
        None,
    );
    assert_ok(&gen);
    let text = String::from_utf8_lossy(&gen.stdout);
    assert!(
        !text.trim().is_empty() && text.chars().count() <= 41,
        "{text}"
    );
}

/// The attention proof, quick: reversal accuracy is high after a short run.
#[test]
fn transformer_reverses_sequences() {
    let dir = temp_dir("reverse");
    let json = dir.join("run.json");
    let out = run(
        env!("CARGO_BIN_EXE_transformer-2017"),
        &[
            "--task",
            "reverse",
            "--quick",
            "--json",
            json.to_str().unwrap(),
        ],
        &dir,
        None,
    );
    assert_ok(&out);
    let acc = metric(&json_of(&json), "exact_sequence_accuracy");
    assert!(acc >= 0.9, "reversal accuracy {acc}");
}

/// 1957 and 1969: the perceptron separates blobs; XOR defeats a single layer, not an MLP.
#[test]
fn perceptron_and_xor() {
    let dir = temp_dir("early");
    let json = dir.join("p.json");
    let out = run(
        env!("CARGO_BIN_EXE_perceptron-1957"),
        &["--quick", "--json", json.to_str().unwrap()],
        &dir,
        None,
    );
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("before"));
    assert!(metric(&json_of(&json), "test_accuracy") >= 0.95);
    let json = dir.join("x.json");
    let out = run(
        env!("CARGO_BIN_EXE_xor-1969"),
        &["--json", json.to_str().unwrap()],
        &dir,
        None,
    );
    assert_ok(&out);
    let j = json_of(&json);
    assert!(metric(&j, "single_layer_accuracy") <= 0.75, "{j}");
    assert_eq!(metric(&j, "mlp_accuracy"), 1.0, "{j}");
    assert!(metric(&j, "mlp_loss") < 0.05, "{j}");
}

/// The doctor passes healthy models and fails, by name and with a non-zero exit, a model whose
/// layer was deliberately detached.
#[test]
fn doctor_catches_a_detached_layer() {
    let dir = temp_dir("doctor");
    let bin = env!("CARGO_BIN_EXE_doctor");
    for model in ["gpt", "mlp", "cnn"] {
        let out = run(bin, &["--model", model], &dir, None);
        assert_ok(&out);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("7/7 checks passed"),
            "{model}"
        );
        let out = run(bin, &["--model", model, "--break", "detach"], &dir, None);
        assert_eq!(out.status.code(), Some(2), "{model}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("gradient flow"), "{model}: {err}");
    }
    let out = run(bin, &["--break", "detach"], &dir, None);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("transformer.h.1.attn.c_attn.weight (no gradient)"));
}

/// `--dataset tinystories` reads the standard file (stories separated by `<|endoftext|>`) and
/// trains the course's config (6 layers, 8 heads, 256 wide, block 128, batch 32) on it: here a
/// small generated file and three steps.
#[test]
fn transformer_reads_a_tinystories_file() {
    let dir = temp_dir("tinystories");
    let stories_dir = dir.join("tinystories");
    std::fs::create_dir_all(&stories_dir).unwrap();
    let names = ["Tom", "Lily", "Ben", "Mia"];
    let things = ["a red ball", "a big dog", "a small boat", "a tall tree"];
    let stories: Vec<String> = (0..60)
        .map(|i| {
            let (name, thing) = (names[i % 4], things[(i / 4) % 4]);
            format!("Once upon a time, {name} saw {thing}. {name} was happy and played all day.\n")
        })
        .collect();
    std::fs::write(
        stories_dir.join("TinyStories-valid.txt"),
        stories.join("<|endoftext|>\n"),
    )
    .unwrap();
    let json = dir.join("run.json");
    let out = run(
        env!("CARGO_BIN_EXE_transformer-2017"),
        &[
            "--dataset",
            "tinystories",
            "--data-dir",
            dir.to_str().unwrap(),
            "--steps",
            "3",
            "--json",
            json.to_str().unwrap(),
        ],
        &dir,
        None,
    );
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("GPT 6 layers x 8 heads x 256 dims"),
        "{stdout}"
    );
    let j = json_of(&json);
    assert_eq!(j["dataset"], "tinystories");
    let val = metric(&j, "val_loss");
    // Three steps from a uniform guess over the ~30 characters (ln 30 = 3.4) stay near it.
    assert!(val.is_finite() && val > 1.0 && val < 5.0, "{j}");
}

/// A missing dataset is a clear error: non-zero exit, where it looked, no panic.
#[test]
fn missing_dataset_is_a_clear_error() {
    let dir = temp_dir("missing");
    let nowhere = dir.join("no-such-dir");
    for (bin, dataset) in [
        (env!("CARGO_BIN_EXE_mlp-1986"), "mnist"),
        (env!("CARGO_BIN_EXE_cnn-1998"), "tinydigits"),
        (env!("CARGO_BIN_EXE_transformer-2017"), "shakespeare"),
    ] {
        let out = run(
            bin,
            &[
                "--dataset",
                dataset,
                "--data-dir",
                nowhere.to_str().unwrap(),
            ],
            &dir,
            Some(&nowhere),
        );
        assert!(!out.status.success(), "{bin} succeeded without data");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error:") && !err.contains("panicked"),
            "{err}"
        );
        assert!(
            err.contains(dataset) && err.contains("no-such-dir"),
            "{err}"
        );
    }
    let out = run(
        env!("CARGO_BIN_EXE_transformer-2017"),
        &["--dataset", "nonsense"],
        &dir,
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dataset 'nonsense'"));
}

/// A corrupt dataset file is named in the error, with what is wrong.
#[test]
fn corrupt_dataset_is_a_clear_error() {
    let dir = temp_dir("corrupt");
    let mnist = dir.join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    for name in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::write(mnist.join(name), b"this is not gzip data").unwrap();
    }
    let out = run(
        env!("CARGO_BIN_EXE_mlp-1986"),
        &["--dataset", "mnist", "--data-dir", dir.to_str().unwrap()],
        &dir,
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("idx") && err.contains("ubyte.gz") && !err.contains("panicked"),
        "{err}"
    );
}

fn data_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("TINYTORCH_DATA")
            .expect("set TINYTORCH_DATA to the datasets directory for the real-data tests"),
    )
}

fn quick_real(bin: &str, args: &[&str], name: &str) -> Value {
    let dir = temp_dir(name);
    let json = dir.join("run.json");
    let data = data_dir();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--json", json.to_str().unwrap()]);
    let out = run(bin, &all, &dir, Some(&data));
    assert_ok(&out);
    json_of(&json)
}

/// MNIST MLP, one epoch: at least 95% test accuracy.
#[test]
#[ignore = "needs TINYTORCH_DATA"]
fn real_mnist_mlp_one_epoch() {
    let j = quick_real(
        env!("CARGO_BIN_EXE_mlp-1986"),
        &["--dataset", "mnist", "--epochs", "1"],
        "mnist-mlp",
    );
    assert!(metric(&j, "test_accuracy") >= 0.95, "{j}");
}

/// MNIST LeNet, one epoch: at least 97% test accuracy.
#[test]
#[ignore = "needs TINYTORCH_DATA"]
fn real_mnist_cnn_one_epoch() {
    let j = quick_real(
        env!("CARGO_BIN_EXE_cnn-1998"),
        &["--dataset", "mnist", "--epochs", "1"],
        "mnist-cnn",
    );
    assert!(metric(&j, "test_accuracy") >= 0.97, "{j}");
}

/// TinyDigits: the MLP and the CNN at their full (seconds-long) settings.
#[test]
#[ignore = "needs TINYTORCH_DATA"]
fn real_tinydigits() {
    let j = quick_real(env!("CARGO_BIN_EXE_mlp-1986"), &[], "tiny-mlp");
    assert!(metric(&j, "test_accuracy") >= 0.92, "{j}");
    let j = quick_real(env!("CARGO_BIN_EXE_cnn-1998"), &[], "tiny-cnn");
    assert!(metric(&j, "test_accuracy") >= 0.95, "{j}");
}

/// Shakespeare, 300 iterations of nanoGPT's config: validation loss below 2.6.
#[test]
#[ignore = "needs TINYTORCH_DATA"]
fn real_shakespeare_quick() {
    let j = quick_real(
        env!("CARGO_BIN_EXE_transformer-2017"),
        &["--dataset", "shakespeare", "--quick"],
        "shakespeare",
    );
    assert!(metric(&j, "val_loss") < 2.6, "{j}");
}

/// TinyTalks, quick: the loss falls well below the unigram level.
#[test]
#[ignore = "needs TINYTORCH_DATA"]
fn real_tinytalks_quick() {
    let j = quick_real(
        env!("CARGO_BIN_EXE_transformer-2017"),
        &["--dataset", "tinytalks", "--quick"],
        "tinytalks",
    );
    assert!(metric(&j, "val_loss") < 2.5, "{j}");
}
