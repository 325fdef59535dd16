//! A chapter's exercises in the order its README gives them (the numbered list of its
//! `## Exercises` section), each with the tests that grade it, so `course check` sends a student to
//! the first unfinished exercise rather than to the alphabetically first failing test.

use super::libtest::TestCase;

/// One numbered exercise of a chapter README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exercise {
    /// Its number in the README.
    pub number: usize,
    /// The first line of its text (what to write).
    pub title: String,
    /// Test names it mentions (backticked identifiers), in order.
    pub tests: Vec<String>,
}

/// Whether a backticked span is a plain identifier (a test name candidate).
fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
}

/// The exercises of a chapter README: the items `N. ...` of its `## Exercises` section (an item
/// goes on over its indented lines).
pub fn parse_exercises(readme: &str) -> Vec<Exercise> {
    let mut out: Vec<Exercise> = Vec::new();
    let mut in_section = false;
    for line in readme.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            in_section = h.trim() == "Exercises";
            continue;
        }
        if !in_section {
            continue;
        }
        let t = line.trim_start();
        let numbered = line.len() == t.len()
            && t.split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        let text = if numbered {
            let (n, rest) = t.split_once(". ").unwrap_or(("0", t));
            out.push(Exercise {
                number: n.parse().unwrap_or(0),
                title: rest.trim().to_string(),
                tests: Vec::new(),
            });
            rest
        } else if line.starts_with(' ') && !out.is_empty() {
            t
        } else {
            continue;
        };
        if let Some(ex) = out.last_mut() {
            for (i, span) in text.split('`').enumerate() {
                if i % 2 == 1 && is_identifier(span) && !ex.tests.iter().any(|x| x == span) {
                    ex.tests.push(span.to_string());
                }
            }
        }
    }
    out
}

/// Whether a test case is the test called `name` (its full name or its last segment).
fn is_named(case: &TestCase, name: &str) -> bool {
    case.name == name || case.name.rsplit("::").next() == Some(name)
}

/// The first failing test of the first exercise with a failing test, in the README's order (the
/// exercise, and the test among `failed`); `None` when no exercise names a failing test.
pub fn first_failing_in_order<'a>(
    exercises: &'a [Exercise],
    failed: &[&'a TestCase],
) -> Option<(&'a Exercise, usize)> {
    for ex in exercises {
        for name in &ex.tests {
            if let Some(i) = failed.iter().position(|c| is_named(c, name)) {
                return Some((ex, i));
            }
        }
    }
    None
}
