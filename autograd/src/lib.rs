//! The `autograd` crate: filled by its own issue.
