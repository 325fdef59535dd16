//! `mlperf-2018` run as a user runs it: the quick benchmark on generated data end to end (tables,
//! a valid JSON report, the SVG, checkpoints reused with `--load`), `--validate` on good and
//! broken reports, and an `#[ignore]`d MNIST run reading `TINYTORCH_DATA`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mlperf-2018");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tt-mlperf-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str], cwd: &Path, data: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(cwd);
    match data {
        Some(d) => cmd.env("TINYTORCH_DATA", d),
        None => cmd.env_remove("TINYTORCH_DATA"),
    };
    cmd.output().expect("the mlperf-2018 binary starts")
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_of(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// No data at all: the generated shapes task, every variant measured, a valid report whose
/// numbers are real (accuracy well above chance on held-out images, positive latencies, the
/// KV cache identical to uncached decoding), the SVG, and a second run reusing the checkpoints.
#[test]
fn quick_run_on_generated_data() {
    let dir = temp_dir("quick");
    let json = dir.join("report.json");
    let svg = dir.join("pareto.svg");
    let ckpt = dir.join("ckpt");
    let out = run(
        &[
            "--quick",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
            "--save",
            ckpt.to_str().unwrap(),
        ],
        &dir,
        None,
    );
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "vision track on shapes",
        "frontier",
        "latency_sprint",
        "all_around",
        "KV cache",
        "profile of mlp",
    ] {
        assert!(stdout.contains(needle), "missing '{needle}' in:\n{stdout}");
    }
    let j = json_of(&json);
    assert_eq!(j["milestone"], "mlperf-2018");
    assert_eq!(j["dataset"], "shapes");
    let names: Vec<&str> = j["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "mlp",
            "cnn",
            "mlp-narrow",
            "mlp-int8",
            "mlp-int8-static",
            "cnn-int8",
            "mlp-pruned-50",
            "mlp-pruned-90",
            "mlp-shrunk-50",
            "mlp-shrunk-50-int8",
            "student",
            "student-int8"
        ]
    );
    assert_eq!(j["baseline"]["name"], "mlp");
    let variant = |name: &str| {
        j["variants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .clone()
    };
    let accuracy = |name: &str| variant(name)["accuracy"].as_f64().unwrap();
    let size = |name: &str| variant(name)["size_bytes"].as_f64().unwrap();
    // Eight classes: chance is 12.5%. Even the quick run's baselines are far above it.
    for name in ["mlp", "cnn", "mlp-narrow"] {
        assert!(accuracy(name) > 0.4, "{name} accuracy {}", accuracy(name));
    }
    for v in j["variants"].as_array().unwrap() {
        assert!(v["latency_b1_ms"]["mean"].as_f64().unwrap() > 0.0);
        assert!(v["size_bytes"].as_u64().unwrap() > v["param_bytes"].as_u64().unwrap());
    }
    // int8 keeps the accuracy of the model it converts, in about a quarter of the file.
    for (f32_name, int8_name) in [
        ("mlp", "mlp-int8"),
        ("cnn", "cnn-int8"),
        ("student", "student-int8"),
    ] {
        let drop = accuracy(f32_name) - accuracy(int8_name);
        assert!(drop.abs() < 0.03, "{int8_name}: {drop} below {f32_name}");
    }
    assert!(size("mlp") / size("mlp-int8") > 3.5);
    assert!(size("mlp") / size("mlp-shrunk-50-int8") > 7.0);
    assert!(variant("mlp-pruned-90")["technique"]
        .as_str()
        .unwrap()
        .starts_with("90% weights pruned"));
    assert_eq!(j["generation"]["identical"], true);
    let generation: Vec<(String, Value)> = j["generation"]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["identical"].clone(),
            )
        })
        .collect();
    assert_eq!(
        generation,
        [
            ("int8 + KV cache".to_string(), Value::Null),
            ("8 prompts batched".to_string(), Value::Bool(true))
        ]
    );
    let (f, q) = (
        j["generation"]["val_loss_fp32"].as_f64().unwrap(),
        j["generation"]["val_loss_int8"].as_f64().unwrap(),
    );
    assert!(
        (q - f).abs() / f < 0.03,
        "int8 held-out loss {q} vs fp32 {f}"
    );
    assert!(j["system"]["simd"].is_string());
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    // The binary's own checker accepts what it wrote.
    let check = run(&["--validate", json.to_str().unwrap()], &dir, None);
    assert_ok(&check);
    assert!(String::from_utf8_lossy(&check.stdout).contains("valid report"));

    // The checkpoints are reused: same held-out accuracy, nothing retrained.
    let json2 = dir.join("again.json");
    let again = run(
        &[
            "--quick",
            "--load",
            ckpt.to_str().unwrap(),
            "--json",
            json2.to_str().unwrap(),
        ],
        &dir,
        None,
    );
    assert_ok(&again);
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        text.contains("mlp: loaded from") && text.contains("gpt: loaded from"),
        "{text}"
    );
    let j2 = json_of(&json2);
    for i in 0..3 {
        assert_eq!(j2["variants"][i]["accuracy"], j["variants"][i]["accuracy"]);
        assert_eq!(
            j2["variants"][i]["size_bytes"],
            j["variants"][i]["size_bytes"]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--validate` exits non-zero and names the field of a broken report.
#[test]
fn validate_rejects_broken_reports() {
    let dir = temp_dir("validate");
    let path = dir.join("broken.json");
    std::fs::write(
        &path,
        r#"{"schema": "tinytorch-benchmark-report/1", "milestone": 3}"#,
    )
    .unwrap();
    let out = run(&["--validate", path.to_str().unwrap()], &dir, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`milestone`") && err.contains("expected a string"),
        "{err}"
    );

    std::fs::write(&path, "not json").unwrap();
    let out = run(&["--validate", path.to_str().unwrap()], &dir, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"));

    let missing = dir.join("nope.json");
    let out = run(&["--validate", missing.to_str().unwrap()], &dir, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Unknown datasets and baselines are clear errors.
#[test]
fn bad_flags_are_clear_errors() {
    let dir = temp_dir("flags");
    let out = run(&["--quick", "--dataset", "imagenet"], &dir, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dataset 'imagenet'"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// MNIST from `TINYTORCH_DATA`: the quick benchmark on real held-out digits.
#[test]
#[ignore = "needs MNIST under TINYTORCH_DATA"]
fn quick_run_on_mnist() {
    let data = std::env::var_os("TINYTORCH_DATA").expect("TINYTORCH_DATA is set");
    let dir = temp_dir("mnist");
    let json = dir.join("report.json");
    let out = run(
        &[
            "--quick",
            "--dataset",
            "mnist",
            "--no-generation",
            "--json",
            json.to_str().unwrap(),
        ],
        &dir,
        Some(Path::new(&data)),
    );
    assert_ok(&out);
    let j = json_of(&json);
    assert_eq!(j["dataset"], "mnist");
    assert!(j["baseline"]["accuracy"].as_f64().unwrap() > 0.9, "{j}");
    assert!(j["variants"][1]["accuracy"].as_f64().unwrap() > 0.9, "{j}");
    // int8 within a point of f32 on real digits, at about a quarter of the size.
    let (f, q) = (&j["variants"][0], &j["variants"][3]);
    assert_eq!(q["name"], "mlp-int8");
    let drop = f["accuracy"].as_f64().unwrap() - q["accuracy"].as_f64().unwrap();
    assert!(drop < 0.01, "int8 MLP {drop} below f32");
    assert!(f["size_bytes"].as_f64().unwrap() / q["size_bytes"].as_f64().unwrap() > 3.5);
    let _ = std::fs::remove_dir_all(&dir);
}
