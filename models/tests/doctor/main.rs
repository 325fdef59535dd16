//! The training doctor's grader: healthy MLP, CNN and language models pass all seven checks; a
//! detached layer, unshifted targets, a detached loss and a loader that never shuffles each fail
//! the right check, by name; the LR range test suggests a sane learning rate. Every model is
//! diagnosed as the trainer trains it: a `TrainTask` (`Classification`, `LanguageModel`, or a
//! task of its own).

mod classifiers;
mod fixtures;
mod language_models;
