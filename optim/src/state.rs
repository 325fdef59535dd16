//! `OptimizerState`: everything an optimizer needs to resume a run bit-identically.
//!
//! A state holds the optimizer's name, the number of steps taken, the optimizer-wide
//! hyper-parameters (`beta1`, `momentum`, ...), each group's `lr`, `base_lr`, `weight_decay` and
//! parameter names, each parameter's own step count, and every buffer as a tensor named
//! `"<param name>.<buffer>"` (`"blocks.0.attn.qkv.weight.exp_avg"`).
//!
//! It is exported as named tensors plus one JSON string, the shape every checkpoint format
//! takes: [`OptimizerState::buffers`] are the tensors and [`OptimizerState::metadata_json`]
//! the rest; [`OptimizerState::from_metadata_json`] puts them back together. This crate writes
//! no files: `models::checkpoint` stores them in the same safetensors file as the model (one
//! checkpoint format for the whole project, readable by PyTorch).
//!
//! Every float in the JSON is written twice, `{"value": 0.9, "bits": "0x3feccccccccccccd"}`: the
//! readable value and its exact IEEE-754 bits, which are what is read back (a decimal round trip
//! is not guaranteed to be exact, and resuming must be).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use tensor::Tensor;

use crate::error::{OptimError, Result};
use crate::optimizer::ParamGroups;

const FORMAT: &str = "tinytorch-optim";
const VERSION: u64 = 1;

/// One group's hyper-parameters and the names of its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupHyper {
    /// The current learning rate.
    pub lr: f64,
    /// The configured learning rate (what `set_lr_factor` scales).
    pub base_lr: f64,
    /// The weight decay.
    pub weight_decay: f64,
    /// The parameters' dotted names, in order.
    pub params: Vec<String>,
}

/// A saved optimizer: see the module documentation for the layout.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    /// The optimizer that saved it (`"Sgd"`, `"Adam"`, `"AdamW"`, `"RmsProp"`).
    pub optimizer: String,
    /// Successful `step()` calls so far (what a schedule should be asked about on resume).
    pub steps: u64,
    /// Optimizer-wide hyper-parameters (`beta1`, `eps`, `momentum`, flags as 0/1, ...).
    pub hyper: BTreeMap<String, f64>,
    /// Per-group hyper-parameters, in group order.
    pub groups: Vec<GroupHyper>,
    /// Each parameter's own step count (a parameter skipped as unused does not advance).
    pub param_steps: BTreeMap<String, u64>,
    /// Every buffer, named `"<param name>.<buffer>"`, with the parameter's shape.
    pub buffers: BTreeMap<String, Tensor>,
}

impl OptimizerState {
    /// How many `f32` the buffers hold.
    pub fn numel(&self) -> usize {
        self.buffers.values().map(Tensor::numel).sum()
    }

    /// The JSON header: everything but the buffers' data (their names and shapes are listed).
    pub fn metadata_json(&self) -> String {
        self.header().to_string()
    }

    /// Rebuild a state from [`OptimizerState::metadata_json`] and the buffers stored elsewhere.
    /// The buffers must be exactly those the header lists, with the listed shapes.
    pub fn from_metadata_json(
        json: &str,
        buffers: BTreeMap<String, Tensor>,
    ) -> Result<OptimizerState> {
        let header: Value = serde_json::from_str(json)
            .map_err(|e| format_err(format!("header is not JSON: {e}")))?;
        let (mut state, listed) = parse_header(&header)?;
        let mut problems = Vec::new();
        for (name, shape) in &listed {
            match buffers.get(name) {
                None => problems.push(format!("buffer '{name}' is listed but missing")),
                Some(t) if t.shape() != shape.as_slice() => problems.push(format!(
                    "buffer '{name}' has shape {:?}, the header says {shape:?}",
                    t.shape()
                )),
                Some(_) => {}
            }
        }
        let listed_names: BTreeSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
        for name in buffers.keys() {
            if !listed_names.contains(name.as_str()) {
                problems.push(format!("buffer '{name}' is not listed in the header"));
            }
        }
        if !problems.is_empty() {
            return Err(format_err(problems.join("; ")));
        }
        state.buffers = buffers;
        Ok(state)
    }

    fn header(&self) -> Value {
        let hyper: Map<String, Value> = self
            .hyper
            .iter()
            .map(|(k, &v)| (k.clone(), exact(v)))
            .collect();
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| {
                json!({
                    "lr": exact(g.lr),
                    "base_lr": exact(g.base_lr),
                    "weight_decay": exact(g.weight_decay),
                    "params": g.params,
                })
            })
            .collect();
        let buffers: Vec<Value> = self
            .buffers
            .iter()
            .map(|(name, t)| json!({ "name": name, "shape": t.shape() }))
            .collect();
        json!({
            "format": FORMAT,
            "version": VERSION,
            "optimizer": self.optimizer,
            "steps": self.steps,
            "hyper": hyper,
            "groups": groups,
            "param_steps": self.param_steps,
            "buffers": buffers,
        })
    }
}

/// A float as its readable value and its exact bits.
fn exact(v: f64) -> Value {
    let value = if v.is_finite() { json!(v) } else { Value::Null };
    json!({ "value": value, "bits": format!("{:#018x}", v.to_bits()) })
}

fn format_err(reason: impl Into<String>) -> OptimError {
    OptimError::Format {
        reason: reason.into(),
    }
}

fn read_exact(v: &Value, what: &str) -> Result<f64> {
    let bits = v["bits"]
        .as_str()
        .and_then(|s| s.strip_prefix("0x"))
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| {
            format_err(format!(
                "{what}: expected {{\"value\", \"bits\": \"0x...\"}}, got {v}"
            ))
        })?;
    Ok(f64::from_bits(bits))
}

type Listed = Vec<(String, Vec<usize>)>;

fn parse_header(h: &Value) -> Result<(OptimizerState, Listed)> {
    if h["format"] != FORMAT {
        return Err(format_err(format!(
            "header format is {}, expected \"{FORMAT}\"",
            h["format"]
        )));
    }
    if h["version"] != VERSION {
        return Err(format_err(format!(
            "unsupported version {} (this build reads {VERSION})",
            h["version"]
        )));
    }
    let optimizer = h["optimizer"]
        .as_str()
        .ok_or_else(|| format_err("missing \"optimizer\""))?
        .to_string();
    let steps = h["steps"]
        .as_u64()
        .ok_or_else(|| format_err("missing \"steps\""))?;
    let mut hyper = BTreeMap::new();
    for (k, v) in h["hyper"]
        .as_object()
        .ok_or_else(|| format_err("missing \"hyper\""))?
    {
        hyper.insert(k.clone(), read_exact(v, &format!("hyper.{k}"))?);
    }
    let mut groups = Vec::new();
    for (i, g) in h["groups"]
        .as_array()
        .ok_or_else(|| format_err("missing \"groups\""))?
        .iter()
        .enumerate()
    {
        let params = g["params"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|n| n.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| format_err(format!("groups[{i}].params must be a list of names")))?;
        groups.push(GroupHyper {
            lr: read_exact(&g["lr"], &format!("groups[{i}].lr"))?,
            base_lr: read_exact(&g["base_lr"], &format!("groups[{i}].base_lr"))?,
            weight_decay: read_exact(&g["weight_decay"], &format!("groups[{i}].weight_decay"))?,
            params,
        });
    }
    let mut param_steps = BTreeMap::new();
    for (k, v) in h["param_steps"]
        .as_object()
        .ok_or_else(|| format_err("missing \"param_steps\""))?
    {
        let s = v
            .as_u64()
            .ok_or_else(|| format_err(format!("param_steps.{k} must be an integer")))?;
        param_steps.insert(k.clone(), s);
    }
    let mut listed = Vec::new();
    for b in h["buffers"]
        .as_array()
        .ok_or_else(|| format_err("missing \"buffers\""))?
    {
        let name = b["name"]
            .as_str()
            .ok_or_else(|| format_err(format!("buffer without a name: {b}")))?;
        let shape = b["shape"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|d| d.as_u64().map(|d| d as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| format_err(format!("buffer '{name}' has no valid shape")))?;
        listed.push((name.to_string(), shape));
    }
    let state = OptimizerState {
        optimizer,
        steps,
        hyper,
        groups,
        param_steps,
        buffers: BTreeMap::new(),
    };
    Ok((state, listed))
}

/// The per-parameter state of an optimizer, as the generic save/load code sees it.
pub(crate) trait SlotState {
    /// This parameter's step count.
    fn step(&self) -> u64;
    /// Restore the step count.
    fn set_step(&mut self, step: u64);
    /// The buffers in use, by short name (`"exp_avg"`).
    fn buffers(&self) -> Vec<(&'static str, &[f32])>;
    /// The same buffers, writable.
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [f32])>;
}

/// Build an [`OptimizerState`] from an optimizer's groups and per-parameter slots (aligned with
/// `groups.params()`).
pub(crate) fn export_state<S: SlotState>(
    optimizer: &str,
    groups: &ParamGroups,
    slots: &[S],
    hyper: BTreeMap<String, f64>,
) -> OptimizerState {
    let mut param_steps = BTreeMap::new();
    let mut buffers = BTreeMap::new();
    for ((name, var), slot) in groups.params().zip(slots) {
        param_steps.insert(name.to_string(), slot.step());
        let shape = var.shape();
        for (buf, data) in slot.buffers() {
            let t =
                Tensor::from_vec(data.to_vec(), &shape).expect("buffers have the parameter's size");
            buffers.insert(format!("{name}.{buf}"), t);
        }
    }
    OptimizerState {
        optimizer: optimizer.to_string(),
        steps: groups.steps(),
        hyper,
        groups: groups
            .groups()
            .iter()
            .map(|g| GroupHyper {
                lr: g.lr,
                base_lr: g.base_lr,
                weight_decay: g.weight_decay,
                params: g.names().to_vec(),
            })
            .collect(),
        param_steps,
        buffers,
    }
}

/// Check `state` against an optimizer and, if everything fits, restore groups, steps and
/// buffers. `flags` are hyper-parameters that must match (they decide which buffers exist);
/// the caller applies the other entries of `state.hyper` to its configuration afterwards.
pub(crate) fn import_state<S: SlotState>(
    optimizer: &'static str,
    groups: &mut ParamGroups,
    slots: &mut [S],
    own_hyper: &BTreeMap<String, f64>,
    flags: &[&str],
    state: &OptimizerState,
) -> Result<()> {
    if state.optimizer != optimizer {
        return Err(OptimError::State {
            problems: vec![format!(
                "the state was saved by {}, this optimizer is {optimizer}",
                state.optimizer
            )],
        });
    }
    let mut problems = Vec::new();
    for key in own_hyper.keys() {
        if !state.hyper.contains_key(key) {
            problems.push(format!("hyper-parameter '{key}' is missing"));
        }
    }
    for (key, value) in &state.hyper {
        match own_hyper.get(key) {
            None => problems.push(format!("unexpected hyper-parameter '{key}'")),
            Some(own) if flags.contains(&key.as_str()) && own != value => problems.push(format!(
                "the state has {key} = {value}, this optimizer {key} = {own}; build it with the same setting"
            )),
            Some(_) if !value.is_finite() => problems.push(format!("hyper-parameter '{key}' is {value}")),
            Some(_) => {}
        }
    }
    if state.groups.len() != groups.groups().len() {
        problems.push(format!(
            "the state has {} parameter groups, this optimizer {}",
            state.groups.len(),
            groups.groups().len()
        ));
    } else {
        for (i, (saved, own)) in state.groups.iter().zip(groups.groups()).enumerate() {
            if saved.params != own.names() {
                problems.push(format!(
                    "group {i} holds parameters {:?} in the state but {:?} in this optimizer",
                    saved.params,
                    own.names()
                ));
            }
            for (what, v) in [
                ("lr", saved.lr),
                ("base_lr", saved.base_lr),
                ("weight_decay", saved.weight_decay),
            ] {
                if !v.is_finite() || v < 0.0 {
                    problems.push(format!("group {i} {what} is {v}"));
                }
            }
        }
    }
    let mut expected = BTreeSet::new();
    for ((name, var), slot) in groups.params().zip(slots.iter()) {
        if !state.param_steps.contains_key(name) {
            problems.push(format!("no step count for parameter '{name}'"));
        }
        for (buf, _) in slot.buffers() {
            let key = format!("{name}.{buf}");
            match state.buffers.get(&key) {
                None => problems.push(format!("missing buffer '{key}' (shape {:?})", var.shape())),
                Some(t) if t.shape() != var.shape().as_slice() => problems.push(format!(
                    "buffer '{key}' has shape {:?} in the state but the parameter has {:?}",
                    t.shape(),
                    var.shape()
                )),
                Some(_) => {}
            }
            expected.insert(key);
        }
    }
    for key in state.buffers.keys() {
        if !expected.contains(key) {
            problems.push(format!("unexpected buffer '{key}'"));
        }
    }
    let own_names: BTreeSet<&str> = groups.params().map(|(n, _)| n).collect();
    for key in state.param_steps.keys() {
        if !own_names.contains(key.as_str()) {
            problems.push(format!("step count for unknown parameter '{key}'"));
        }
    }
    if !problems.is_empty() {
        return Err(OptimError::State { problems });
    }

    // Everything fits: apply.
    for (saved, own) in state.groups.iter().zip(groups.groups_mut()) {
        own.lr = saved.lr;
        own.base_lr = saved.base_lr;
        own.weight_decay = saved.weight_decay;
    }
    groups.set_steps(state.steps);
    for ((name, _), slot) in groups.params().zip(slots.iter_mut()) {
        slot.set_step(state.param_steps[name]);
        for (buf, data) in slot.buffers_mut() {
            let t = state.buffers[&format!("{name}.{buf}")].contiguous();
            data.copy_from_slice(t.as_slice().expect("contiguous"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OptimizerState {
        let mut buffers = BTreeMap::new();
        buffers.insert(
            "w.exp_avg".to_string(),
            Tensor::from_vec(vec![0.1, -2.5e-8, f32::MIN_POSITIVE, 3.0], &[2, 2]).unwrap(),
        );
        buffers.insert(
            "b.exp_avg".to_string(),
            Tensor::from_vec(vec![1.0 / 3.0], &[1]).unwrap(),
        );
        OptimizerState {
            optimizer: "Adam".into(),
            steps: 7,
            hyper: [("beta1".to_string(), 0.9), ("eps".to_string(), 1e-8)]
                .into_iter()
                .collect(),
            groups: vec![GroupHyper {
                lr: 0.1 + 0.2,
                base_lr: 3e-4,
                weight_decay: 0.0,
                params: vec!["w".into(), "b".into()],
            }],
            param_steps: [("w".to_string(), 7), ("b".to_string(), 6)]
                .into_iter()
                .collect(),
            buffers,
        }
    }

    /// Optimizer state metadata round-trips through JSON, and buffers missing or unexpected for it
    /// are an error naming them.
    #[test]
    fn metadata_round_trip_and_checks() {
        let s = sample();
        let json = s.metadata_json();
        assert!(json.contains("\"bits\":\"0x3fd3333333333334\""), "{json}");
        let back = OptimizerState::from_metadata_json(&json, s.buffers.clone()).unwrap();
        assert_eq!(back, s);
        let mut wrong = s.buffers.clone();
        wrong.remove("b.exp_avg");
        wrong.insert("z".into(), Tensor::zeros(&[1]));
        let e = OptimizerState::from_metadata_json(&json, wrong)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'b.exp_avg' is listed but missing") && e.contains("'z' is not listed"),
            "{e}"
        );
    }

    /// The learning rate survives the JSON export bit for bit (stored as hex bits), and text that
    /// is not JSON is refused saying so.
    #[test]
    fn exact_bits_survive_the_export() {
        let s = sample();
        let back =
            OptimizerState::from_metadata_json(&s.metadata_json(), s.buffers.clone()).unwrap();
        assert_eq!(back.groups[0].lr.to_bits(), (0.1f64 + 0.2).to_bits());
        assert!(
            OptimizerState::from_metadata_json("nope", s.buffers.clone())
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }
}
