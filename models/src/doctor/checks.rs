//! The seven checks, each on its own: data alignment, loss attached, gradient flow,
//! parameters update, single-batch overfit, multi-batch decrease, loader integration.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write;
use std::time::Instant;

use autograd::Variable;
use data::Targets;
use optim::Optimizer;

use crate::error::Result;
use crate::trainer::{TaskBatch, TrainTask};

use super::report::{fmt_change, fmt_num, CheckResult, DoctorConfig};

/// Check 1's name.
pub const DATA_ALIGNMENT: &str = "data alignment";
/// Check 2's name.
pub const LOSS_ATTACHED: &str = "loss finite and attached";
/// Check 3's name.
pub const GRADIENT_FLOW: &str = "gradient flow";
/// Check 4's name.
pub const PARAMETERS_UPDATE: &str = "parameters update";
/// Check 5's name.
pub const SINGLE_BATCH_OVERFIT: &str = "single-batch overfit";
/// Check 6's name.
pub const MULTI_BATCH_DECREASE: &str = "multi-batch decrease";
/// Check 7's name.
pub const LOADER_INTEGRATION: &str = "loader integration";

/// The seven checks in the order the doctor runs them.
pub const CHECK_NAMES: [&str; 7] = [
    DATA_ALIGNMENT,
    LOSS_ATTACHED,
    GRADIENT_FLOW,
    PARAMETERS_UPDATE,
    SINGLE_BATCH_OVERFIT,
    MULTI_BATCH_DECREASE,
    LOADER_INTEGRATION,
];

/// Check 1: targets belong to their inputs. Language-model windows: every target is the next
/// input (`target[t] == input[t + 1]`, the last position has no next input in the window).
/// Labelled batches: one target per sample, finite inputs and values, more than one class.
pub fn check_data_alignment(batches: &[TaskBatch]) -> CheckResult {
    if batches.is_empty() {
        return CheckResult::fail(DATA_ALIGNMENT, "the data source yielded no batch".into());
    }
    let mut problems: Vec<String> = Vec::new();
    let (mut positions, mut shifted_wrong, mut unshifted) = (0usize, 0usize, 0usize);
    let mut first_wrong: Option<String> = None;
    let mut classes = BTreeSet::new();
    let (mut samples, mut has_classes, mut lm) = (0usize, false, false);
    for (bi, batch) in batches.iter().enumerate() {
        match batch {
            TaskBatch::Lm(b) => {
                lm = true;
                let (rows, t) = (b.batch_size, b.block_size);
                if b.inputs.len() != rows * t || b.targets.len() != rows * t {
                    problems.push(format!(
                        "batch {bi}: {} inputs and {} targets for windows [{rows}, {t}]",
                        b.inputs.len(),
                        b.targets.len()
                    ));
                    continue;
                }
                for r in 0..rows {
                    let (inp, tgt) = (
                        &b.inputs[r * t..(r + 1) * t],
                        &b.targets[r * t..(r + 1) * t],
                    );
                    for k in 0..t.saturating_sub(1) {
                        positions += 1;
                        if tgt[k] == inp[k] {
                            unshifted += 1;
                        }
                        if tgt[k] != inp[k + 1] {
                            shifted_wrong += 1;
                            first_wrong.get_or_insert_with(|| {
                                format!(
                                    "first at batch {bi}, row {r}, t {k}: target {} but next input {}",
                                    tgt[k],
                                    inp[k + 1]
                                )
                            });
                        }
                    }
                }
            }
            TaskBatch::Supervised(b) => {
                let n = b.inputs.shape().first().copied().unwrap_or(0);
                samples += n;
                if b.targets.len() != n || b.indices.len() != n {
                    problems.push(format!(
                        "batch {bi}: inputs {:?} but {} targets and {} indices",
                        b.inputs.shape(),
                        b.targets.len(),
                        b.indices.len()
                    ));
                }
                if !b.inputs.all_finite() {
                    problems.push(format!("batch {bi}: inputs hold NaN or Inf"));
                }
                match &b.targets {
                    Targets::Classes(c) => {
                        has_classes = true;
                        classes.extend(c.iter().copied());
                    }
                    Targets::Values(v) => {
                        if !v.all_finite() {
                            problems.push(format!("batch {bi}: targets hold NaN or Inf"));
                        }
                    }
                }
            }
        }
    }
    if shifted_wrong > 0 {
        let mut p = format!(
            "{shifted_wrong} of {positions} positions ({:.0}%) have target[t] != input[t+1] ({})",
            100.0 * shifted_wrong as f64 / positions as f64,
            first_wrong.unwrap_or_default()
        );
        if unshifted == positions {
            p.push_str("; every target equals its own input: the targets are not shifted");
        }
        problems.push(p);
    }
    if has_classes && classes.len() < 2 {
        problems.push(format!(
            "every target of {samples} samples is class {:?}: nothing to tell apart",
            classes.iter().next()
        ));
    }
    if !problems.is_empty() {
        return CheckResult::fail(DATA_ALIGNMENT, problems.join("; "));
    }
    let detail = if lm {
        format!(
            "{} batches, {positions} positions: every target is the next input",
            batches.len()
        )
    } else if has_classes {
        format!(
            "{} batches, {samples} samples: one target each, inputs finite, {} classes seen",
            batches.len(),
            classes.len()
        )
    } else {
        format!(
            "{} batches, {samples} samples: one finite target each, inputs finite",
            batches.len()
        )
    };
    CheckResult::pass(DATA_ALIGNMENT, detail)
}

/// Check 2: the loss is one finite number, requires grad and was produced by an op (has a
/// `grad_fn`): a loss rebuilt from raw values, computed under `no_grad` or from detached outputs
/// fails here.
pub fn check_loss_attached(loss: &Variable) -> CheckResult {
    if loss.numel() != 1 {
        return CheckResult::fail(
            LOSS_ATTACHED,
            format!(
                "the loss has shape {:?}; reduce it to one number (mean or sum)",
                loss.shape()
            ),
        );
    }
    let value = loss.item().unwrap_or(f32::NAN);
    if !value.is_finite() {
        return CheckResult::fail(
            LOSS_ATTACHED,
            format!("the loss is {value} on the first batch"),
        );
    }
    match (loss.requires_grad(), loss.grad_fn()) {
        (true, Some(op)) => CheckResult::pass(
            LOSS_ATTACHED,
            format!("loss {} from {op}, requires grad", fmt_num(value as f64)),
        ),
        (true, None) => CheckResult::fail(
            LOSS_ATTACHED,
            format!(
                "loss {} is a leaf (no grad_fn): it was rebuilt from a value instead of computed \
                 by graph ops",
                fmt_num(value as f64)
            ),
        ),
        (false, _) => CheckResult::fail(
            LOSS_ATTACHED,
            format!(
                "loss {} does not require grad: it was computed outside the graph (no_grad, \
                 detached outputs, or values re-wrapped as constants)",
                fmt_num(value as f64)
            ),
        ),
    }
}

/// Check 3, after `loss.backward()`: every trainable parameter holds a gradient that is finite
/// and not all zero. The failing parameters are named, each with its reason; on success the
/// detail gives the smallest and largest gradient norms.
pub fn check_gradient_flow(params: &[(String, Variable)]) -> CheckResult {
    // HINT: for each trainable parameter look at p.grad(): None (no path from the loss),
    // HINT: non-finite, or all zeros are failures; report the L2 norms of the others.
    // BEGIN SOLUTION
    let mut failing = Vec::new();
    let mut reasons = Vec::new();
    let mut norms: Vec<(f64, &str)> = Vec::new();
    let mut trainable = 0;
    for (name, p) in params {
        if !p.requires_grad() {
            continue;
        }
        trainable += 1;
        let problem = match p.grad() {
            None => Some("no gradient"),
            Some(g) => {
                let values = g.to_vec();
                if values.iter().any(|v| !v.is_finite()) {
                    Some("non-finite gradient")
                } else if values.iter().all(|&v| v == 0.0) {
                    Some("all-zero gradient")
                } else {
                    let norm = values.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
                    norms.push((norm.sqrt(), name.as_str()));
                    None
                }
            }
        };
        if let Some(why) = problem {
            failing.push(name.clone());
            reasons.push(format!("{name} ({why})"));
        }
    }
    if trainable == 0 {
        return CheckResult::fail(GRADIENT_FLOW, "the model has no trainable parameter".into());
    }
    if !failing.is_empty() {
        let mut c = CheckResult::fail(
            GRADIENT_FLOW,
            format!(
                "{} of {trainable} parameters get no usable gradient: {}; look for .detach(), \
                 values re-wrapped as constants, or layers the forward pass skips",
                failing.len(),
                reasons.join(", ")
            ),
        );
        c.failing = failing;
        return c;
    }
    let min = norms.iter().min_by(|a, b| a.0.total_cmp(&b.0));
    let max = norms.iter().max_by(|a, b| a.0.total_cmp(&b.0));
    let (min, max) = (
        min.copied().unwrap_or_default(),
        max.copied().unwrap_or_default(),
    );
    CheckResult::pass(
        GRADIENT_FLOW,
        format!(
            "all {trainable} parameters get a non-zero finite gradient; norms from {} ({}) to {} ({})",
            fmt_num(min.0),
            min.1,
            fmt_num(max.0),
            max.1
        ),
    )
    // END SOLUTION
}

/// Check 4, after `backward()`: one optimizer step changes every trainable parameter. If the
/// optimizer refuses to step (a parameter without gradient), its message is kept and the step
/// is retried skipping those parameters, so every unchanged parameter can be named.
pub fn check_parameters_update(optimizer: &mut dyn Optimizer) -> CheckResult {
    let params: Vec<(String, Variable)> = optimizer
        .named_parameters()
        .into_iter()
        .filter(|(_, p)| p.requires_grad())
        .collect();
    let before: Vec<Vec<f32>> = params.iter().map(|(_, p)| p.value().to_vec()).collect();
    let mut refused = None;
    let allow = optimizer.groups().allow_unused();
    if let Err(e) = optimizer.step() {
        refused = Some(e.to_string());
        optimizer.groups_mut().set_allow_unused(true);
        let retry = optimizer.step();
        optimizer.groups_mut().set_allow_unused(allow);
        if let Err(e) = retry {
            return CheckResult::fail(PARAMETERS_UPDATE, format!("the optimizer step failed: {e}"));
        }
    }
    let mut failing = Vec::new();
    let mut smallest: Option<(f64, &str)> = None;
    for ((name, p), old) in params.iter().zip(&before) {
        let new = p.value().to_vec();
        let (mut diff2, mut norm2) = (0.0f64, 0.0f64);
        for (a, b) in new.iter().zip(old) {
            diff2 += ((a - b) as f64).powi(2);
            norm2 += (*b as f64).powi(2);
        }
        if diff2 == 0.0 {
            failing.push(name.clone());
            continue;
        }
        let rel = diff2.sqrt() / norm2.sqrt().max(1e-12);
        if smallest.is_none_or(|(s, _)| rel < s) {
            smallest = Some((rel, name));
        }
    }
    let what = format!(
        "one {} step (lr {})",
        optimizer.name(),
        fmt_num(optimizer.lr())
    );
    if failing.is_empty() {
        let (rel, name) = smallest.unwrap_or((0.0, "-"));
        return CheckResult::pass(
            PARAMETERS_UPDATE,
            format!(
                "all {} parameters changed after {what}; smallest relative change {} ({name})",
                params.len(),
                fmt_num(rel)
            ),
        );
    }
    let mut detail = format!(
        "{} of {} parameters unchanged after {what}: {}",
        failing.len(),
        params.len(),
        failing.join(", ")
    );
    if let Some(msg) = refused {
        let _ = write!(detail, " (without help the optimizer refuses: {msg})");
    }
    let mut c = CheckResult::fail(PARAMETERS_UPDATE, detail);
    c.failing = failing;
    c
}

/// Zero the gradients, compute the loss on the task's current batch, backpropagate and step;
/// the loss before the step. A non-finite loss is returned without stepping.
pub fn train_step(task: &mut dyn TrainTask, optimizer: &mut dyn Optimizer) -> Result<f32> {
    optimizer.zero_grad();
    let loss = task.loss()?;
    let value = loss.item()?;
    if !value.is_finite() {
        return Ok(value);
    }
    loss.backward()?;
    optimizer.step()?;
    Ok(value)
}

/// Check 5: draw one batch from `task` and train on it, again and again. The loss must fall to
/// `1 - overfit_drop` of its first value (half, by default) within `overfit_steps` steps and
/// `check_seconds` seconds. A model that cannot memorise 32 samples has a bug (or an lr far
/// off), not too little data.
pub fn check_overfit_single_batch(
    task: &mut dyn TrainTask,
    optimizer: &mut dyn Optimizer,
    config: &DoctorConfig,
) -> CheckResult {
    let size = match task.next_batch() {
        Ok(n) => format!("{n} {}", task.unit()),
        Err(e) => {
            return CheckResult::fail(
                SINGLE_BATCH_OVERFIT,
                format!("drawing the batch failed: {e}"),
            )
        }
    };
    // HINT: record the first loss; step on the same batch until loss <= first * (1 - overfit_drop),
    // HINT: a non-finite loss, an error, or the step/time limit.
    // BEGIN SOLUTION
    let start = Instant::now();
    let mut first = None;
    let mut last = f32::NAN;
    for step in 0..config.overfit_steps {
        let loss = match train_step(task, optimizer) {
            Ok(loss) => loss,
            Err(e) => {
                return CheckResult::fail(SINGLE_BATCH_OVERFIT, format!("step {step} failed: {e}"))
            }
        };
        if !loss.is_finite() {
            return CheckResult::fail(
                SINGLE_BATCH_OVERFIT,
                format!("the loss became {loss} at step {step}: lower the learning rate"),
            );
        }
        let initial = *first.get_or_insert(loss);
        last = loss;
        let target = initial as f64 * (1.0 - config.overfit_drop);
        if step > 0 && loss as f64 <= target {
            return CheckResult::pass(
                SINGLE_BATCH_OVERFIT,
                format!(
                    "loss {} -> {} ({}) in {step} of at most {} steps on one batch of {size}",
                    fmt_num(initial as f64),
                    fmt_num(loss as f64),
                    fmt_change(initial, loss),
                    config.overfit_steps,
                ),
            );
        }
        if start.elapsed() > config.budget() {
            return CheckResult::fail(
                SINGLE_BATCH_OVERFIT,
                format!(
                    "stopped by the {} s limit after {} steps: loss {} -> {} ({})",
                    config.check_seconds,
                    step + 1,
                    fmt_num(initial as f64),
                    fmt_num(loss as f64),
                    fmt_change(initial, loss)
                ),
            );
        }
    }
    let initial = first.unwrap_or(f32::NAN);
    CheckResult::fail(
        SINGLE_BATCH_OVERFIT,
        format!(
            "loss {} -> {} ({}) after {} steps on one batch; needed -{:.0}%: check the lr, the \
             gradient flow and the loss",
            fmt_num(initial as f64),
            fmt_num(last as f64),
            fmt_change(initial, last),
            config.overfit_steps,
            100.0 * config.overfit_drop
        ),
    )
    // END SOLUTION
}

/// Check 6: train on successive batches of `task` (as training would, epoch after epoch) for
/// `multi_batch_steps` steps; the mean loss of the last `multi_batch_window` steps must be at
/// least `multi_batch_drop` below the mean of the first ones.
pub fn check_multi_batch_decrease(
    task: &mut dyn TrainTask,
    optimizer: &mut dyn Optimizer,
    config: &DoctorConfig,
) -> CheckResult {
    let start = Instant::now();
    let mut losses = Vec::with_capacity(config.multi_batch_steps);
    let mut stopped = false;
    for step in 0..config.multi_batch_steps {
        match task.next_batch().and_then(|_| train_step(task, optimizer)) {
            Ok(l) if l.is_finite() => losses.push(l as f64),
            Ok(l) => {
                return CheckResult::fail(
                    MULTI_BATCH_DECREASE,
                    format!("the loss became {l} at step {step}: lower the learning rate"),
                )
            }
            Err(e) => {
                return CheckResult::fail(MULTI_BATCH_DECREASE, format!("step {step} failed: {e}"))
            }
        }
        if start.elapsed() > config.budget() {
            stopped = true;
            break;
        }
    }
    let w = config.multi_batch_window.min(losses.len() / 2);
    if w == 0 {
        return CheckResult::fail(
            MULTI_BATCH_DECREASE,
            format!(
                "stopped by the {} s limit after {} steps: too few to compare",
                config.check_seconds,
                losses.len()
            ),
        );
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let head = mean(&losses[..w]);
    let tail = mean(&losses[losses.len() - w..]);
    let detail = format!(
        "mean loss of the first {w} steps {}, of the last {w} {} ({}) over {} steps on successive batches{}",
        fmt_num(head),
        fmt_num(tail),
        fmt_change(head as f32, tail as f32),
        losses.len(),
        if stopped { " (time limit)" } else { "" }
    );
    if tail < head * (1.0 - config.multi_batch_drop) {
        CheckResult::pass(MULTI_BATCH_DECREASE, detail)
    } else {
        CheckResult::fail(
            MULTI_BATCH_DECREASE,
            format!(
                "{detail}; needed -{:.0}%: check the lr and whether single-batch overfit passes",
                100.0 * config.multi_batch_drop
            ),
        )
    }
}

/// Check 7: two epochs of the loader agree on shapes (every batch but an epoch's last has the
/// first batch's size, every sample the same shape, one target per sample or token), no sample
/// repeats within an epoch, and epoch 1 is not epoch 0 again (shuffling is on).
pub fn check_loader(epoch0: &[TaskBatch], epoch1: &[TaskBatch]) -> CheckResult {
    if epoch0.is_empty() || epoch1.is_empty() {
        return CheckResult::fail(
            LOADER_INTEGRATION,
            format!(
                "epoch 0 yielded {} batches and epoch 1 {}",
                epoch0.len(),
                epoch1.len()
            ),
        );
    }
    let mut problems = Vec::new();
    let first_shape = epoch0[0].input_shape();
    let (size, sample_shape) = (first_shape[0], &first_shape[1..]);
    let mut last_size = size;
    for (e, epoch) in [epoch0, epoch1].iter().enumerate() {
        let mut seen = HashSet::new();
        for (bi, b) in epoch.iter().enumerate() {
            let shape = b.input_shape();
            let is_last = bi + 1 == epoch.len();
            if &shape[1..] != sample_shape {
                problems.push(format!(
                    "epoch {e} batch {bi}: inputs {shape:?}, but the first batch's are {first_shape:?}"
                ));
            } else if shape[0] > size || (shape[0] < size && !is_last) {
                problems.push(format!(
                    "epoch {e} batch {bi}: {} samples where batches hold {size} (only an epoch's last batch may be shorter)",
                    shape[0]
                ));
            }
            if is_last {
                last_size = shape[0];
            }
            let expected = match b {
                TaskBatch::Supervised(_) => shape[0],
                TaskBatch::Lm(l) => l.batch_size * l.block_size,
            };
            if b.targets_len() != expected {
                problems.push(format!(
                    "epoch {e} batch {bi}: {} targets for inputs {shape:?} (expected {expected})",
                    b.targets_len()
                ));
            }
            if let TaskBatch::Supervised(s) = b {
                for &i in &s.indices {
                    if !seen.insert(i) {
                        problems.push(format!(
                            "epoch {e} batch {bi}: sample {i} was already seen this epoch"
                        ));
                        break;
                    }
                }
            }
        }
    }
    let same =
        epoch0.len() == epoch1.len() && epoch0.iter().zip(epoch1).all(|(a, b)| a.same_samples(b));
    if same {
        problems.push(
            "epoch 1 repeats epoch 0 batch for batch: shuffling is off (or its seed ignores the epoch)"
                .into(),
        );
    }
    if !problems.is_empty() {
        return CheckResult::fail(LOADER_INTEGRATION, problems.join("; "));
    }
    let order = match (&epoch0[0], &epoch1[0]) {
        (TaskBatch::Supervised(a), TaskBatch::Supervised(b)) => {
            let first: HashSet<usize> = a.indices.iter().copied().collect();
            let shared = b.indices.iter().filter(|i| first.contains(i)).count();
            format!(
                "epoch orders differ (first batches share {shared} of {} samples)",
                a.indices.len()
            )
        }
        _ => "epochs draw different batches".to_string(),
    };
    let tail = if last_size != size {
        format!(", last batch {last_size}")
    } else {
        String::new()
    };
    CheckResult::pass(
        LOADER_INTEGRATION,
        format!(
            "{} + {} batches of inputs {first_shape:?}{tail}, targets match; {order}",
            epoch0.len(),
            epoch1.len()
        ),
    )
}
