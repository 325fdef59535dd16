//! Milestone binaries: filled by their own issue.
