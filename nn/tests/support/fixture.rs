//! Reading the PyTorch reference fixtures (`tests/fixtures/*.json`, written by the scripts next
//! to them): one JSON file per test, tensors stored as `{"shape": [...], "data": [...]}`.
//! Shared by nn's and models' reference tests (models includes this file by path).

use serde_json::Value;
use tensor::Tensor;

/// The parsed fixture `tests/fixtures/<name>` of the crate under `manifest_dir`.
pub fn load(manifest_dir: &str, name: &str) -> Value {
    let path = format!("{manifest_dir}/tests/fixtures/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A stored tensor.
pub fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    let data: Vec<f32> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect();
    Tensor::from_vec(data, &shape).expect("shape matches data")
}
