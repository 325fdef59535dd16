//! The safetensors format itself: any named tensors (`F32`, or `I8` codes) and string metadata
//! written atomically and read back, with errors that name the tensor whose header entry is wrong.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde_json::Value;
use tensor::Tensor;

use super::limits::{load_tensors_limited, read_checkpoint_bytes, LoadLimits};
use super::{checkpoint_error, file_error};
use crate::error::Result;

/// A tensor as it is stored in a file: `f32` values, or int8 codes (an int8 checkpoint's weights,
/// whose scales are stored beside them as `f32` tensors).
#[derive(Clone, Debug, PartialEq)]
pub enum StoredTensor {
    /// Stored as `F32`.
    F32(Tensor),
    /// Stored as `I8`, row-major.
    I8 {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The codes, row-major.
        data: Vec<i8>,
    },
}

impl StoredTensor {
    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            StoredTensor::F32(t) => t.shape(),
            StoredTensor::I8 { shape, .. } => shape,
        }
    }

    /// The safetensors dtype and the little-endian bytes.
    fn encoded(&self) -> (Dtype, Vec<u8>) {
        match self {
            StoredTensor::F32(t) => (
                Dtype::F32,
                t.to_vec().iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            StoredTensor::I8 { data, .. } => (Dtype::I8, data.iter().map(|&v| v as u8).collect()),
        }
    }
}

/// Write `tensors` (as `F32`, row-major) and `metadata` to a safetensors file at `path`.
pub fn save_tensors(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let stored = tensors
        .iter()
        .map(|(name, t)| (name.clone(), StoredTensor::F32(t.clone())))
        .collect();
    save_stored(path, &stored, metadata)
}

/// Write tensors of any stored dtype and `metadata` to a safetensors file at `path`, atomically
/// (a temporary sibling file renamed over the real name).
pub fn save_stored(
    path: &Path,
    tensors: &BTreeMap<String, StoredTensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let buffers: Vec<(&String, Vec<usize>, Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let (dtype, bytes) = t.encoded();
            (name, t.shape().to_vec(), dtype, bytes)
        })
        .collect();
    let mut views = Vec::with_capacity(buffers.len());
    for (name, shape, dtype, bytes) in &buffers {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| file_error(path, format!("tensor '{name}': {e}")))?;
        views.push((name.as_str(), view));
    }
    let info: HashMap<String, String> = metadata.clone().into_iter().collect();
    let bytes = safetensors::serialize(views, Some(info))
        .map_err(|e| file_error(path, format!("cannot serialize: {e}")))?;
    write_atomic(path, &bytes)
}

/// Write `bytes` to `path` through a temporary sibling file and a rename, so a crash never
/// leaves half a file under the real name (the parent directory is created if needed). Every
/// file the models crate writes (checkpoints, training histories) goes through here.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".to_string());
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| file_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        file_error(path, e)
    })
}

/// The little-endian values of a stored tensor as `f32`.
fn to_f32(view: &TensorView<'_>) -> std::result::Result<Vec<f32>, String> {
    let data = view.data();
    let values = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        other => return Err(format!("dtype {other:?} is not a float type")),
    };
    Ok(values)
}

/// IEEE half precision to single precision (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f32.powi(exp - 15),
    }
}

/// Read every tensor (converted to `f32`) and the metadata of a safetensors file. A tensor with
/// a non-float dtype is an error naming it.
pub fn load_tensors(path: &Path) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>)> {
    load_tensors_limited(path, &LoadLimits::default())
}

/// Keep the float tensors; an int8 tensor is an error naming it.
pub(crate) fn floats_only(
    path: &Path,
    (stored, metadata): (BTreeMap<String, StoredTensor>, BTreeMap<String, String>),
) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>)> {
    let mut tensors = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, t) in stored {
        match t {
            StoredTensor::F32(t) => {
                tensors.insert(name, t);
            }
            StoredTensor::I8 { .. } => problems.push(format!(
                "tensor '{name}': dtype I8 is not a float type (an int8 checkpoint: load it with models::quantize)"
            )),
        }
    }
    if !problems.is_empty() {
        return Err(checkpoint_error(path, problems));
    }
    Ok((tensors, metadata))
}

/// Read every tensor and the metadata of a safetensors file: float dtypes converted to `f32`,
/// `I8` kept as codes. Any other dtype is an error naming the tensor.
pub fn load_stored(
    path: &Path,
) -> Result<(BTreeMap<String, StoredTensor>, BTreeMap<String, String>)> {
    let bytes = read_checkpoint_bytes(path, LoadLimits::default().max_file_bytes)?;
    stored_from_bytes(path, &bytes)
}

/// Decode the bytes of a safetensors file (see [`load_stored`]); `path` names it in errors.
pub fn stored_from_bytes(
    path: &Path,
    bytes: &[u8],
) -> Result<(BTreeMap<String, StoredTensor>, BTreeMap<String, String>)> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| file_error(path, safetensors_problem(bytes, &e)))?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| file_error(path, safetensors_problem(bytes, &e)))?;
    let mut tensors = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, view) in file.tensors() {
        let stored = if view.dtype() == Dtype::I8 {
            Ok(StoredTensor::I8 {
                shape: view.shape().to_vec(),
                data: view.data().iter().map(|&b| b as i8).collect(),
            })
        } else {
            to_f32(&view)
                .and_then(|v| Tensor::from_vec(v, view.shape()).map_err(|e| e.to_string()))
                .map(StoredTensor::F32)
        };
        match stored {
            Ok(t) => {
                tensors.insert(name, t);
            }
            Err(why) => problems.push(format!("tensor '{name}': {why}")),
        }
    }
    if !problems.is_empty() {
        return Err(checkpoint_error(path, problems));
    }
    Ok((tensors, metadata))
}

/// Explain why bytes are not a valid safetensors file, naming the tensor whose dtype, shape or
/// byte range is wrong when the header can be read (the format's own errors do not always).
fn safetensors_problem(bytes: &[u8], err: &safetensors::SafeTensorError) -> String {
    match bad_tensor_in_header(bytes) {
        Some(why) => format!("not a valid safetensors file: {why}"),
        None => format!("not a safetensors file: {err}"),
    }
}

/// Walk a safetensors header and name the first tensor whose entry is wrong.
fn bad_tensor_in_header(bytes: &[u8]) -> Option<String> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = bytes.get(8..8usize.checked_add(n)?)?;
    let data_len = bytes.len() - 8 - n;
    let map: serde_json::Map<String, Value> = serde_json::from_slice(header).ok()?;
    let mut entries = Vec::new();
    for (name, v) in &map {
        if name == "__metadata__" {
            continue;
        }
        let dtype = v.get("dtype").and_then(Value::as_str).unwrap_or("?");
        let size: Option<usize> = match dtype {
            "F64" | "I64" | "U64" => Some(8),
            "F32" | "I32" | "U32" => Some(4),
            "F16" | "BF16" | "I16" | "U16" => Some(2),
            "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => Some(1),
            _ => None,
        };
        let shape: Option<Vec<usize>> = v
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
        let offsets: Option<(usize, usize)> = v
            .get("data_offsets")
            .and_then(Value::as_array)
            .and_then(|a| match a.as_slice() {
                [s, e] => Some((s.as_u64()? as usize, e.as_u64()? as usize)),
                _ => None,
            });
        let (Some(size), Some(shape), Some((start, end))) = (size, shape.clone(), offsets) else {
            return Some(format!(
                "tensor '{name}': dtype {dtype:?}, shape {shape:?} or data_offsets {offsets:?} is missing or unsupported"
            ));
        };
        let want = shape.iter().try_fold(size, |acc, &d| acc.checked_mul(d));
        if end < start || want != Some(end - start) {
            return Some(format!(
                "tensor '{name}': data_offsets [{start}, {end}] hold {} bytes but dtype {dtype} and shape {shape:?} need {}",
                end.saturating_sub(start),
                want.map_or("more than fits".to_string(), |w| w.to_string())
            ));
        }
        if end > data_len {
            return Some(format!(
                "tensor '{name}': data_offsets [{start}, {end}] run past the {data_len} data bytes in the file"
            ));
        }
        entries.push((start, end, name.clone()));
    }
    entries.sort();
    let mut at = 0;
    for (start, end, name) in &entries {
        if *start != at {
            return Some(format!(
                "tensor '{name}': data starts at byte {start} but the previous tensor ends at {at} (a gap or an overlap)"
            ));
        }
        at = *end;
    }
    if at != data_len {
        return Some(format!(
            "the tensors cover {at} data bytes but the file holds {data_len}"
        ));
    }
    None
}
