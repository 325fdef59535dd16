//! Grader tests of the benchmarking harness: statistics on hand-computed samples, Pareto
//! marking (ties, duplicates, a single model), events, and report validation on a good report
//! and on broken ones (each rejected with the offending field named).

use benches::harness::{
    judge, pareto_front, quantile_sorted, t_critical_95, validate_report, BenchmarkSettings, Event,
    GenerationMetrics, GenerationVariant, HarnessError, ModelMetrics, PeakMemory, PeakSource,
    Report, Summary, SystemInfo,
};
use serde_json::{json, Value};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn summary_of_one_to_five() {
    // mean 3; squared deviations 4+1+0+1+4 = 10, / (n-1) = 2.5, std = 1.5811388;
    // median 3; p95 rank 0.95 * 4 = 3.8 -> 4 + 0.8 * (5 - 4) = 4.8;
    // CI half width t(4) * std / sqrt(5) = 2.776 * 1.5811388 / 2.2360680 = 1.9629284.
    let s = Summary::from_samples(&[3.0, 1.0, 5.0, 2.0, 4.0]).unwrap();
    assert_eq!(s.n, 5);
    assert!(close(s.mean, 3.0, 1e-12));
    assert!(close(s.std, 1.581_138_8, 1e-7), "{}", s.std);
    assert!(close(s.median, 3.0, 1e-12));
    assert_eq!((s.min, s.max), (1.0, 5.0));
    assert!(close(s.p95, 4.8, 1e-12), "{}", s.p95);
    assert!(close(s.ci95_low, 3.0 - 1.962_928_4, 1e-6), "{}", s.ci95_low);
    assert!(
        close(s.ci95_high, 3.0 + 1.962_928_4, 1e-6),
        "{}",
        s.ci95_high
    );
}

#[test]
fn summary_of_an_even_sample() {
    // 2 4 4 4 5 5 7 9: mean 40/8 = 5; squared deviations 9+1+1+1+0+0+4+16 = 32, / 7,
    // std = 2.1380899; median (4 + 5) / 2 = 4.5; p95 rank 0.95 * 7 = 6.65 -> 7 + 0.65 * 2 = 8.3;
    // half width t(7) = 2.365 * 2.1380899 / sqrt(8) = 1.7877720.
    let s = Summary::from_samples(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
    assert!(close(s.mean, 5.0, 1e-12));
    assert!(close(s.std, 2.138_089_9, 1e-7), "{}", s.std);
    assert!(close(s.median, 4.5, 1e-12));
    assert!(close(s.p95, 8.3, 1e-12), "{}", s.p95);
    assert!(
        close(s.ci95_half_width(), 1.787_772_0, 1e-6),
        "{}",
        s.ci95_half_width()
    );
    // Scaling to milliseconds scales every statistic.
    let ms = s.scaled(1e3);
    assert!(close(ms.mean, 5e3, 1e-9) && close(ms.std, s.std * 1e3, 1e-9));
}

#[test]
fn constant_samples_have_no_spread() {
    let s = Summary::from_samples(&[0.25; 4]).unwrap();
    assert_eq!(
        (s.std, s.ci95_low, s.ci95_high, s.p95),
        (0.0, 0.25, 0.25, 0.25)
    );
}

#[test]
fn summary_rejects_too_few_and_non_finite_samples() {
    assert!(matches!(
        Summary::from_samples(&[1.0]),
        Err(HarnessError::TooFewSamples { got: 1, .. })
    ));
    assert!(matches!(
        Summary::from_samples(&[1.0, f64::NAN]),
        Err(HarnessError::NonFinite { index: 1, .. })
    ));
}

#[test]
fn student_t_table_and_tail() {
    assert!(close(t_critical_95(1), 12.706, 1e-9));
    assert!(close(t_critical_95(9), 2.262, 1e-9));
    assert!(close(t_critical_95(30), 2.042, 1e-9));
    // Exact values: t(40) = 2.0211, t(60) = 2.0003, t(120) = 1.9799; the limit is 1.96.
    assert!(
        close(t_critical_95(40), 2.0211, 1e-3),
        "{}",
        t_critical_95(40)
    );
    assert!(
        close(t_critical_95(60), 2.0003, 1e-3),
        "{}",
        t_critical_95(60)
    );
    assert!(
        close(t_critical_95(120), 1.9799, 1e-3),
        "{}",
        t_critical_95(120)
    );
    assert!(close(t_critical_95(1_000_000), 1.96, 1e-3));
    // Decreasing in the degrees of freedom, also across the end of the table.
    assert!(t_critical_95(31) < t_critical_95(30));
}

#[test]
fn quantiles_interpolate_between_ranks() {
    let v = [10.0, 20.0, 30.0, 40.0];
    assert_eq!(quantile_sorted(&v, 0.0), 10.0);
    assert_eq!(quantile_sorted(&v, 1.0), 40.0);
    assert!(close(quantile_sorted(&v, 0.5), 25.0, 1e-12));
    assert!(close(quantile_sorted(&v, 0.95), 38.5, 1e-12));
}

#[test]
fn pareto_single_model_is_on_the_frontier() {
    assert_eq!(pareto_front(&[(0.5, 3.0)]), vec![true]);
    assert!(pareto_front(&[]).is_empty());
}

#[test]
fn pareto_duplicates_both_stay() {
    let pts = [(0.9, 1.0), (0.9, 1.0), (0.8, 2.0)];
    assert_eq!(pareto_front(&pts), vec![true, true, false]);
}

#[test]
fn pareto_ties_on_one_axis_are_broken_by_the_other() {
    // Same accuracy: the faster one dominates. Same latency: the more accurate one dominates.
    assert_eq!(pareto_front(&[(0.9, 2.0), (0.9, 1.0)]), vec![false, true]);
    assert_eq!(pareto_front(&[(0.8, 1.0), (0.9, 1.0)]), vec![false, true]);
    // A trade-off keeps both; a third point worse than the first on both goes.
    assert_eq!(
        pareto_front(&[(0.95, 5.0), (0.90, 1.0), (0.90, 5.0)]),
        vec![true, true, false]
    );
}

fn summary_ms(mean: f64) -> Summary {
    Summary::from_samples(&[mean * 0.9, mean, mean * 1.1]).unwrap()
}

fn metrics(name: &str, accuracy: f64, b1_ms: f64, size: u64) -> ModelMetrics {
    ModelMetrics {
        name: name.into(),
        technique: if name == "base" { "baseline" } else { "test" }.into(),
        accuracy,
        latency_b1_ms: summary_ms(b1_ms),
        latency_batch_ms: summary_ms(b1_ms * 20.0),
        batch_size: 256,
        size_bytes: size,
        param_bytes: size - 100,
        peak_memory: PeakMemory {
            bytes: Some(50 << 20),
            source: PeakSource::HighWaterMarkSinceReset,
        },
    }
}

#[test]
fn events_pick_winners_and_floor_on_accuracy() {
    let base = metrics("base", 0.90, 1.0, 10_000);
    let models = vec![
        base.clone(),
        // Within one point of the baseline, and the fastest of those.
        metrics("fast", 0.895, 0.2, 8_000),
        // Fastest and smallest of all, but below the accuracy floor.
        metrics("tiny", 0.70, 0.1, 1_000),
        // The smallest above the floor.
        metrics("small", 0.91, 0.5, 2_000),
        // The most accurate, but too slow and too big for the contest.
        metrics("huge", 0.99, 500.0, 50_000_000),
    ];
    let winner = |e: Event| e.winner(&models, &base).map(|i| models[i].name.as_str());
    assert_eq!(winner(Event::LatencySprint), Some("fast"));
    assert_eq!(winner(Event::MemoryChallenge), Some("small"));
    assert_eq!(winner(Event::AccuracyContest), Some("small"));
    // speedup x compression: fast 5 * 1.25 = 6.25, small 2 * 5 = 10.
    assert_eq!(winner(Event::AllAround), Some("small"));
    let results = judge(&models, &base, &models[2]);
    assert!(
        !results[0].best_qualifies,
        "tiny is below the accuracy floor"
    );
    assert!(results[2].best_qualifies, "tiny is under 100 ms and 10 MB");
}

fn good_report() -> Report {
    let variants = vec![
        metrics("base", 0.90, 1.0, 10_000),
        metrics("small", 0.91, 0.5, 2_000),
    ];
    let events = judge(&variants, &variants[0], &variants[1]);
    Report {
        milestone: "mlperf-2018".into(),
        dataset: "shapes".into(),
        seconds: 12.5,
        params: 2_475,
        system: SystemInfo {
            cpu_model: "Test CPU".into(),
            cores: 2,
            simd: "avx512f".into(),
            threads: 2,
            os: "linux".into(),
            rustc: "rustc 1.89.0".into(),
            crate_version: "0.1.0".into(),
            git_commit: Some("abc1234".into()),
        },
        settings: BenchmarkSettings {
            warmup: 3,
            runs: 20,
            batch_size: 256,
        },
        variants,
        baseline: 0,
        optimized: 1,
        techniques: vec!["baseline".into(), "test".into()],
        events,
        generation: Some(GenerationMetrics {
            model: "gpt".into(),
            prompt_tokens: 4,
            new_tokens: 32,
            uncached_ms: summary_ms(40.0),
            cached_ms: summary_ms(10.0),
            identical: true,
            variants: vec![GenerationVariant {
                name: "8 prompts batched".into(),
                reference: "8 prompts one by one".into(),
                new_tokens: 256,
                ms: summary_ms(20.0),
                reference_ms: summary_ms(80.0),
                identical: Some(true),
            }],
            val_loss: Some((1.2, 1.21)),
        }),
    }
}

fn rejected(report: &Value) -> String {
    match validate_report(report) {
        Err(HarnessError::Report { field, reason }) => format!("{field}: {reason}"),
        other => panic!("expected a report error, got {other:?} for {report}"),
    }
}

#[test]
fn a_good_report_validates() {
    let report = good_report();
    let j = report.to_json();
    validate_report(&j).unwrap();
    // It also survives a round trip through text.
    let text = serde_json::to_string_pretty(&j).unwrap();
    validate_report(&serde_json::from_str(&text).unwrap()).unwrap();
    assert!(close(report.improvements().speedup, 2.0, 1e-12));
    assert!(close(report.improvements().compression_ratio, 5.0, 1e-12));
    assert!(close(
        j["metrics"]["kv_cache_speedup"].as_f64().unwrap(),
        4.0,
        1e-12
    ));
    // Without the generation track (null or absent) it is still valid.
    let mut without = j.clone();
    without["generation"] = Value::Null;
    validate_report(&without).unwrap();
    without.as_object_mut().unwrap().remove("generation");
    validate_report(&without).unwrap();
}

#[test]
fn an_inconsistent_speedup_is_rejected() {
    let mut j = good_report().to_json();
    j["improvements"]["speedup"] = json!(3.0);
    let e = rejected(&j);
    assert!(e.starts_with("improvements.speedup:"), "{e}");
    assert!(e.contains("latency_b1_ms"), "{e}");
}

#[test]
fn an_inconsistent_generation_variant_is_rejected() {
    let mut j = good_report().to_json();
    j["generation"]["variants"][0]["speedup"] = json!(2.0);
    let e = rejected(&j);
    assert!(e.starts_with("generation.variants[0].speedup:"), "{e}");
    let mut j = good_report().to_json();
    j["generation"]["variants"][0]["tokens_per_s"] = json!(1.0);
    assert!(rejected(&j).starts_with("generation.variants[0].tokens_per_s:"));
    let mut j = good_report().to_json();
    j["generation"]["val_loss_int8"] = json!(-1.0);
    assert!(rejected(&j).starts_with("generation.val_loss_int8"));
}

#[test]
fn an_inconsistent_compression_or_accuracy_delta_is_rejected() {
    let mut j = good_report().to_json();
    j["improvements"]["compression_ratio"] = json!(4.0);
    assert!(rejected(&j).starts_with("improvements.compression_ratio:"));
    let mut j = good_report().to_json();
    j["improvements"]["accuracy_delta"] = json!(0.5);
    assert!(rejected(&j).starts_with("improvements.accuracy_delta:"));
    let mut j = good_report().to_json();
    j["generation"]["speedup"] = json!(1.5);
    assert!(rejected(&j).starts_with("generation.speedup:"));
}

#[test]
fn a_missing_field_is_named() {
    let mut j = good_report().to_json();
    j["system"].as_object_mut().unwrap().remove("simd");
    assert_eq!(rejected(&j), "system.simd: missing");
    let mut j = good_report().to_json();
    j["variants"][1]
        .as_object_mut()
        .unwrap()
        .remove("size_bytes");
    assert_eq!(rejected(&j), "variants[1].size_bytes: missing");
    let mut j = good_report().to_json();
    j.as_object_mut().unwrap().remove("improvements");
    assert_eq!(rejected(&j), "improvements: missing");
}

#[test]
fn a_negative_time_is_rejected() {
    let mut j = good_report().to_json();
    j["variants"][0]["latency_b1_ms"]["min"] = json!(-0.5);
    let e = rejected(&j);
    assert!(
        e.starts_with("variants[0].latency_b1_ms.min:") && e.contains("negative"),
        "{e}"
    );
    let mut j = good_report().to_json();
    j["seconds"] = json!(-1.0);
    assert!(rejected(&j).starts_with("seconds:"));
}

#[test]
fn wrong_types_are_rejected() {
    let mut j = good_report().to_json();
    j["baseline"]["accuracy"] = json!("90%");
    assert_eq!(
        rejected(&j),
        "baseline.accuracy: expected a number, found a string"
    );
    let mut j = good_report().to_json();
    j["system"]["cores"] = json!(2.5);
    assert!(rejected(&j).starts_with("system.cores:"));
    let mut j = good_report().to_json();
    j["variants"] = json!({});
    assert_eq!(rejected(&j), "variants: expected an array, found an object");
    assert_eq!(
        rejected(&json!([1, 2])),
        "(root): expected an object, found an array"
    );
}

#[test]
fn contradictory_statistics_and_names_are_rejected() {
    // A mean above the max.
    let mut j = good_report().to_json();
    j["variants"][0]["latency_b1_ms"]["mean"] = json!(100.0);
    assert!(rejected(&j).starts_with("variants[0].latency_b1_ms.mean:"));
    // A throughput that is not batch / latency.
    let mut j = good_report().to_json();
    j["variants"][1]["throughput_per_s"] = json!(1.0);
    assert!(rejected(&j).starts_with("variants[1].throughput_per_s:"));
    // An accuracy given in percent.
    let mut j = good_report().to_json();
    j["variants"][0]["accuracy"] = json!(90.0);
    assert!(rejected(&j).starts_with("variants[0].accuracy:"));
    // A best model that was never measured.
    let mut j = good_report().to_json();
    j["optimized"]["name"] = json!("ghost");
    assert!(rejected(&j).starts_with("optimized.name:"));
    // An unknown event and a wrong schema.
    let mut j = good_report().to_json();
    j["events"][0]["event"] = json!("marathon");
    assert!(rejected(&j).starts_with("events[0].event:"));
    let mut j = good_report().to_json();
    j["schema"] = json!("something-else/9");
    assert!(rejected(&j).starts_with("schema:"));
    // Peak memory missing while its source claims a reading.
    let mut j = good_report().to_json();
    j["variants"][0]["peak_memory_bytes"] = Value::Null;
    assert!(rejected(&j).starts_with("variants[0].peak_memory_bytes:"));
}
