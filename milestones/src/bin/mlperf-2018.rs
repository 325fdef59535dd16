//! 2018: MLPerf. Once networks worked, the questions became "how fast, how small, at what
//! accuracy?", and answering them honestly became a discipline: fixed held-out data, warm-up,
//! repeated timed runs with their spread, the machine named, the numbers checked.
//!
//! Vision track: a baseline MLP and CNN are trained (or loaded with `--load DIR`), profiled,
//! and every variant in `milestones::variants::VARIANTS` is measured (held-out accuracy, batch-1
//! and batch-256 latency, checkpoint size, memory); one table marks the Pareto frontiers and the events
//! (latency sprint, memory challenge, accuracy contest, all-around) are judged. Generation
//! track: a small GPT trained on the embedded corpus generates with and without its KV cache on
//! equal work. `--json PATH` writes the report, `--validate FILE` checks one.
//!
//! Data: the generated `shapes` task by default (no files needed), `--dataset tinydigits` or
//! `--dataset mnist` from `--data-dir` / `TINYTORCH_DATA`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benches::harness::{
    comparison_table, frontiers, judge, validate_report_file, BenchmarkSettings, Event,
    ModelMetrics, Report, SystemInfo,
};
use clap::Parser;
use milestones::benchmark::{measure, Candidate, MeasureSettings};
use milestones::cli::{at_least, check_writable, CommonArgs, Flag};
use milestones::generation::{generation_track, GenerationSettings};
use milestones::plot::{svg_scatter, terminal_plot, ScatterPanel, ScatterPoint, Series};
use milestones::progress::bar;
use milestones::report::format_count;
use milestones::shapes::shapes_task;
use milestones::variants::{Workshop, VARIANTS};
use milestones::vision::{load_images, ImageData};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser, Debug)]
#[command(
    name = "mlperf-2018",
    about = "Benchmark models honestly: held-out accuracy, latency, size, memory, Pareto frontier, events"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Check a report written by --json and exit (non-zero, naming the field, when invalid).
    #[arg(long, value_name = "FILE")]
    validate: Option<PathBuf>,
    /// Reuse the checkpoints found in DIR (written by --save: mlp.safetensors, cnn.safetensors,
    /// mlp-narrow.safetensors, gpt.safetensors) instead of training those models.
    #[arg(long, value_name = "DIR")]
    load: Option<PathBuf>,
    /// Write the trained models' checkpoints to DIR.
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
    /// The variant the others are compared with.
    #[arg(long, default_value = "mlp")]
    baseline: String,
    /// Most timed runs per latency measurement (a time budget may stop earlier).
    #[arg(long)]
    runs: Option<usize>,
    /// Skip the generation track.
    #[arg(long)]
    no_generation: bool,
}

/// The variants of the vision track, in table order (checked against what [`VARIANTS`] builds, so
/// `--baseline` can be checked before any training).
const VARIANT_NAMES: [&str; 12] = [
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
    "student-int8",
];

/// Every flag checked before any work: in range, used by this run, and the folders to read or
/// write usable. A flag this run would ignore is refused by name.
fn check_args(args: &Args) -> BoxResult<()> {
    let c = &args.common;
    let generated = matches!(c.dataset.as_deref(), None | Some("shapes"));
    let mut unused = Vec::new();
    if generated {
        // The generated task needs no files.
        unused.push(Flag::DataDir);
    }
    if args.no_generation {
        // --steps trains the generation track's GPT only.
        unused.push(Flag::Steps);
    }
    c.validate("mlperf-2018", &unused).map_err(|e| {
        if e.0.contains("does not use --data-dir") {
            format!("{e}: the default dataset (shapes) is generated; --data-dir is read with --dataset tinydigits or mnist")
        } else if e.0.contains("does not use --steps") {
            format!("{e}: --steps trains the generation track's GPT, which --no-generation skips")
        } else {
            e.0
        }
    })?;
    if let Some(runs) = args.runs {
        at_least("--runs", runs, 3)?;
    }
    if !VARIANT_NAMES.contains(&args.baseline.as_str()) {
        return Err(format!(
            "--baseline {}: no such variant (choose one of {VARIANT_NAMES:?})",
            args.baseline
        )
        .into());
    }
    if let Some(dir) = &args.load {
        if !dir.is_dir() {
            return Err(format!(
                "--load {}: no such directory (it holds the checkpoints written by --save)",
                dir.display()
            )
            .into());
        }
    }
    if let Some(dir) = &args.save {
        if dir.exists() && !dir.is_dir() {
            return Err(format!(
                "--save {}: exists and is not a directory (--save names a folder for the checkpoints)",
                dir.display()
            )
            .into());
        }
        if dir.is_dir() {
            check_writable("--save", &dir.join("mlp.safetensors"))?;
        } else if let Some(ancestor) = dir.ancestors().skip(1).find(|a| a.exists()) {
            if !ancestor.is_dir() {
                return Err(format!(
                    "--save {}: {} is not a directory",
                    dir.display(),
                    ancestor.display()
                )
                .into());
            }
        }
    }
    Ok(())
}

fn load_data(args: &Args) -> BoxResult<ImageData> {
    let c = &args.common;
    match c.dataset.as_deref() {
        // The generated task is fixed (independent of --seed) so every run measures the same data.
        None | Some("shapes") => {
            let (train, test) = if c.quick { (2000, 500) } else { (10_000, 2000) };
            Ok(shapes_task(train, test, 2018)?)
        }
        Some(name @ ("tinydigits" | "mnist")) => {
            load_images(Some(name), c.data_dir.as_deref(), c.quick)
        }
        Some(other) => Err(format!(
            "unknown dataset '{other}': choose shapes (generated, the default), tinydigits or mnist"
        )
        .into()),
    }
}

/// The frontiers in the terminal (and as SVG with `--plot`).
fn show_frontiers(models: &[ModelMetrics], plot: Option<&Path>) -> BoxResult<()> {
    let marks = frontiers(models);
    let panel = |cost: &dyn Fn(&ModelMetrics) -> f64, on: &dyn Fn(usize) -> bool, x_label: &str| {
        ScatterPanel {
            x_label: x_label.to_string(),
            y_label: "accuracy (%)".into(),
            points: models
                .iter()
                .enumerate()
                .map(|(i, m)| ScatterPoint {
                    label: m.name.clone(),
                    x: cost(m),
                    y: 100.0 * m.accuracy,
                    highlighted: on(i),
                })
                .collect(),
        }
    };
    let panels = [
        panel(
            &|m| 1e3 * m.latency_b1_ms.mean,
            &|i| marks[i].latency,
            "batch-1 latency (us)",
        ),
        panel(
            &|m| m.size_bytes as f64 / 1e3,
            &|i| marks[i].size,
            "checkpoint size (KB)",
        ),
    ];
    for p in &panels {
        let split = |front: bool| -> Vec<(f64, f64)> {
            p.points
                .iter()
                .filter(|q| q.highlighted == front)
                .map(|q| (q.x, q.y))
                .collect()
        };
        let series = [
            Series::new("on the Pareto frontier", split(true)),
            Series::new("dominated", split(false)),
        ];
        println!(
            "{}",
            terminal_plot(
                &format!("accuracy (%) vs {}", p.x_label),
                &p.x_label,
                &series,
                60,
                10
            )
        );
    }
    if let Some(path) = plot {
        svg_scatter(path, "mlperf-2018: accuracy against cost", &panels)?;
        println!("plot written to {}", path.display());
    }
    Ok(())
}

fn run(args: &Args) -> BoxResult<Report> {
    let start = Instant::now();
    check_args(args)?;
    args.common.init_threads()?;
    let quick = args.common.quick;
    let system = SystemInfo::collect();
    println!("system: {}", system.line());
    let data = load_data(args)?;
    println!(
        "mlperf-2018 on {}: {} training and {} held-out images of {:?}",
        data.name,
        format_count(data.train.len()),
        format_count(data.test.len()),
        data.train.image_shape()
    );
    let settings = MeasureSettings {
        warmup: 3,
        runs: args.runs.unwrap_or(if quick { 20 } else { 200 }),
        budget: Duration::from_millis(if quick { 150 } else { 1000 }),
        batch_size: 256,
    };
    let scratch = std::env::temp_dir().join(format!("mlperf-2018-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .map_err(|e| format!("{}: cannot create directory: {e}", scratch.display()))?;
    let mut workshop = Workshop::new(
        data,
        quick,
        args.common.epochs,
        args.common.seed,
        args.load.clone(),
        args.save.clone(),
    );
    let candidates = VARIANTS
        .iter()
        .map(|make| make(&mut workshop))
        .collect::<BoxResult<Vec<Candidate>>>()?;
    let built: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
    if built != VARIANT_NAMES {
        return Err(format!(
            "the variants built ({built:?}) differ from the list --baseline is checked against ({VARIANT_NAMES:?})"
        )
        .into());
    }
    workshop.print_profiles()?;
    let progress = bar(candidates.len() as u64, "measuring");
    let mut variants = Vec::with_capacity(candidates.len());
    for c in &candidates {
        progress.set_message(c.name.clone());
        variants.push(measure(c, &workshop.data().test, &settings, &scratch)?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let _ = std::fs::remove_dir_all(&scratch);

    let baseline = variants
        .iter()
        .position(|m| m.name == args.baseline)
        .ok_or_else(|| {
            let names: Vec<&str> = variants.iter().map(|m| m.name.as_str()).collect();
            format!(
                "--baseline {}: no such variant (choose one of {names:?})",
                args.baseline
            )
        })?;
    // The all-around winner is the pipeline's best model; the baseline always qualifies.
    let optimized = Event::AllAround
        .winner(&variants, &variants[baseline])
        .unwrap_or(baseline);
    let events = judge(&variants, &variants[baseline], &variants[optimized]);
    println!(
        "\nvision track on {} (held-out accuracy; latency mean ± 95% CI over up to {} runs; frontier L: accuracy vs latency, S: accuracy vs size)\n{}\n",
        workshop.data().name,
        settings.runs,
        comparison_table(&variants)
    );
    show_frontiers(&variants, args.common.plot.as_deref())?;

    let generation = if args.no_generation {
        None
    } else {
        let g = generation_track(&GenerationSettings {
            seed: args.common.seed,
            load: args.load.clone(),
            save: args.save.clone(),
            steps: args.common.steps,
            quick,
            runs: if quick { 3 } else { 10 },
        })?;
        println!(
            "generation track: {} new tokens after a {}-token prompt, {}\n  without cache {:.0} tokens/s, with KV cache {:.0} tokens/s: {:.2}x, outputs identical: {}",
            g.new_tokens,
            g.prompt_tokens,
            g.model,
            g.uncached_tokens_per_s(),
            g.cached_tokens_per_s(),
            g.speedup(),
            g.identical
        );
        if let Some((f, q)) = g.val_loss {
            println!(
                "  held-out loss fp32 {f:.4}, int8 {q:.4} ({:+.2}%)",
                100.0 * (q - f) / f
            );
        }
        for v in &g.variants {
            println!(
                "  {}: {:.0} tokens/s, {:.2}x {}{}",
                v.name,
                v.tokens_per_s(),
                v.speedup(),
                v.reference,
                match v.identical {
                    Some(true) => ", identical tokens",
                    Some(false) => ", TOKENS DIFFER",
                    None => "",
                }
            );
        }
        if !g.identical || g.variants.iter().any(|v| v.identical == Some(false)) {
            return Err(
                "the KV cache or batching changed the generated tokens (greedy decoding must match)"
                    .into(),
            );
        }
        Some(g)
    };
    let mut techniques: Vec<String> = Vec::new();
    for m in &variants {
        if !techniques.contains(&m.technique) {
            techniques.push(m.technique.clone());
        }
    }
    if let Some(g) = &generation {
        techniques.push("KV cache (generation)".into());
        techniques.extend(
            g.variants
                .iter()
                .map(|v| format!("{} (generation)", v.name)),
        );
    }
    let params = candidates[baseline].model.num_parameters();
    Ok(Report {
        milestone: "mlperf-2018".into(),
        dataset: workshop.data().name.clone(),
        seconds: start.elapsed().as_secs_f64(),
        params,
        system,
        settings: BenchmarkSettings {
            warmup: settings.warmup,
            runs: settings.runs,
            batch_size: settings.batch_size,
        },
        variants,
        baseline,
        optimized,
        techniques,
        events,
        generation,
    })
}

/// Best model against baseline, and the events.
fn summary_table(report: &Report) -> String {
    let (b, o) = (report.baseline(), report.optimized());
    let imp = report.improvements();
    let mut rows = vec![
        vec!["baseline".into(), b.name.clone()],
        vec![
            "best model (all-around)".into(),
            if report.optimized == report.baseline {
                format!(
                    "{} (no variant is as fast, as small and within a point)",
                    o.name
                )
            } else {
                format!("{} ({})", o.name, o.technique)
            },
        ],
        vec![
            "accuracy".into(),
            format!(
                "{:.2}% -> {:.2}% ({:+.2} points)",
                100.0 * b.accuracy,
                100.0 * o.accuracy,
                100.0 * imp.accuracy_delta
            ),
        ],
        vec![
            "batch-1 latency".into(),
            format!(
                "{:.4} ms -> {:.4} ms ({:.2}x)",
                b.latency_b1_ms.mean, o.latency_b1_ms.mean, imp.speedup
            ),
        ],
        vec![
            "size on disk".into(),
            format!(
                "{} B -> {} B ({:.2}x smaller)",
                format_count(b.size_bytes as usize),
                format_count(o.size_bytes as usize),
                imp.compression_ratio
            ),
        ],
    ];
    for e in &report.events {
        rows.push(vec![
            format!("event {}", e.event.name()),
            format!(
                "winner {}; best model {}",
                e.winner.as_deref().unwrap_or("none"),
                if e.best_qualifies {
                    "qualifies"
                } else {
                    "does not qualify"
                }
            ),
        ]);
    }
    if let Some(g) = &report.generation {
        rows.push(vec![
            "KV cache speedup".into(),
            format!(
                "{:.2}x ({:.0} tokens/s)",
                g.speedup(),
                g.cached_tokens_per_s()
            ),
        ]);
    }
    rows.push(vec!["time".into(), format!("{:.1} s", report.seconds)]);
    milestones::report::table(&["result", "value"], &rows)
}

fn write_json(report: &Report, path: &Path) -> BoxResult<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&report.to_json())?;
    std::fs::write(path, text + "\n")
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    // What is written must pass the checker users will run on it.
    validate_report_file(path)?;
    println!("report written to {}", path.display());
    Ok(())
}

fn main() {
    models::runtime::tune_allocator();
    let args = Args::parse();
    if let Some(path) = &args.validate {
        match validate_report_file(path) {
            Ok(()) => println!("{}: valid report", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let result =
        milestones::cli::run_with_threads(args.common.threads, || run(&args)).and_then(|report| {
            println!("{}", summary_table(&report));
            if let Some(path) = &args.common.json {
                write_json(&report, path)?;
            }
            Ok(())
        });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
