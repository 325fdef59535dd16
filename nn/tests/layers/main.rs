//! Grader tests for the layers chapter: every layer's gradient w.r.t. its input *and* its
//! parameters passes `gradcheck`; values against hand computations; conv output shapes; BatchNorm
//! train vs eval; Dropout statistics; Sequential names; state-dict errors; Embedding ids.

mod activation;
mod conv_pool;
mod dropout_embedding;
mod helpers;
mod linear;
mod norm;
mod sequential;
mod systems;
