//! [`diagnose`]: run the seven checks and the LR range test, each on a fresh copy of a task.

use std::time::Instant;

use autograd::Variable;
use optim::Optimizer;

use crate::error::{ModelError, Result};
use crate::trainer::TrainTask;

use super::batches::epoch_batches;
use super::checks::{
    check_data_alignment, check_gradient_flow, check_loader, check_loss_attached,
    check_multi_batch_decrease, check_overfit_single_batch, check_parameters_update, CHECK_NAMES,
    DATA_ALIGNMENT, GRADIENT_FLOW, LOADER_INTEGRATION, LOSS_ATTACHED, MULTI_BATCH_DECREASE,
    PARAMETERS_UPDATE, SINGLE_BATCH_OVERFIT,
};
use super::lr_range::lr_range_test;
use super::report::{CheckResult, DoctorConfig, DoctorReport};

/// Builds an optimizer over named parameters (how `optim`'s constructors take them).
pub type OptimizerFactory<'a> =
    dyn Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>> + 'a;

/// Run the seven checks and the LR range test on a [`TrainTask`].
///
/// `build` makes a fresh task (model, data and loss, as the trainer would get it) each time a
/// check needs one: the data checks draw two epochs from one copy, checks 2-4 share one copy,
/// checks 5 and 6 and the LR range test each get their own. `optimizer` builds the optimizer
/// (with the learning rate to diagnose) from the parameters; the doctor lets it skip parameters
/// without a gradient, so one broken layer shows in checks 3 and 4 rather than stopping every
/// training check. Only a bad `config` is an error: a failing model, loss or data source is a
/// failed check with the error in its detail.
pub fn diagnose<T, B, O>(build: B, optimizer: O, config: &DoctorConfig) -> Result<DoctorReport>
where
    T: TrainTask,
    B: Fn() -> Result<T>,
    O: Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>>,
{
    config.validate()?;
    let start = Instant::now();
    let mut checks = Vec::with_capacity(CHECK_NAMES.len());

    let (epoch0, epoch1) = match build() {
        Ok(mut task) => epoch_batches(&mut task, config.max_batches),
        Err(e) => {
            let failed = || {
                Err(ModelError::Invalid {
                    op: "doctor",
                    reason: format!("building the task failed: {e}"),
                })
            };
            (failed(), failed())
        }
    };
    checks.push(match &epoch0 {
        Ok(batches) => check_data_alignment(batches),
        Err(e) => CheckResult::fail(DATA_ALIGNMENT, format!("the data source failed: {e}")),
    });

    let mut lr_range = None;
    if epoch0.as_ref().is_ok_and(|b| !b.is_empty()) {
        // 2-4: one fresh copy, one batch, one step.
        match fresh(&build, &optimizer, false) {
            Ok((mut task, mut opt)) => {
                checks.extend(first_step_checks(&mut task, opt.as_mut()));
            }
            Err(e) => {
                for name in &CHECK_NAMES[1..4] {
                    checks.push(CheckResult::fail(name, e.clone()));
                }
            }
        }
        // 5: a fresh copy memorises one batch.
        checks.push(match fresh(&build, &optimizer, true) {
            Ok((mut task, mut opt)) => check_overfit_single_batch(&mut task, opt.as_mut(), config),
            Err(e) => CheckResult::fail(SINGLE_BATCH_OVERFIT, e),
        });
        // 6: a fresh copy learns from many batches.
        checks.push(match fresh(&build, &optimizer, true) {
            Ok((mut task, mut opt)) => check_multi_batch_decrease(&mut task, opt.as_mut(), config),
            Err(e) => CheckResult::fail(MULTI_BATCH_DECREASE, e),
        });
        if let Some(lr_config) = &config.lr_range {
            if let Ok((mut task, mut opt)) = fresh(&build, &optimizer, true) {
                lr_range = lr_range_test(&mut task, opt.as_mut(), lr_config, config.budget()).ok();
            }
        }
    } else {
        for name in &CHECK_NAMES[1..6] {
            checks.push(CheckResult::fail(
                name,
                "skipped: the data source yielded no batch".into(),
            ));
        }
    }

    // 7: the loader across two epochs.
    checks.push(match (&epoch0, &epoch1) {
        (Ok(a), Ok(b)) => check_loader(a, b),
        (Err(e), _) | (_, Err(e)) => {
            CheckResult::fail(LOADER_INTEGRATION, format!("the data source failed: {e}"))
        }
    });

    Ok(DoctorReport {
        checks,
        suggested_lr: lr_range.as_ref().and_then(|r| r.suggested_lr),
        lr_range,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A fresh task and its optimizer, or why not. With `allow_unused` the optimizer skips
/// parameters without a gradient (the training checks: a broken layer is checks 3 and 4's news).
fn fresh<T, B, O>(
    build: &B,
    optimizer: &O,
    allow_unused: bool,
) -> std::result::Result<(T, Box<dyn Optimizer>), String>
where
    T: TrainTask,
    B: Fn() -> Result<T>,
    O: Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>>,
{
    let task = build().map_err(|e| format!("building the task failed: {e}"))?;
    let mut opt = optimizer(task.named_parameters())
        .map_err(|e| format!("building the optimizer failed: {e}"))?;
    if allow_unused {
        opt.groups_mut().set_allow_unused(true);
    }
    Ok((task, opt))
}

/// Checks 2, 3 and 4 on the first batch: the loss, its gradients, one optimizer step.
fn first_step_checks(task: &mut dyn TrainTask, optimizer: &mut dyn Optimizer) -> Vec<CheckResult> {
    let params = task.named_parameters();
    optimizer.zero_grad();
    let loss = match task.next_batch().and_then(|_| task.loss()) {
        Ok(loss) => loss,
        Err(e) => {
            let why = format!("computing the loss failed: {e}");
            return vec![
                CheckResult::fail(LOSS_ATTACHED, why.clone()),
                CheckResult::fail(GRADIENT_FLOW, format!("skipped: {why}")),
                CheckResult::fail(PARAMETERS_UPDATE, format!("skipped: {why}")),
            ];
        }
    };
    let attached = check_loss_attached(&loss);
    let flow = if !loss.requires_grad() {
        let mut c = CheckResult::fail(
            GRADIENT_FLOW,
            format!(
                "no gradient can reach the {} parameters: the loss is not in the graph",
                params.len()
            ),
        );
        c.failing = params.iter().map(|(n, _)| n.clone()).collect();
        c
    } else if let Err(e) = loss.backward() {
        CheckResult::fail(GRADIENT_FLOW, format!("backward failed: {e}"))
    } else {
        check_gradient_flow(&params)
    };
    let update = check_parameters_update(optimizer);
    vec![attached, flow, update]
}
