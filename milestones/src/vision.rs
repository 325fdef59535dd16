//! What the image milestones (`mlp-1986`, `cnn-1998`) share: loading an image dataset by name,
//! training a classifier with the `models` trainer, and reporting accuracy and curves.

use std::path::Path;
use std::time::Instant;

use data::{DataLoader, ImageSet, Mnist, TinyDigits};
use models::trainer::{Classification, History, Trainer, TrainerConfig};
use nn::Module;
use optim::schedule::CosineAnnealing;
use optim::{Adam, AdamConfig, Optimizer};

use crate::plot::{svg_plot, terminal_plot, Series};
use crate::report::RunReport;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A train/test pair of image sets with its name.
pub struct ImageData {
    pub name: String,
    pub train: ImageSet,
    pub test: ImageSet,
}

/// Load `tinydigits` (the default), `mnist` or `cifar10` from the data directory. With `quick`,
/// MNIST and CIFAR-10 are cut to their first 10,000 training images.
pub fn load_images(
    dataset: Option<&str>,
    data_dir: Option<&Path>,
    quick: bool,
) -> BoxResult<ImageData> {
    let name = dataset.unwrap_or("tinydigits").to_string();
    let (train, test) = match name.as_str() {
        "tinydigits" => {
            let d = TinyDigits::find(data_dir)?;
            (d.train, d.test)
        }
        "mnist" => {
            let dir = data::resolve_dataset_dir(data_dir, Mnist::NAME, &Mnist::FILES)?;
            let d = Mnist::load(&dir)?;
            (d.train, d.test)
        }
        "cifar10" => (
            data::Cifar10::find(data_dir, data::Split::Train)?,
            data::Cifar10::find(data_dir, data::Split::Test)?,
        ),
        other => {
            return Err(
                format!("unknown dataset '{other}': choose tinydigits, mnist or cifar10").into(),
            )
        }
    };
    let train = if quick && train.len() > 10_000 {
        first(&train, 10_000)?
    } else {
        train
    };
    Ok(ImageData { name, train, test })
}

/// The first `n` images of a set.
fn first(set: &ImageSet, n: usize) -> BoxResult<ImageSet> {
    let images = set.images.narrow(0, 0, n)?.contiguous();
    Ok(ImageSet::new(
        images,
        set.labels[..n].to_vec(),
        set.num_classes,
    )?)
}

/// Settings of one classifier run.
pub struct FitSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    /// Flatten each image to a vector (for MLPs) instead of keeping `(C, H, W)`.
    pub flatten: bool,
}

/// What a run produced.
pub struct FitOutcome {
    pub test_accuracy: f64,
    pub test_loss: f64,
    pub seconds_per_epoch: f64,
    pub samples_per_second: f64,
    pub history: History,
}

/// Train `model` on `data.train` with Adam and the trainer (progress bar, evaluation on the test
/// set after every epoch), and return the final test accuracy.
pub fn fit_classifier<M: Module>(
    model: M,
    data: &ImageData,
    s: &FitSettings,
) -> BoxResult<(M, FitOutcome)> {
    let optimizer = adam_for(&model, s.lr)?;
    fit_classifier_with(model, data, s, optimizer)
}

/// Adam at `lr` (PyTorch's other defaults) over `model`'s parameters.
pub fn adam_for(model: &dyn Module, lr: f64) -> BoxResult<Adam> {
    Ok(Adam::new(
        model.named_parameters(),
        AdamConfig {
            lr,
            ..AdamConfig::default()
        },
    )?)
}

/// [`fit_classifier`] with a given optimizer over the model's parameters (e.g. one wrapped in
/// `optim::Masked` so pruned weights stay zero while fine-tuning).
pub fn fit_classifier_with<M: Module, O: Optimizer + 'static>(
    model: M,
    data: &ImageData,
    s: &FitSettings,
    optimizer: O,
) -> BoxResult<(M, FitOutcome)> {
    if data.train.is_empty() || data.test.is_empty() {
        return Err(format!(
            "{}: the training set has {} images and the test set {}: both need at least one",
            data.name,
            data.train.len(),
            data.test.len()
        )
        .into());
    }
    let train = data
        .loader(&data.train, s.batch_size, s.flatten)?
        .shuffle(s.seed);
    let test = data.loader(&data.test, 500, s.flatten)?;
    let mut task = Classification::new(model, train).with_val(test);
    // Cosine annealing to zero over the whole run: large steps early, fine ones at the end.
    let steps = s.epochs * data.train.len().div_ceil(s.batch_size);
    let schedule = CosineAnnealing::new(s.lr, steps as u64, 0.0)?;
    let mut trainer =
        Trainer::new(TrainerConfig::epochs(s.epochs), optimizer).with_schedule(schedule);
    let report = trainer.fit(&mut task)?;
    let eval = report.eval.ok_or("the trainer ran no evaluation")?;
    let outcome = FitOutcome {
        test_accuracy: eval.metric.unwrap_or(f64::NAN),
        test_loss: eval.loss,
        seconds_per_epoch: report.seconds / s.epochs.max(1) as f64,
        samples_per_second: report.throughput,
        history: trainer.history().clone(),
    };
    Ok((task.into_model(), outcome))
}

impl ImageData {
    /// A loader over `set` whose samples are flat vectors (`flatten`) or `(C, H, W)` images.
    pub fn loader(
        &self,
        set: &ImageSet,
        batch_size: usize,
        flatten: bool,
    ) -> BoxResult<DataLoader> {
        let [c, h, w] = set.image_shape();
        let shape: Vec<usize> = if flatten {
            vec![c * h * w]
        } else {
            vec![c, h, w]
        };
        Ok(DataLoader::new(
            set.to_dataset()?.with_sample_shape(&shape)?,
            batch_size,
        )?)
    }
}

/// Train `model` with [`fit_classifier`], show its curves and results with [`show_results`], and
/// return the milestone's report (parameters and seconds since `start` filled in).
pub fn train_and_report<M: Module>(
    milestone: &str,
    model: M,
    data: &ImageData,
    settings: &FitSettings,
    plot: Option<&Path>,
    start: Instant,
) -> BoxResult<RunReport> {
    let (model, outcome) = fit_classifier(model, data, settings)?;
    let losses: Vec<f64> = outcome
        .history
        .records
        .iter()
        .map(|r| r.train_loss)
        .collect();
    crate::guard::check_trend(milestone, &losses)?;
    crate::guard::check_weights(milestone, &model)?;
    let mut report = RunReport::new(milestone, &data.name);
    show_results(
        &format!("{milestone} on {}", data.name),
        &outcome,
        plot,
        &mut report,
    )?;
    report.params = model.num_parameters();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Print the loss and accuracy curves (and write the SVG with `--plot`), and fill the report.
pub fn show_results(
    title: &str,
    outcome: &FitOutcome,
    plot: Option<&Path>,
    report: &mut RunReport,
) -> BoxResult<()> {
    let h = &outcome.history;
    let x = |r: &models::trainer::Record| r.epoch.unwrap_or(r.step as f64);
    let train: Vec<(f64, f64)> = h.records.iter().map(|r| (x(r), r.train_loss)).collect();
    let val: Vec<(f64, f64)> = h
        .evaluations()
        .filter_map(|r| r.val_loss.map(|v| (x(r), v)))
        .collect();
    let acc: Vec<(f64, f64)> = h
        .evaluations()
        .filter_map(|r| r.val_metric.map(|v| (x(r), v)))
        .collect();
    let losses = vec![
        Series::new("train loss", train),
        Series::new("test loss", val),
    ];
    println!(
        "{}",
        terminal_plot(&format!("{title}: loss"), "epoch", &losses, 60, 12)
    );
    let accuracy = vec![Series::new("test accuracy", acc)];
    println!(
        "{}",
        terminal_plot(
            &format!("{title}: test accuracy"),
            "epoch",
            &accuracy,
            60,
            8
        )
    );
    if let Some(path) = plot {
        let mut all = losses;
        all.extend(accuracy);
        svg_plot(path, title, "epoch", &all)?;
        println!("plot written to {}", path.display());
    }
    report
        .metric("test_accuracy", outcome.test_accuracy)
        .metric("test_loss", outcome.test_loss)
        .metric("seconds_per_epoch", outcome.seconds_per_epoch)
        .metric("samples_per_second", outcome.samples_per_second);
    Ok(())
}
