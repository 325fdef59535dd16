//! Classifiers under the doctor: healthy MLP and CNN pass; a detached layer, a detached loss,
//! a loader that never shuffles and a far too small learning rate each fail the right checks;
//! the LR range test; a bad configuration.

use data::DataLoader;
use models::doctor::{
    diagnose, lr_range_test, DoctorConfig, LrRangeConfig, DATA_ALIGNMENT, GRADIENT_FLOW,
    LOADER_INTEGRATION, LOSS_ATTACHED, PARAMETERS_UPDATE,
};
use models::trainer::{Classification, TrainTask};
use nn::linear::Linear;
use tensor::TensorRng;

use crate::fixtures::{
    adam, assert_all_pass, bars, blob_loader, blobs, cnn, failed_names, mlp, sgd, DetachedMlp,
    DetachedOutput,
};

/// A healthy 2-layer MLP on separable blobs, as a `Classification` task, passes all seven checks quickly.
#[test]
fn healthy_mlp_passes_every_check() {
    let report = diagnose(
        || Ok(Classification::new(mlp(5), blob_loader(true))),
        sgd(0.05),
        &DoctorConfig::default(),
    )
    .unwrap();
    println!("{}", report.table());
    assert_all_pass(&report);
    let table = report.table();
    assert!(table.contains("PASS") && !table.contains("FAIL"), "{table}");
    assert!(table.contains("7/7 checks passed"), "{table}");
    assert!(
        report.seconds < 30.0,
        "the doctor took {} s",
        report.seconds
    );
}

/// A healthy small CNN on bar images passes all seven checks.
#[test]
fn healthy_cnn_passes_every_check() {
    let loader = DataLoader::new(bars(64, 4), 16).unwrap().shuffle(2);
    let report = diagnose(
        || Ok(Classification::new(cnn(6), loader.clone())),
        adam(1e-2),
        &DoctorConfig::default(),
    )
    .unwrap();
    println!("{}", report.table());
    assert_all_pass(&report);
}

/// A detached first layer fails gradient flow and parameter update, naming exactly that layer's parameters.
#[test]
fn detached_layer_fails_gradient_flow_naming_the_first_layer() {
    let build = || {
        let mut rng = TensorRng::new(5);
        let model = DetachedMlp {
            fc1: Linear::new(2, 16, true, &mut rng),
            fc2: Linear::new(16, 3, true, &mut rng),
        };
        Ok(Classification::new(model, blob_loader(true)))
    };
    let report = diagnose(build, sgd(0.05), &DoctorConfig::default()).unwrap();
    println!("{}", report.table());
    assert!(!report.all_passed());
    let flow = report.check(GRADIENT_FLOW).unwrap();
    assert!(!flow.passed);
    assert_eq!(
        flow.failing,
        vec!["fc1.weight", "fc1.bias"],
        "{}",
        flow.detail
    );
    assert!(flow.detail.contains("2 of 4 parameters"), "{}", flow.detail);
    assert!(
        flow.detail.contains("fc1.weight (no gradient)"),
        "{}",
        flow.detail
    );
    let update = report.check(PARAMETERS_UPDATE).unwrap();
    assert!(!update.passed);
    assert_eq!(
        update.failing,
        vec!["fc1.weight", "fc1.bias"],
        "{}",
        update.detail
    );
    // The optimizer's own refusal is quoted.
    assert!(
        update.detail.contains("the optimizer refuses"),
        "{}",
        update.detail
    );
    // The data and the loss are fine.
    assert!(report.check(DATA_ALIGNMENT).unwrap().passed);
    assert!(report.check(LOSS_ATTACHED).unwrap().passed);
    assert!(report.check(LOADER_INTEGRATION).unwrap().passed);
    assert_eq!(
        failed_names(&report)[..2],
        [GRADIENT_FLOW, PARAMETERS_UPDATE]
    );
}

/// A loss computed from detached outputs fails the loss, gradient, update and training checks.
#[test]
fn detached_loss_fails_the_loss_and_gradient_checks() {
    let report = diagnose(
        || {
            Ok(Classification::new(
                DetachedOutput(mlp(5)),
                blob_loader(true),
            ))
        },
        sgd(0.05),
        &DoctorConfig {
            lr_range: None,
            multi_batch_steps: 20,
            multi_batch_window: 5,
            overfit_steps: 10,
            ..Default::default()
        },
    )
    .unwrap();
    println!("{}", report.table());
    let loss = report.check(LOSS_ATTACHED).unwrap();
    assert!(
        !loss.passed && loss.detail.contains("does not require grad"),
        "{}",
        loss.detail
    );
    let flow = report.check(GRADIENT_FLOW).unwrap();
    assert_eq!(
        flow.failing,
        vec!["0.weight", "0.bias", "2.weight", "2.bias"]
    );
    // Nothing trains: the overfit and multi-batch checks fail too.
    assert_eq!(
        failed_names(&report),
        vec![
            LOSS_ATTACHED,
            GRADIENT_FLOW,
            PARAMETERS_UPDATE,
            "single-batch overfit",
            "multi-batch decrease"
        ]
    );
}

/// A loader that never shuffles fails loader integration, and only that check.
#[test]
fn loader_without_shuffle_fails_loader_integration() {
    let report = diagnose(
        || Ok(Classification::new(mlp(5), blob_loader(false))),
        sgd(0.05),
        &DoctorConfig {
            lr_range: None,
            ..Default::default()
        },
    )
    .unwrap();
    let check = report.check(LOADER_INTEGRATION).unwrap();
    assert!(!check.passed);
    assert!(
        check.detail.contains("shuffling is off"),
        "{}",
        check.detail
    );
    assert_eq!(failed_names(&report), vec![LOADER_INTEGRATION]);
}

/// A learning rate of 1e-7 fails the single-batch overfit and multi-batch checks, and only those.
#[test]
fn a_far_too_small_learning_rate_fails_the_training_checks() {
    let report = diagnose(
        || Ok(Classification::new(mlp(5), blob_loader(true))),
        sgd(1e-7),
        &DoctorConfig {
            lr_range: None,
            ..Default::default()
        },
    )
    .unwrap();
    println!("{}", report.table());
    assert_eq!(
        failed_names(&report),
        vec!["single-batch overfit", "multi-batch decrease"],
        "{}",
        report.table()
    );
    assert!(report
        .check("single-batch overfit")
        .unwrap()
        .detail
        .contains("after 100 steps"));
}

/// The LR range test grows the rate geometrically, stops on divergence and suggests a rate a tenth of the minimum's.
#[test]
fn lr_range_test_suggests_a_sane_rate_for_the_blobs_mlp() {
    // Overlapping blobs: the loss cannot reach 0, so a too large lr shows as divergence.
    let loader = DataLoader::new(blobs(256, 3, 1.2), 16).unwrap().shuffle(5);
    let mut task = Classification::new(mlp(5), loader.clone());
    let mut opt = sgd(0.0)(task.named_parameters()).unwrap();
    let config = LrRangeConfig {
        start_lr: 1e-5,
        end_lr: 10.0,
        steps: 100,
        ..Default::default()
    };
    let result = lr_range_test(
        &mut task,
        opt.as_mut(),
        &config,
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    println!("{}", result.summary());
    let lr = result
        .suggested_lr
        .expect("the loss falls during the sweep");
    assert!((1e-4..=1.0).contains(&lr), "suggested lr {lr}");
    assert!((lr * 10.0 - result.min_loss_lr).abs() < 1e-12);
    // The minimum is well below the first loss (about ln 3 = 1.1).
    assert!(
        result.min_loss < 0.5 * result.smoothed[0],
        "{}",
        result.summary()
    );
    // The learning rates grow by the same factor every step.
    let ratio = (10.0f64 / 1e-5).powf(1.0 / 99.0);
    for w in result.lrs.windows(2) {
        assert!((w[1] / w[0] / ratio - 1.0).abs() < 1e-9);
    }
    // SGD with momentum at lr 10 diverges: the sweep stops early and says so.
    assert!(result.diverged_at.is_some(), "{}", result.summary());
    assert!(result.lrs.len() < 100);

    // The doctor's report carries the same kind of suggestion.
    let report = diagnose(
        || Ok(Classification::new(mlp(5), loader.clone())),
        sgd(0.05),
        &DoctorConfig::default(),
    )
    .unwrap();
    let suggested = report.suggested_lr.unwrap();
    assert!((1e-4..=1.0).contains(&suggested), "{suggested}");
    assert!(
        report.table().contains("suggested lr"),
        "{}",
        report.table()
    );
}

/// A bad doctor configuration is an error naming the field, not a failed check.
#[test]
fn bad_config_is_an_error() {
    let e = diagnose(
        || Ok(Classification::new(mlp(5), blob_loader(true))),
        sgd(0.05),
        &DoctorConfig {
            max_batches: 0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("max_batches (0)"), "{e}");
}
