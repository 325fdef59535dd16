//! Course tooling: fence rewriting, libtest parsing and test lookup on small examples, and (ignored,
//! run by CI) the student edition of the real workspace end to end.

mod chapters;
mod edition;
mod fences;
mod grading;
mod helpers;
mod libtest;
