//! The `nn` crate: filled by its own issue.
