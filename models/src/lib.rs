//! The `models` crate: filled by its own issue.
