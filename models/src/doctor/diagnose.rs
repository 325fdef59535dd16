//! [`diagnose`]: run the seven checks and the LR range test, each on a fresh model.

use std::time::Instant;

use autograd::Variable;
use optim::Optimizer;

use crate::error::Result;

use super::*;

/// Run the seven checks and the LR range test.
///
/// `build` makes a fresh model (with its loss) each time a check needs one: checks 2-4 share
/// one copy, checks 5 and 6 and the LR range test each get their own. `optimizer` builds the
/// optimizer (with the learning rate to diagnose) from the parameters; the doctor lets it skip
/// parameters without a gradient, so one broken layer shows in checks 3 and 4 rather than
/// stopping every training check. Only a bad `config` is an error: a failing model, loss or
/// data source is a failed check with the error in its detail.
pub fn diagnose<S, B, O>(
    build: B,
    optimizer: O,
    data: &dyn DoctorData,
    config: &DoctorConfig,
) -> Result<DoctorReport>
where
    S: DoctorSubject,
    B: Fn() -> Result<S>,
    O: Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>>,
{
    config.validate()?;
    let start = Instant::now();
    let mut checks = Vec::with_capacity(CHECK_NAMES.len());

    let epoch0 = data.epoch(0, config.max_batches);
    let epoch1 = data.epoch(1, config.max_batches);
    checks.push(match &epoch0 {
        Ok(batches) => check_data_alignment(batches),
        Err(e) => CheckResult::fail(DATA_ALIGNMENT, format!("the data source failed: {e}")),
    });
    let batches: Vec<DoctorBatch> = epoch0.as_ref().map(|b| b.clone()).unwrap_or_default();
    let mut training_batches = batches.clone();
    if let Ok(more) = &epoch1 {
        training_batches.extend(more.iter().cloned());
    }

    let mut lr_range = None;
    match batches.first() {
        None => {
            for name in &CHECK_NAMES[1..6] {
                checks.push(CheckResult::fail(
                    name,
                    "skipped: the data source yielded no batch".into(),
                ));
            }
        }
        Some(first) => {
            // 2-4: one fresh copy, one batch, one step.
            match fresh(&build, &optimizer, false) {
                Ok((mut subject, mut opt)) => {
                    checks.extend(first_step_checks(&mut subject, opt.as_mut(), first));
                }
                Err(e) => {
                    for name in &CHECK_NAMES[1..4] {
                        checks.push(CheckResult::fail(name, e.clone()));
                    }
                }
            }
            // 5: a fresh copy memorises one batch.
            checks.push(match fresh(&build, &optimizer, true) {
                Ok((mut subject, mut opt)) => {
                    check_overfit_single_batch(&mut subject, opt.as_mut(), first, config)
                }
                Err(e) => CheckResult::fail(SINGLE_BATCH_OVERFIT, e),
            });
            // 6: a fresh copy learns from many batches.
            checks.push(match fresh(&build, &optimizer, true) {
                Ok((mut subject, mut opt)) => check_multi_batch_decrease(
                    &mut subject,
                    opt.as_mut(),
                    &training_batches,
                    config,
                ),
                Err(e) => CheckResult::fail(MULTI_BATCH_DECREASE, e),
            });
            if let Some(lr_config) = &config.lr_range {
                if let Ok((mut subject, mut opt)) = fresh(&build, &optimizer, true) {
                    lr_range = lr_range_test(
                        &mut subject,
                        opt.as_mut(),
                        &training_batches,
                        lr_config,
                        config.budget(),
                    )
                    .ok();
                }
            }
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

/// A fresh model and its optimizer, or why not. With `allow_unused` the optimizer skips
/// parameters without a gradient (the training checks: a broken layer is checks 3 and 4's news).
pub(super) fn fresh<S, B, O>(
    build: &B,
    optimizer: &O,
    allow_unused: bool,
) -> std::result::Result<(S, Box<dyn Optimizer>), String>
where
    S: DoctorSubject,
    B: Fn() -> Result<S>,
    O: Fn(Vec<(String, Variable)>) -> optim::Result<Box<dyn Optimizer>>,
{
    let subject = build().map_err(|e| format!("building the model failed: {e}"))?;
    let mut opt = optimizer(subject.named_parameters())
        .map_err(|e| format!("building the optimizer failed: {e}"))?;
    if allow_unused {
        opt.groups_mut().set_allow_unused(true);
    }
    Ok((subject, opt))
}

/// Checks 2, 3 and 4 on one batch: the loss, its gradients, one optimizer step.
fn first_step_checks(
    subject: &mut dyn DoctorSubject,
    optimizer: &mut dyn Optimizer,
    batch: &DoctorBatch,
) -> Vec<CheckResult> {
    let params = subject.named_parameters();
    optimizer.zero_grad();
    let loss = match subject.loss(batch) {
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
