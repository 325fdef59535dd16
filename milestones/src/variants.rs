//! The vision track's variants: the baselines and every optimization of them that `mlperf-2018`
//! measures, built through a [`Workshop`] that trains (or loads) each model once, when a
//! variant first asks for it. A new optimization is one entry in [`VARIANTS`] and one function.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use models::checkpoint::{load_tensors, save_tensors};
use models::cnn::{Cnn, CnnConfig, CnnLayer};
use models::mlp::{Mlp, MlpConfig};
use models::profiler::{profile_cnn, profile_mlp, ProfileConfig};
use models::quantize::{model_bytes, save_int8, LinearLayers};
use nn::Module;
use tensor::quantize::CalibrationMethod;

use crate::benchmark::{batch_of, Candidate};
use crate::optimize::{distill, prune_and_fine_tune, shrink_and_fine_tune, DistillSettings};
use crate::report::format_count;
use crate::vision::{fit_classifier, FitSettings, ImageData};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Builds one variant to measure (training or loading what it needs through the [`Workshop`]).
pub type MakeVariant = fn(&mut Workshop) -> BoxResult<Candidate>;

/// Every variant of the vision track, in table order. A new optimization is one entry here and
/// one function that derives its model from the workshop's baselines.
pub const VARIANTS: &[MakeVariant] = &[
    mlp_baseline,
    cnn_baseline,
    mlp_narrow,
    mlp_int8,
    mlp_int8_static,
    cnn_int8,
    mlp_pruned_50,
    mlp_pruned_90,
    mlp_shrunk,
    mlp_shrunk_int8,
    student,
    student_int8,
];

fn mlp_baseline(w: &mut Workshop) -> BoxResult<Candidate> {
    let model = w.mlp("mlp", &w.mlp_hidden())?;
    Ok(Candidate::new("mlp", "baseline (fp32)", model, true))
}

fn cnn_baseline(w: &mut Workshop) -> BoxResult<Candidate> {
    let model = w.cnn()?;
    Ok(Candidate::new("cnn", "convolutions (fp32)", model, false))
}

fn mlp_narrow(w: &mut Workshop) -> BoxResult<Candidate> {
    let hidden: Vec<usize> = w.mlp_hidden().iter().map(|h| (h / 2).max(4)).collect();
    let model = w.mlp("mlp-narrow", &hidden)?;
    let technique = "2x narrower hidden layers (retrained)";
    Ok(Candidate::new("mlp-narrow", technique, model, true))
}

/// An int8 candidate: every `Linear` of `model` quantized, stored as an int8 checkpoint.
fn int8<M: LinearLayers + 'static>(name: &str, technique: &str, model: M, flat: bool) -> Candidate {
    let model = Rc::new(model);
    let saved = model.clone();
    let mut c = Candidate::new(name, technique, model.clone(), flat);
    c.weight_bytes = Some(model_bytes(model.as_ref()) as u64);
    c.save = Some(Rc::new(move |path: &Path| {
        Ok(save_int8(path, saved.as_ref(), &BTreeMap::new())?)
    }));
    c
}

fn mlp_int8(w: &mut Workshop) -> BoxResult<Candidate> {
    let model = w.trained_mlp()?.quantized()?;
    Ok(int8("mlp-int8", "int8 dynamic quantization", model, true))
}

fn mlp_int8_static(w: &mut Workshop) -> BoxResult<Candidate> {
    let mut model = w.trained_mlp()?.quantized()?;
    // The first 256 training images, in batches of 64, fix one activation scale per layer.
    let n = w.data.train.len().min(256);
    let batches = (0..n)
        .step_by(64)
        .map(|start| batch_of(&w.data.train, start, 64.min(n - start), true))
        .collect::<BoxResult<Vec<_>>>()?;
    model.calibrate_static(&batches, CalibrationMethod::Percentile(99.99))?;
    let technique = "int8, static activation scales (99.99th percentile, 256 images)";
    Ok(int8("mlp-int8-static", technique, model, true))
}

fn cnn_int8(w: &mut Workshop) -> BoxResult<Candidate> {
    w.cnn()?;
    let cnn = w.cnn.as_ref().ok_or("the CNN is trained first")?;
    let model = cnn.quantized()?;
    Ok(int8(
        "cnn-int8",
        "int8 classifier (convolutions fp32)",
        model,
        false,
    ))
}

fn pruned(w: &mut Workshop, fraction: f32) -> BoxResult<Candidate> {
    let mlp = w.trained_mlp()?;
    let settings = w.fine_tune_settings();
    let (model, zeros) = prune_and_fine_tune(&mlp, fraction, &w.data, &settings)?;
    let name = format!("mlp-pruned-{:.0}", 100.0 * fraction);
    let technique = format!(
        "{:.0}% weights pruned by magnitude (global) + {} epoch(s) masked fine-tuning",
        100.0 * zeros,
        settings.epochs
    );
    Ok(Candidate::new(&name, &technique, Rc::new(model), true))
}

fn mlp_pruned_50(w: &mut Workshop) -> BoxResult<Candidate> {
    pruned(w, 0.5)
}

fn mlp_pruned_90(w: &mut Workshop) -> BoxResult<Candidate> {
    pruned(w, 0.9)
}

fn mlp_shrunk(w: &mut Workshop) -> BoxResult<Candidate> {
    let model = w.shrunk_mlp()?;
    let technique = "half the hidden neurons removed (L2 norm) + fine-tuning";
    Ok(Candidate::new("mlp-shrunk-50", technique, model, true))
}

fn mlp_shrunk_int8(w: &mut Workshop) -> BoxResult<Candidate> {
    let model = w.shrunk_mlp()?.quantized()?;
    let technique = "structured pruning 50% + int8";
    Ok(int8("mlp-shrunk-50-int8", technique, model, true))
}

fn student(w: &mut Workshop) -> BoxResult<Candidate> {
    let model = w.student()?;
    let technique = "small MLP distilled from the CNN";
    Ok(Candidate::new("student", technique, model, true))
}

fn student_int8(w: &mut Workshop) -> BoxResult<Candidate> {
    let model = w.student()?.quantized()?;
    Ok(int8("student-int8", "distillation + int8", model, true))
}

/// The data, the flags and the trained models, each trained (or loaded) once when a variant
/// first asks for it.
pub struct Workshop {
    data: ImageData,
    quick: bool,
    epochs: Option<usize>,
    seed: u64,
    load: Option<PathBuf>,
    save: Option<PathBuf>,
    mlps: BTreeMap<String, Rc<Mlp>>,
    cnn: Option<Rc<Cnn>>,
    shrunk: Option<Rc<Mlp>>,
    student: Option<Rc<Mlp>>,
}

impl Workshop {
    /// A workshop over `data`: `epochs` overrides the per-dataset defaults, `load`/`save` name
    /// checkpoint directories (`--load DIR` / `--save DIR`).
    pub fn new(
        data: ImageData,
        quick: bool,
        epochs: Option<usize>,
        seed: u64,
        load: Option<PathBuf>,
        save: Option<PathBuf>,
    ) -> Self {
        Workshop {
            data,
            quick,
            epochs,
            seed,
            load,
            save,
            mlps: BTreeMap::new(),
            cnn: None,
            shrunk: None,
            student: None,
        }
    }

    /// The data every variant is trained and measured on.
    pub fn data(&self) -> &ImageData {
        &self.data
    }

    fn inputs(&self) -> usize {
        let [c, h, w] = self.data.train.image_shape();
        c * h * w
    }

    fn mlp_hidden(&self) -> Vec<usize> {
        match self.data.name.as_str() {
            "mnist" => vec![128, 64],
            _ => vec![64, 32],
        }
    }

    fn cnn_config(&self) -> CnnConfig {
        let shape = self.data.train.image_shape();
        let classes = self.data.train.num_classes;
        match self.data.name.as_str() {
            "mnist" => CnnConfig::lenet5_for(shape, classes),
            _ => CnnConfig {
                input_shape: shape,
                features: CnnLayer::conv_pool_blocks(&[16, 32]),
                hidden: vec![64],
                num_classes: classes,
                ..CnnConfig::tiny_digits()
            },
        }
        .seed(self.seed)
    }

    /// Epochs for the MLPs and the CNN on this dataset (`--epochs` overrides both).
    fn epochs(&self) -> (usize, usize) {
        let (mlp, cnn) = match (self.data.name.as_str(), self.quick) {
            ("mnist", false) => (5, 3),
            ("mnist", true) => (1, 1),
            ("tinydigits", false) => (30, 40),
            ("tinydigits", true) => (6, 13),
            (_, false) => (30, 12),
            (_, true) => (20, 4),
        };
        (self.epochs.unwrap_or(mlp), self.epochs.unwrap_or(cnn))
    }

    /// Load `name` into `model` from `--load DIR` when the file is there; `true` if loaded.
    fn try_load(&self, name: &str, model: &dyn Module) -> BoxResult<bool> {
        let Some(dir) = &self.load else {
            return Ok(false);
        };
        let path = dir.join(format!("{name}.safetensors"));
        if !path.exists() {
            println!("{name}: no {} to load, training it", path.display());
            return Ok(false);
        }
        let (tensors, _) = load_tensors(&path)?;
        model
            .load_state_dict(&tensors)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{name}: loaded from {}", path.display());
        Ok(true)
    }

    fn maybe_save(&self, name: &str, model: &dyn Module) -> BoxResult<()> {
        if let Some(dir) = &self.save {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("{}: cannot create directory: {e}", dir.display()))?;
            let path = dir.join(format!("{name}.safetensors"));
            save_tensors(&path, &model.state_dict(), &BTreeMap::new())?;
            println!("{name}: saved to {}", path.display());
        }
        Ok(())
    }

    fn settings(&self, epochs: usize, lr: f64, flatten: bool) -> FitSettings {
        FitSettings {
            epochs,
            batch_size: 64,
            lr,
            seed: self.seed,
            flatten,
        }
    }

    /// The MLP `name` with these hidden widths, trained or loaded once.
    fn mlp(&mut self, name: &str, hidden: &[usize]) -> BoxResult<Rc<dyn Module>> {
        if let Some(m) = self.mlps.get(name) {
            return Ok(m.clone() as Rc<dyn Module>);
        }
        let mut sizes = vec![self.inputs()];
        sizes.extend_from_slice(hidden);
        sizes.push(self.data.train.num_classes);
        let mut model = Mlp::new(MlpConfig::new(&sizes).seed(self.seed))?;
        if !self.try_load(name, &model)? {
            let epochs = self.epochs().0;
            println!(
                "{name}: MLP {sizes:?}, {} parameters, {epochs} epochs",
                format_count(model.num_parameters())
            );
            let (trained, outcome) =
                fit_classifier(model, &self.data, &self.settings(epochs, 2e-3, true))?;
            println!(
                "{name}: test accuracy after training {:.2}%",
                100.0 * outcome.test_accuracy
            );
            model = trained;
        }
        model.eval();
        self.maybe_save(name, &model)?;
        let model = Rc::new(model);
        self.mlps.insert(name.to_string(), model.clone());
        Ok(model as Rc<dyn Module>)
    }

    /// The CNN, trained or loaded once.
    fn cnn(&mut self) -> BoxResult<Rc<dyn Module>> {
        if let Some(m) = &self.cnn {
            return Ok(m.clone() as Rc<dyn Module>);
        }
        let mut model = Cnn::new(self.cnn_config())?;
        if !self.try_load("cnn", &model)? {
            let epochs = self.epochs().1;
            println!(
                "cnn: {} parameters, {epochs} epochs",
                format_count(model.num_parameters())
            );
            let (trained, outcome) =
                fit_classifier(model, &self.data, &self.settings(epochs, 3e-3, false))?;
            println!(
                "cnn: test accuracy after training {:.2}%",
                100.0 * outcome.test_accuracy
            );
            model = trained;
        }
        model.eval();
        self.maybe_save("cnn", &model)?;
        let model = Rc::new(model);
        self.cnn = Some(model.clone());
        Ok(model as Rc<dyn Module>)
    }

    /// The baseline MLP (trained or loaded once).
    fn trained_mlp(&mut self) -> BoxResult<Rc<Mlp>> {
        self.mlp("mlp", &self.mlp_hidden())?;
        Ok(self.mlps["mlp"].clone())
    }

    /// Fine-tuning after pruning: a fifth of the baseline's epochs (at least one), at the peak rate
    /// that recovered most after 90% pruning on MNIST (4e-3; 5e-4 and 2e-3 recovered less).
    fn fine_tune_settings(&self) -> FitSettings {
        let epochs = (self.epochs().0 / 5).max(1);
        self.settings(epochs, 4e-3, true)
    }

    /// The baseline MLP with half its hidden neurons removed, fine-tuned (built once).
    fn shrunk_mlp(&mut self) -> BoxResult<Rc<Mlp>> {
        if let Some(m) = &self.shrunk {
            return Ok(m.clone());
        }
        let mlp = self.trained_mlp()?;
        let settings = self.fine_tune_settings();
        let model = Rc::new(shrink_and_fine_tune(&mlp, 0.5, &self.data, &settings)?);
        self.shrunk = Some(model.clone());
        Ok(model)
    }

    /// A one-hidden-layer MLP a quarter of the baseline's first width, distilled from the CNN
    /// (built once).
    fn student(&mut self) -> BoxResult<Rc<Mlp>> {
        if let Some(m) = &self.student {
            return Ok(m.clone());
        }
        self.cnn()?;
        let teacher = self.cnn.clone().ok_or("the CNN is trained first")?;
        let sizes = [
            self.inputs(),
            self.mlp_hidden()[0] / 4,
            self.data.train.num_classes,
        ];
        let settings = self.settings(self.epochs().0, 2e-3, true);
        let kd = DistillSettings {
            temperature: 4.0,
            alpha: 0.7,
        };
        println!(
            "student: MLP {sizes:?} distilled from the CNN, {} epochs",
            settings.epochs
        );
        let model = Rc::new(distill(
            teacher.as_ref(),
            false,
            &sizes,
            &self.data,
            &settings,
            kd,
        )?);
        self.student = Some(model.clone());
        Ok(model)
    }

    /// Layer-by-layer profiles of the baselines at batch 1 (forward and backward medians).
    pub fn print_profiles(&mut self) -> BoxResult<()> {
        let config = ProfileConfig {
            warmup: 2,
            repeats: 5,
        };
        if let Some(mlp) = self.mlps.get("mlp") {
            let x = batch_of(&self.data.test, 0, 1, true)?;
            println!(
                "profile of mlp at batch 1:\n{}",
                profile_mlp(mlp, &x, &config)?.table()
            );
        }
        if let Some(cnn) = &self.cnn {
            let x = batch_of(&self.data.test, 0, 1, false)?;
            println!(
                "profile of cnn at batch 1:\n{}",
                profile_cnn(cnn, &x, &config)?.table()
            );
        }
        Ok(())
    }
}
