//! The shared milestone output: results table, JSON, terminal and SVG plots.

use milestones::plot::{svg_plot, terminal_plot, Series};
use milestones::report::{format_count, RunReport};

fn curve() -> Vec<Series> {
    let train: Vec<(f64, f64)> = (0..50)
        .map(|i| (i as f64, 3.0 * (-(i as f64) / 15.0).exp() + 0.2))
        .collect();
    let val: Vec<(f64, f64)> = (0..50)
        .step_by(10)
        .map(|i| (i as f64, 3.2 * (-(i as f64) / 15.0).exp() + 0.3))
        .collect();
    vec![
        Series::new("train loss", train),
        Series::new("val loss", val),
    ]
}

/// The table shows every metric, accuracies as percentages, and the JSON has the agreed keys.
#[test]
fn table_and_json() {
    let mut r = RunReport::new("mlp-1986", "tinydigits");
    r.metric("test_accuracy", 0.9512)
        .metric("final_loss", 0.12345);
    r.params = 12_345;
    r.seconds = 3.25;
    let t = r.table();
    assert!(
        t.contains("95.12%") && t.contains("0.1235") && t.contains("12,345") && t.contains("3.2 s"),
        "{t}"
    );
    let j = r.to_json();
    assert_eq!(j["milestone"], "mlp-1986");
    assert_eq!(j["dataset"], "tinydigits");
    assert_eq!(j["metrics"]["test_accuracy"], 0.9512);
    assert_eq!(j["params"], 12_345);
    let dir = std::env::temp_dir().join(format!("tt-report-{}", std::process::id()));
    let path = dir.join("out.json");
    r.write_json(&path).unwrap();
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back, j);
    assert_eq!(format_count(1_234_567), "1,234,567");
    assert_eq!(format_count(12), "12");
}

/// The terminal plot has the requested size, a legend, and marks at the curve's ends.
#[test]
fn terminal_plot_draws_curves() {
    let s = terminal_plot("loss", "step", &curve(), 40, 10);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 1 + 10 + 1 + 1 + 1);
    assert!(
        lines[1].contains('o'),
        "the first val point is the maximum: {s}"
    );
    assert!(
        lines[10].contains('*'),
        "the last train points are the minimum: {s}"
    );
    assert!(s.contains("* train loss") && s.contains("o val loss"));
    assert!(terminal_plot("empty", "x", &[], 10, 5).contains("nothing to plot"));
}

/// The SVG file is written and contains the legend.
#[test]
fn svg_plot_writes_file() {
    let dir = std::env::temp_dir().join(format!("tt-plot-{}", std::process::id()));
    let path = dir.join("curve.svg");
    svg_plot(&path, "loss", "step", &curve()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("<svg") && text.contains("train loss") && text.contains("<polyline"),
        "{}",
        &text[..200.min(text.len())]
    );
}

/// The embedded corpus is deterministic, every generated line is grammatical, and the checker
/// rejects broken lines.
#[test]
fn corpus_is_deterministic_and_checkable() {
    use milestones::corpus::{generate, is_grammatical};
    let a = generate(200, 7);
    assert_eq!(a, generate(200, 7));
    assert_ne!(a, generate(200, 8));
    assert!(a.lines().all(is_grammatical));
    assert_eq!(a.lines().count(), 200);
    for bad in [
        "the cat sees.",
        "cat sees the fox.",
        "the cat sees the fox",
        "the red red fox sees a cat.",
        "a fox sees a cat at noon.",
        "",
    ] {
        assert!(!is_grammatical(bad), "{bad}");
    }
    assert!(is_grammatical(
        "every brave kettle hears the lamp under the bridge."
    ));
}

/// Generated tasks have the documented layout.
#[test]
fn generated_tasks() {
    use milestones::tasks::{blobs, noisy_xor, task_examples, SeqTask, REVERSE_SEPARATOR};
    let mut rng = tensor::TensorRng::new(1);
    let rows = task_examples(SeqTask::Reverse, 3, 4, &mut rng).rows;
    for r in &rows {
        assert_eq!(r.len(), 9);
        assert_eq!(r[4], REVERSE_SEPARATOR);
        let back: Vec<usize> = r[..4].iter().rev().copied().collect();
        assert_eq!(&r[5..], back.as_slice());
    }
    let (p, l) = blobs(100, &mut rng);
    assert_eq!((p.len(), l.len()), (200, 100));
    let (_, l) = noisy_xor(8, 0.1, &mut rng);
    assert_eq!(l, vec![0, 1, 1, 0, 0, 1, 1, 0]);
}
