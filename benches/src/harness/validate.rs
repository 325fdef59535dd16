//! Checking a benchmark report: every field present with the right type, no negative time, and
//! no number that contradicts the others (a speedup that is not the ratio of its two latencies,
//! a throughput that is not the batch over its latency, a mean outside its own min and max).
//! The first problem found is returned as [`HarnessError::Report`] naming the field.

use serde_json::Value;

use crate::harness::error::{HarnessError, Result};
use crate::harness::events::Event;
use crate::harness::memory::PeakSource;
use crate::harness::report::REPORT_SCHEMA;

/// Relative tolerance for derived numbers (ratios are recomputed from rounded JSON values).
const RELATIVE_TOLERANCE: f64 = 1e-6;

fn fail<T>(field: &str, reason: impl Into<String>) -> Result<T> {
    Err(HarnessError::report(field, reason))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn get<'a>(obj: &'a Value, path: &str, key: &str) -> Result<&'a Value> {
    obj.get(key)
        .ok_or_else(|| HarnessError::report(join(path, key), "missing"))
}

fn object<'a>(obj: &'a Value, path: &str, key: &str) -> Result<&'a Value> {
    let v = get(obj, path, key)?;
    if v.is_object() {
        Ok(v)
    } else {
        fail(
            &join(path, key),
            format!("expected an object, found {}", kind(v)),
        )
    }
}

fn string<'a>(obj: &'a Value, path: &str, key: &str) -> Result<&'a str> {
    let v = get(obj, path, key)?;
    v.as_str().ok_or_else(|| {
        HarnessError::report(
            join(path, key),
            format!("expected a string, found {}", kind(v)),
        )
    })
}

fn number(obj: &Value, path: &str, key: &str) -> Result<f64> {
    let v = get(obj, path, key)?;
    let x = v.as_f64().ok_or_else(|| {
        HarnessError::report(
            join(path, key),
            format!("expected a number, found {}", kind(v)),
        )
    })?;
    if !x.is_finite() {
        return fail(&join(path, key), "not finite");
    }
    Ok(x)
}

fn non_negative(obj: &Value, path: &str, key: &str) -> Result<f64> {
    let x = number(obj, path, key)?;
    if x < 0.0 {
        return fail(&join(path, key), format!("must not be negative, found {x}"));
    }
    Ok(x)
}

fn positive(obj: &Value, path: &str, key: &str) -> Result<f64> {
    let x = number(obj, path, key)?;
    if x <= 0.0 {
        return fail(&join(path, key), format!("must be positive, found {x}"));
    }
    Ok(x)
}

fn integer(obj: &Value, path: &str, key: &str, min: u64) -> Result<u64> {
    let v = get(obj, path, key)?;
    let n = v.as_u64().ok_or_else(|| {
        HarnessError::report(
            join(path, key),
            format!("expected a non-negative integer, found {v}"),
        )
    })?;
    if n < min {
        return fail(
            &join(path, key),
            format!("must be at least {min}, found {n}"),
        );
    }
    Ok(n)
}

fn boolean(obj: &Value, path: &str, key: &str) -> Result<bool> {
    let v = get(obj, path, key)?;
    v.as_bool().ok_or_else(|| {
        HarnessError::report(
            join(path, key),
            format!("expected a boolean, found {}", kind(v)),
        )
    })
}

fn optional_string(obj: &Value, path: &str, key: &str) -> Result<Option<String>> {
    match get(obj, path, key)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        v => fail(
            &join(path, key),
            format!("expected a string or null, found {}", kind(v)),
        ),
    }
}

/// `reported` must equal `expected` up to the relative tolerance.
fn consistent(field: &str, reported: f64, expected: f64, how: &str) -> Result<()> {
    let scale = expected.abs().max(reported.abs()).max(1e-12);
    if (reported - expected).abs() > RELATIVE_TOLERANCE * scale {
        return fail(field, format!("is {reported} but {how} gives {expected}"));
    }
    Ok(())
}

/// A timing summary (`n`, `mean`, `std`, `median`, `min`, `max`, `p95`, `ci95_low`,
/// `ci95_high`): times are not negative and the statistics are in order. Returns the mean.
fn summary(obj: &Value, path: &str, key: &str) -> Result<f64> {
    let s = object(obj, path, key)?;
    let p = join(path, key);
    integer(s, &p, "n", 2)?;
    let mean = non_negative(s, &p, "mean")?;
    non_negative(s, &p, "std")?;
    let median = non_negative(s, &p, "median")?;
    let min = non_negative(s, &p, "min")?;
    let max = non_negative(s, &p, "max")?;
    let p95 = non_negative(s, &p, "p95")?;
    let low = number(s, &p, "ci95_low")?;
    let high = number(s, &p, "ci95_high")?;
    let slack = RELATIVE_TOLERANCE * max.max(1e-12);
    if min > max {
        return fail(&join(&p, "min"), format!("{min} is above max {max}"));
    }
    for (name, v) in [("mean", mean), ("median", median), ("p95", p95)] {
        if v < min - slack || v > max + slack {
            return fail(
                &join(&p, name),
                format!("{v} lies outside [min, max] = [{min}, {max}]"),
            );
        }
    }
    if low > mean + slack || high < mean - slack {
        return fail(
            &join(&p, "ci95_low"),
            format!("the interval [{low}, {high}] does not contain the mean {mean}"),
        );
    }
    Ok(mean)
}

/// One model's metrics; returns its name.
fn model(obj: &Value, path: &str) -> Result<String> {
    if !obj.is_object() {
        return fail(path, format!("expected an object, found {}", kind(obj)));
    }
    let name = string(obj, path, "name")?;
    if name.is_empty() {
        return fail(&join(path, "name"), "empty");
    }
    string(obj, path, "technique")?;
    let accuracy = number(obj, path, "accuracy")?;
    if !(0.0..=1.0).contains(&accuracy) {
        return fail(
            &join(path, "accuracy"),
            format!("a fraction in [0, 1], found {accuracy}"),
        );
    }
    summary(obj, path, "latency_b1_ms")?;
    let batch_ms = summary(obj, path, "latency_batch_ms")?;
    let batch = integer(obj, path, "batch_size", 1)?;
    let throughput = positive(obj, path, "throughput_per_s")?;
    consistent(
        &join(path, "throughput_per_s"),
        throughput,
        batch as f64 / (batch_ms / 1e3),
        "batch_size / latency_batch_ms.mean",
    )?;
    integer(obj, path, "size_bytes", 1)?;
    integer(obj, path, "param_bytes", 0)?;
    let source = string(obj, path, "peak_memory_source")?;
    if !PeakSource::NAMES.contains(&source) {
        return fail(
            &join(path, "peak_memory_source"),
            format!("'{source}' is not one of {:?}", PeakSource::NAMES),
        );
    }
    match get(obj, path, "peak_memory_bytes")? {
        Value::Null if source == "unavailable" => {}
        Value::Null => {
            return fail(
                &join(path, "peak_memory_bytes"),
                format!("null, but the source says '{source}'"),
            )
        }
        _ => {
            integer(obj, path, "peak_memory_bytes", 1)?;
        }
    }
    Ok(name.to_string())
}

fn system(report: &Value) -> Result<()> {
    let s = object(report, "", "system")?;
    for key in ["cpu_model", "simd", "os", "rustc", "crate_version"] {
        string(s, "system", key)?;
    }
    integer(s, "system", "cores", 1)?;
    integer(s, "system", "threads", 1)?;
    optional_string(s, "system", "git_commit")?;
    Ok(())
}

fn generation(report: &Value) -> Result<()> {
    let g = match report.get("generation") {
        None | Some(Value::Null) => return Ok(()),
        Some(v) if v.is_object() => v,
        Some(v) => {
            return fail(
                "generation",
                format!("expected an object or null, found {}", kind(v)),
            )
        }
    };
    let p = "generation";
    string(g, p, "model")?;
    integer(g, p, "prompt_tokens", 1)?;
    let tokens = integer(g, p, "new_tokens", 1)? as f64;
    let uncached = summary(g, p, "uncached_ms")?;
    let cached = summary(g, p, "cached_ms")?;
    let u_tps = positive(g, p, "uncached_tokens_per_s")?;
    let c_tps = positive(g, p, "cached_tokens_per_s")?;
    consistent(
        "generation.uncached_tokens_per_s",
        u_tps,
        tokens / (uncached / 1e3),
        "new_tokens / uncached_ms.mean",
    )?;
    consistent(
        "generation.cached_tokens_per_s",
        c_tps,
        tokens / (cached / 1e3),
        "new_tokens / cached_ms.mean",
    )?;
    let speedup = positive(g, p, "speedup")?;
    consistent(
        "generation.speedup",
        speedup,
        uncached / cached,
        "uncached_ms.mean / cached_ms.mean",
    )?;
    boolean(g, p, "identical")?;
    for key in ["val_loss_fp32", "val_loss_int8"] {
        match g.get(key) {
            None | Some(Value::Null) => {}
            Some(_) => {
                positive(g, p, key)?;
            }
        }
    }
    let variants = match g.get("variants") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(items)) => items,
        Some(v) => {
            return fail(
                "generation.variants",
                format!("expected an array, found {}", kind(v)),
            )
        }
    };
    for (i, v) in variants.iter().enumerate() {
        let p = format!("generation.variants[{i}]");
        string(v, &p, "name")?;
        string(v, &p, "reference")?;
        let tokens = integer(v, &p, "new_tokens", 1)? as f64;
        let ms = summary(v, &p, "ms")?;
        let reference = summary(v, &p, "reference_ms")?;
        consistent(
            &format!("{p}.tokens_per_s"),
            positive(v, &p, "tokens_per_s")?,
            tokens / (ms / 1e3),
            "new_tokens / ms.mean",
        )?;
        consistent(
            &format!("{p}.speedup"),
            positive(v, &p, "speedup")?,
            reference / ms,
            "reference_ms.mean / ms.mean",
        )?;
        match v.get("identical") {
            None | Some(Value::Null) => {}
            Some(_) => {
                boolean(v, &p, "identical")?;
            }
        }
    }
    Ok(())
}

/// Check a report against the schema and against itself.
pub fn validate_report(report: &Value) -> Result<()> {
    if !report.is_object() {
        return fail(
            "(root)",
            format!("expected an object, found {}", kind(report)),
        );
    }
    let schema = string(report, "", "schema")?;
    if schema != REPORT_SCHEMA {
        return fail("schema", format!("'{schema}' is not '{REPORT_SCHEMA}'"));
    }
    string(report, "", "milestone")?;
    string(report, "", "dataset")?;
    non_negative(report, "", "seconds")?;
    integer(report, "", "params", 0)?;
    let metrics = object(report, "", "metrics")?;
    if let Some(map) = metrics.as_object() {
        for key in map.keys() {
            number(metrics, "metrics", key)?;
        }
    }
    system(report)?;
    let bench = object(report, "", "benchmark")?;
    integer(bench, "benchmark", "warmup", 0)?;
    integer(bench, "benchmark", "runs", 2)?;
    integer(bench, "benchmark", "batch_size", 1)?;

    let variants = match get(report, "", "variants")? {
        Value::Array(a) if !a.is_empty() => a,
        Value::Array(_) => return fail("variants", "empty: at least the baseline"),
        v => return fail("variants", format!("expected an array, found {}", kind(v))),
    };
    let mut names = Vec::with_capacity(variants.len());
    for (i, v) in variants.iter().enumerate() {
        names.push(model(v, &format!("variants[{i}]"))?);
    }
    let mut models = Vec::new();
    for key in ["baseline", "optimized"] {
        let m = object(report, "", key)?;
        let name = model(m, key)?;
        if !names.contains(&name) {
            return fail(
                &join(key, "name"),
                format!("'{name}' is not among the variants {names:?}"),
            );
        }
        models.push(m);
    }
    let (base, best) = (models[0], models[1]);

    match get(report, "", "techniques")? {
        Value::Array(a) => {
            if let Some((i, t)) = a.iter().enumerate().find(|(_, t)| !t.is_string()) {
                return fail(
                    &format!("techniques[{i}]"),
                    format!("expected a string, found {}", kind(t)),
                );
            }
        }
        v => {
            return fail(
                "techniques",
                format!("expected an array, found {}", kind(v)),
            )
        }
    }

    let imp = object(report, "", "improvements")?;
    let lat = |m: &Value| m["latency_b1_ms"]["mean"].as_f64().unwrap_or(f64::NAN);
    let size = |m: &Value| m["size_bytes"].as_f64().unwrap_or(f64::NAN);
    let acc = |m: &Value| m["accuracy"].as_f64().unwrap_or(f64::NAN);
    let speedup = positive(imp, "improvements", "speedup")?;
    consistent(
        "improvements.speedup",
        speedup,
        lat(base) / lat(best),
        "baseline.latency_b1_ms.mean / optimized.latency_b1_ms.mean",
    )?;
    let ratio = positive(imp, "improvements", "compression_ratio")?;
    consistent(
        "improvements.compression_ratio",
        ratio,
        size(base) / size(best),
        "baseline.size_bytes / optimized.size_bytes",
    )?;
    let delta = number(imp, "improvements", "accuracy_delta")?;
    let expected = acc(best) - acc(base);
    if (delta - expected).abs() > 1e-9 {
        return fail(
            "improvements.accuracy_delta",
            format!("is {delta} but optimized.accuracy - baseline.accuracy gives {expected}"),
        );
    }

    let events = match get(report, "", "events")? {
        Value::Array(a) => a,
        v => return fail("events", format!("expected an array, found {}", kind(v))),
    };
    let event_names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
    for (i, e) in events.iter().enumerate() {
        let p = format!("events[{i}]");
        let name = string(e, &p, "event")?;
        if !event_names.contains(&name) {
            return fail(
                &join(&p, "event"),
                format!("'{name}' is not one of {event_names:?}"),
            );
        }
        if let Some(w) = optional_string(e, &p, "winner")? {
            if !names.contains(&w) {
                return fail(
                    &join(&p, "winner"),
                    format!("'{w}' is not among the variants {names:?}"),
                );
            }
        }
        boolean(e, &p, "best_qualifies")?;
    }
    generation(report)
}

/// Read and check a report file; the error names the file and the field.
pub fn validate_report_file(path: &std::path::Path) -> std::result::Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    validate_report(&value).map_err(|e| format!("{}: {e}", path.display()))
}
