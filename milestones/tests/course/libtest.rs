//! Reading `cargo test` output: results per target, build errors, and a test's doc comment.

use milestones::course::libtest::{self, Outcome, Target};
use milestones::course::runner::{find_test_fn, rerun_command, TestOptions};

/// Captured `cargo test` output (stdout and stderr merged) of a chapter with a failing unit test,
/// a passing integration test file and an ignored test.
const SAMPLE_OUTPUT: &str = "\
   Compiling tensor v0.1.0 (/w/tensor)
    Finished `release` profile [optimized] target(s) in 3.2s
     Running unittests src/lib.rs (target/release/deps/tensor-1a2b)

running 3 tests
test broadcast::tests::adds_rows ... FAILED
test shape::tests::reshape_keeps_data ... ok
test matmul::tests::big ... ignored, needs data

failures:

---- broadcast::tests::adds_rows stdout ----

thread 'broadcast::tests::adds_rows' (4242) panicked at tensor/src/broadcast.rs:15:5:
not yet implemented: tensor: walk the shapes from the right
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    broadcast::tests::adds_rows

test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

     Running tests/ops.rs (target/release/deps/ops-3c4d)

running 2 tests
test add_matches_naive ... ok
test relu_zeroes_negatives ... FAILED

failures:

---- relu_zeroes_negatives stdout ----

thread 'relu_zeroes_negatives' panicked at tensor/tests/ops.rs:9:5:
assertion `left == right` failed
  left: 1.0
 right: 0.0

failures:
    relu_zeroes_negatives

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

error: 2 targets failed:
    `-p tensor --lib`
    `-p tensor --test ops`
";

/// The parser counts outcomes per test, ties each to its target, and extracts panic messages.
#[test]
fn libtest_output_is_parsed() {
    let run = libtest::parse(SAMPLE_OUTPUT);
    assert_eq!(run.binaries, 2);
    assert_eq!((run.passed(), run.failed(), run.total()), (2, 2, 4));
    assert_eq!(run.count(Outcome::Ignored), 1);
    assert_eq!(run.build_error, None);
    assert!(!run.all_passed());
    let failed = run.failed_cases();
    assert_eq!(failed[0].name, "broadcast::tests::adds_rows");
    assert_eq!(failed[0].target, Target::Lib);
    assert_eq!(failed[1].target, Target::Test("ops".into()));
    let f = run.failure(failed[0]).unwrap();
    assert_eq!(
        f.message.as_deref(),
        Some("not yet implemented: tensor: walk the shapes from the right")
    );
    assert_eq!(f.location.as_deref(), Some("tensor/src/broadcast.rs:15:5"));
    let f = run.failure(failed[1]).unwrap();
    assert_eq!(
        f.message.as_deref(),
        Some("assertion `left == right` failed\n  left: 1.0\n right: 0.0")
    );
    let opts = TestOptions::default();
    assert_eq!(
        rerun_command("tensor", &failed[1].target, &failed[1].name, opts),
        "cargo test -p tensor --release --test ops -- relu_zeroes_negatives --exact"
    );
}

/// A compile error is reported as a build error, not as zero tests passing.
#[test]
fn build_errors_are_detected() {
    let out = "\
   Compiling nn v0.1.0 (/w/nn)
error[E0308]: mismatched types
  --> nn/src/linear.rs:40:9
   |
40 |         1
   |         ^ expected `Tensor`, found integer

error: could not compile `nn` (lib) due to 1 previous error
";
    let run = libtest::parse(out);
    let e = run.build_error.clone().unwrap();
    assert!(e.starts_with("error[E0308]: mismatched types") && e.contains("linear.rs:40:9"));
    assert_eq!(run.total(), 0);
    let ok = libtest::parse(
        "     Running unittests src/lib.rs (x)\ntest a ... ok\ntest result: ok. 1 passed;\n",
    );
    assert!(ok.all_passed());
}

/// A test's doc comment is found above its attributes.
#[test]
fn test_doc_comments_are_found() {
    let src = "\
/// Not this one.
fn adds_rows_helper() {}

/// Adding a row vector broadcasts it
/// to every row.
#[test]
#[should_panic]
fn adds_rows() {
    assert!(true);
}
";
    let (line, doc) = find_test_fn(src, "adds_rows").unwrap();
    assert_eq!(line, 8);
    assert_eq!(doc, "Adding a row vector broadcasts it\nto every row.");
    assert_eq!(find_test_fn(src, "adds_rows_helper"), None); // not a test
}
