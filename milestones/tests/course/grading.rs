//! The milestone mapping, grading weights and missing tests, locks that follow test results,
//! timestamps and body hashes.

use milestones::course::fence::{body, find_fences};
use milestones::course::libtest;
use milestones::course::{unlocked_by, CHAPTERS, MILESTONES};

/// Every milestone is unlocked by exactly one chapter, the last it needs.
#[test]
fn milestone_mapping() {
    let total: usize = CHAPTERS.iter().map(|c| unlocked_by(c).len()).sum();
    assert_eq!(total, MILESTONES.len());
    let names = |c| unlocked_by(c).iter().map(|m| m.name).collect::<Vec<_>>();
    assert_eq!(names("optim"), ["perceptron-1957", "xor-1969"]);
    assert_eq!(names("tensor"), Vec::<&str>::new());
    assert!(names("models").contains(&"transformer-2017"));
    assert!(names("models").contains(&"mlperf-2018"));
}

/// Graded tests are the `#[test]` functions that are not ignored; grading counts weights of the
/// passing ones, and a graded test that did not run is missing (or failed, if the build broke).
#[test]
fn grading_counts_weights_and_missing_tests() {
    use milestones::course::grading::{grade_chapter, graded_fns, GradedTest, TestStatus};
    let src = "#[test]\nfn a() {}\n/// doc\n#[test]\n#[ignore = \"data\"]\nfn b() {}\n#[test]\n#[should_panic]\nfn c() {}\nfn d() {}\n";
    assert_eq!(graded_fns(src), ["a", "c"]);
    let t = |name: &str, weight| GradedTest {
        target: "lib".into(),
        name: name.into(),
        weight,
    };
    let tests = [t("a", 2), t("c", 3), t("gone", 4)];
    let run = libtest::parse(
        "     Running unittests src/lib.rs (x)\ntest m::tests::a ... ok\ntest m::tests::c ... FAILED\ntest result: FAILED. 1 passed;\n",
    );
    let g = grade_chapter("nn", &tests, &run);
    assert_eq!((g.points(), g.max()), (2, 9));
    let status: Vec<TestStatus> = g.tests.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        status,
        [TestStatus::Passed, TestStatus::Failed, TestStatus::Missing]
    );
}

/// A milestone's lock comes only from the chapter results given (measured now); a chapter not
/// measured counts as not passing.
#[test]
fn milestone_locks_follow_results() {
    use milestones::course::guide::{timeline, Lock};
    use std::collections::BTreeMap;
    let m = milestones::course::milestone("xor-1969").unwrap();
    let mut passing: BTreeMap<String, bool> =
        CORE_PASSING.iter().map(|c| (c.to_string(), true)).collect();
    assert!(Lock::of(m, &passing).unlocked());
    passing.insert("optim".into(), false);
    let lock = Lock::of(m, &passing);
    assert_eq!(lock.label(), "locked (needs: optim)");
    passing.remove("nn");
    assert_eq!(Lock::of(m, &passing).label(), "locked (needs: nn, optim)");
    let locks: BTreeMap<&str, Lock> = [("xor-1969", lock)].into_iter().collect();
    let tl = timeline(&locks, 62);
    assert!(tl.starts_with("1957 o"), "{tl}");
    assert!(tl.contains("1969  xor-1969          locked"), "{tl}");
}

const CORE_PASSING: [&str; 4] = ["tensor", "autograd", "nn", "optim"];

/// Timestamps are UTC civil time; the bodies' hash ignores code outside the fences.
#[test]
fn timestamps_and_body_hashes() {
    use milestones::course::state::{bodies_hash, utc_timestamp, Body};
    assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
    assert_eq!(utc_timestamp(1_796_601_600), "2026-12-07T00:00:00Z");
    assert_eq!(utc_timestamp(951_782_400 + 3661), "2000-02-29T01:01:01Z");
    let src = "fn f() {\n    // BEGIN SOLUTION\n    1\n    // END SOLUTION\n}\n";
    let bodies = |s: &str| -> Vec<Body> {
        find_fences("a.rs", s)
            .unwrap()
            .into_iter()
            .map(|f| Body {
                file: "a.rs".into(),
                text: body(s, &f).to_string(),
                fence: f,
            })
            .collect()
    };
    let h = bodies_hash(&bodies(src));
    assert_eq!(h, bodies_hash(&bodies(&format!("// note\n{src}"))));
    assert_ne!(h, bodies_hash(&bodies(&src.replace("    1\n", "    2\n"))));
}
