//! The `optim` crate: filled by its own issue.
