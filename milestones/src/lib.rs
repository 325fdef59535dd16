//! # milestones: deep learning's history as runnable binaries
//!
//! Each binary in `src/bin/` trains a model of its era on real data (or data it generates),
//! shows a progress bar, prints a results table and the training curves, and with `--json`
//! writes its metrics. This library holds what they share.
//!
//! | module | what |
//! |---|---|
//! | [`corpus`] | the embedded corpus (a generated mini-language) and its grammar checker |
//! | [`vision`] | image datasets by name, classifier training and reporting for the image milestones |
//! | [`textgen`] | text generation checks: prompt characters outside the vocabulary, empty corpus, streamed output |
//! | [`own_images`] | `--images DIR`: the image milestones on a folder of the user's own pictures |
//! | [`tasks`] | generated tasks: reverse, copy, sort (alone or mixed), blobs, noisy XOR |
//! | [`attention_tasks`] | training a GPT on the attention proofs and measuring exact-sequence accuracy |
//! | [`chat`] | the question-answer loop of a TinyTalks model (`--chat`) |
//! | [`course`] | course mode: student editions, chapter grading, milestone unlocking (the `course` binary) |
//! | [`cli`] | the common flags (`--data-dir`, `--dataset`, `--epochs`, `--steps`, `--seed`, `--json`, `--plot`, `--quick`) |
//! | [`language`] | the language-model milestone: recipes, corpora and `--text`, tokenizers, training through the trainer (checkpoints, resume, Ctrl-C), evaluation |
//! | [`guard`] | stop instead of reporting garbage: non-finite or diverged loss, non-finite weights; files read |
//! | [`progress`] | progress bars |
//! | [`report`] | results table and JSON output |
//! | [`plot`] | terminal and SVG training curves, labelled scatter charts |
//! | [`shapes`] | a generated image task: noisy 16x16 shapes in 8 classes |
//! | [`benchmark`] | measuring a classifier: held-out accuracy, latency, size, memory |
//! | [`generation`] | the generation benchmark: uncached, KV cache, int8, batched, on equal work |
//! | [`optimize`] | the optimization pipeline: prune and fine-tune, shrink, distill |
//! | [`variants`] | the vision track's variants of `mlperf-2018` and the workshop that builds them |

pub mod attention_tasks;
pub mod benchmark;
pub mod chat;
pub mod cli;
pub mod corpus;
pub mod course;
pub mod generation;
pub mod guard;
pub mod language;
pub mod optimize;
pub mod own_images;
pub mod plot;
pub mod progress;
pub mod report;
pub mod shapes;
pub mod tasks;
pub mod textgen;
pub mod variants;
pub mod vision;
