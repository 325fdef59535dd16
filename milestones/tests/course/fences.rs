//! Solution fences: rewriting bodies into hinted placeholders, multi-line and escaped hints, CRLF,
//! tail fences, and bad fences named by file and line.

use crate::helpers::call;
use milestones::course::fence::{
    body, escape_hint, find_fences, holds_placeholder, rewrite_source, FenceErrorKind, DEFAULT_HINT,
};

const SAMPLE: &str = "\
/// Adds one.
pub fn add_one(x: f32) -> f32 {
    // HINT: return x plus one
    // BEGIN SOLUTION
    x + 1.0
    // END SOLUTION
}

impl Thing {
    fn inner(&self) -> usize {
        // BEGIN SOLUTION
        let n = self.0;
        n * 2
        // END SOLUTION
    }
}
";

/// A fence's body becomes one placeholder line at the fence's indentation, naming the chapter and
/// the hint; the fence lines and the hint comment stay (so the body can be found, hashed and reset
/// later), everything else is unchanged, and rewriting again changes nothing.
#[test]
fn rewrite_replaces_fences_with_hinted_placeholders() {
    let r = rewrite_source("tensor", "tensor/src/x.rs", SAMPLE).unwrap();
    assert_eq!(r.fences.len(), 2);
    assert_eq!((r.fences[0].begin, r.fences[0].end), (4, 6));
    assert_eq!(r.fences[0].hint.as_deref(), Some("return x plus one"));
    assert_eq!(r.fences[1].hint, None);
    assert!(r.fences.iter().all(|f| f.whole_body));
    let expected = format!(
        "\
/// Adds one.
pub fn add_one(x: f32) -> f32 {{
    // HINT: return x plus one
    // BEGIN SOLUTION
    {c}\"tensor: return x plus one\")
    // END SOLUTION
}}

impl Thing {{
    fn inner(&self) -> usize {{
        // BEGIN SOLUTION
        {c}\"tensor: {DEFAULT_HINT}\")
        // END SOLUTION
    }}
}}
",
        c = call()
    );
    assert_eq!(r.text, expected);
    let again = rewrite_source("tensor", "tensor/src/x.rs", &r.text).unwrap();
    assert_eq!(again.text, r.text);
    assert!(holds_placeholder(body(&r.text, &again.fences[0]), "tensor"));
    assert!(!holds_placeholder(body(SAMPLE, &r.fences[0]), "tensor"));
    assert_eq!(
        body(SAMPLE, &r.fences[1]),
        "        let n = self.0;\n        n * 2\n"
    );
}

/// Several HINT lines (and continuation comment lines) join with spaces; ordinary comments above
/// the first HINT are not part of it.
#[test]
fn multi_line_hints_join() {
    let src = "\
fn f() -> u8 {
    // a note that is not a hint
    // HINT: first part,
    //   continued here;
    // HINT: second part
    // BEGIN SOLUTION
    1
    // END SOLUTION
}";
    let r = rewrite_source("nn", "nn/src/f.rs", src).unwrap();
    assert_eq!(
        r.fences[0].hint.as_deref(),
        Some("first part, continued here; second part")
    );
    assert!(r.text.contains(&format!(
        "    {}\"nn: first part, continued here; second part\")",
        call()
    )));
    assert!(r.text.contains("// a note that is not a hint"));
}

/// Quotes and backslashes are escaped for the string literal, braces for the format string.
#[test]
fn hints_are_escaped() {
    assert_eq!(
        escape_hint(r#"say "hi" \ {x} then }"#),
        r#"say \"hi\" \\ {{x}} then }}"#
    );
    let src = "fn f() {\n    // HINT: use \"a\\b\" and {n}\n    // BEGIN SOLUTION\n    ()\n    // END SOLUTION\n}\n";
    let r = rewrite_source("data", "data/src/f.rs", src).unwrap();
    assert!(r.text.contains(&format!(
        r#"    {}"data: use \"a\\b\" and {{{{n}}}}")"#,
        call()
    )));
}

/// A fence at the end of a body that starts with other code is allowed (the code stays) and
/// flagged as not the whole body.
#[test]
fn tail_fences_are_flagged_not_rejected() {
    let src = "fn f(x: u8) -> u8 {\n    check(x);\n    // BEGIN SOLUTION\n    x\n    // END SOLUTION\n}\n";
    let fences = find_fences("a.rs", src).unwrap();
    assert!(!fences[0].whole_body);
}

/// CRLF line endings survive the rewrite.
#[test]
fn crlf_is_kept() {
    let src = "fn f() {\r\n    // BEGIN SOLUTION\r\n    ()\r\n    // END SOLUTION\r\n}\r\n";
    let r = rewrite_source("nn", "x.rs", src).unwrap();
    assert_eq!(
        r.text,
        format!(
            "fn f() {{\r\n    // BEGIN SOLUTION\r\n    {}\"nn: {DEFAULT_HINT}\")\r\n    // END SOLUTION\r\n}}\r\n",
            call()
        )
    );
}

/// Unbalanced, nested and mid-body fences are errors naming the file and the line.
#[test]
fn bad_fences_name_file_and_line() {
    let unclosed = "fn f() {\n    // BEGIN SOLUTION\n    1\n}\n";
    let e = find_fences("tensor/src/u.rs", unclosed).unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, &e[0].kind), (2, &FenceErrorKind::Unclosed));
    assert!(
        e[0].to_string().starts_with("tensor/src/u.rs:2:"),
        "{}",
        e[0]
    );

    let stray = "fn f() {\n    1\n    // END SOLUTION\n}\n";
    let e = find_fences("s.rs", stray).unwrap_err();
    assert_eq!(
        (e[0].line, &e[0].kind),
        (3, &FenceErrorKind::EndWithoutBegin)
    );
    assert!(e[0].to_string().contains("s.rs:3:"));

    let nested =
        "fn f() {\n    // BEGIN SOLUTION\n    // BEGIN SOLUTION\n    1\n    // END SOLUTION\n}\n";
    let e = find_fences("n.rs", nested).unwrap_err();
    assert_eq!(
        (e[0].line, &e[0].kind),
        (3, &FenceErrorKind::Nested { open: 2 })
    );
    assert!(e[0].to_string().contains("line 2"));

    let mid =
        "fn f() -> u8 {\n    // BEGIN SOLUTION\n    let x = 1;\n    // END SOLUTION\n    x\n}\n";
    let e = rewrite_source("nn", "m.rs", mid).unwrap_err();
    assert_eq!((e[0].line, &e[0].kind), (4, &FenceErrorKind::NotBlockEnd));
    assert!(e[0].to_string().contains("m.rs:4:"));
}
