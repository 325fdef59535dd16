//! Parsing `cargo test` output (cargo's `Running ...` lines and libtest's plain text format,
//! stdout and stderr merged in order) into per-test outcomes, failures with their panic
//! messages, and build errors. The JSON test format needs a nightly toolchain, so the stable
//! plain format is parsed instead.

/// Which test target of a package a test belongs to (selects it again with cargo flags).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// The library's unit tests (`--lib`).
    Lib,
    /// An integration test file `tests/<name>.rs` (`--test <name>`).
    Test(String),
    /// A binary's unit tests (`--bin <name>`).
    Bin(String),
    /// Documentation examples (`--doc`).
    Doc,
    /// A target this parser does not recognise (its cargo description).
    Other(String),
}

impl Target {
    /// The cargo flags selecting this target.
    pub fn cargo_args(&self) -> Vec<String> {
        match self {
            Target::Lib => vec!["--lib".into()],
            Target::Test(n) => vec!["--test".into(), n.clone()],
            Target::Bin(n) => vec!["--bin".into(), n.clone()],
            Target::Doc => vec!["--doc".into()],
            Target::Other(_) => vec![],
        }
    }

    /// Parses cargo's description after `Running` (`unittests src/lib.rs (target/...)`,
    /// `tests/broadcast.rs (target/...)`).
    fn from_running(desc: &str) -> Target {
        let src = desc.split(" (").next().unwrap_or(desc).trim();
        let src = src.strip_prefix("unittests ").unwrap_or(src);
        let stem = |p: &str| {
            std::path::Path::new(p)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        if src == "src/lib.rs" || src.ends_with("/lib.rs") && !src.contains("tests/") {
            Target::Lib
        } else if let Some(rest) = src.strip_prefix("tests/") {
            // tests/foo.rs or tests/foo/main.rs
            let name = rest.split('/').next().unwrap_or(rest);
            Target::Test(name.trim_end_matches(".rs").to_string())
        } else if let Some(rest) = src.strip_prefix("src/bin/") {
            if rest.contains('/') {
                Target::Bin(rest.split('/').next().unwrap_or(rest).to_string())
            } else {
                Target::Bin(stem(rest))
            }
        } else {
            Target::Other(src.to_string())
        }
    }
}

/// A test's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Ignored,
}

/// One `test NAME ... RESULT` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    pub name: String,
    pub target: Target,
    pub outcome: Outcome,
}

/// A failed test with its captured output and panic message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub name: String,
    pub target: Target,
    /// The panic message (the lines after `thread '...' panicked at ...:`), if found.
    pub message: Option<String>,
    /// Where it panicked (`src/x.rs:10:5`), if found.
    pub location: Option<String>,
    /// The whole captured output of the test.
    pub output: String,
}

/// Everything parsed from one `cargo test` run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestRun {
    pub cases: Vec<TestCase>,
    pub failures: Vec<Failure>,
    /// Number of `test result:` summary lines (one per test binary that ran).
    pub binaries: usize,
    /// The targets cargo ran, in order (from its `Running` and `Doc-tests` lines).
    pub targets: Vec<Target>,
    /// The first compiler error (up to the blank line ending it), if the build failed.
    pub build_error: Option<String>,
}

impl TestRun {
    pub fn count(&self, o: Outcome) -> usize {
        self.cases.iter().filter(|c| c.outcome == o).count()
    }
    pub fn passed(&self) -> usize {
        self.count(Outcome::Passed)
    }
    pub fn failed(&self) -> usize {
        self.count(Outcome::Failed)
    }
    /// Tests that ran (ignored ones excluded).
    pub fn total(&self) -> usize {
        self.passed() + self.failed()
    }
    /// Whether everything built and every test that ran passed (and some did).
    pub fn all_passed(&self) -> bool {
        self.build_error.is_none() && self.failed() == 0 && self.passed() > 0
    }
    /// Failed tests in a stable order: by target (in the order they ran), then by name.
    pub fn failed_cases(&self) -> Vec<&TestCase> {
        let order: Vec<&Target> = self.cases.iter().fold(Vec::new(), |mut v, c| {
            if !v.contains(&&c.target) {
                v.push(&c.target);
            }
            v
        });
        let mut failed: Vec<&TestCase> = self
            .cases
            .iter()
            .filter(|c| c.outcome == Outcome::Failed)
            .collect();
        failed.sort_by_key(|c| (order.iter().position(|t| *t == &c.target), c.name.clone()));
        failed
    }
    /// The captured failure of a failed test.
    pub fn failure(&self, case: &TestCase) -> Option<&Failure> {
        self.failures
            .iter()
            .find(|f| f.name == case.name && f.target == case.target)
    }
}

/// Parses `panicked at LOCATION:` blocks of a test's captured output.
fn panic_of(output: &str) -> (Option<String>, Option<String>) {
    let lines: Vec<&str> = output.lines().collect();
    let Some(i) = lines
        .iter()
        .position(|l| l.starts_with("thread '") && l.contains(" panicked at "))
    else {
        return (None, None);
    };
    // `thread 'name' panicked at ...` or, since Rust 1.88, `thread 'name' (id) panicked at ...`
    let after = lines[i].split(" panicked at ").nth(1).unwrap_or("").trim();
    if let Some(loc) = after.strip_suffix(':') {
        // Current format: the message follows on its own lines.
        let msg: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| !l.starts_with("note: ") && !l.starts_with("stack backtrace:"))
            .copied()
            .collect();
        let msg = msg.join("\n").trim().to_string();
        (Some(loc.to_string()), (!msg.is_empty()).then_some(msg))
    } else if let Some(rest) = after.strip_prefix('\'') {
        // Old format: panicked at 'message', location
        match rest.rsplit_once("', ") {
            Some((m, loc)) => (Some(loc.to_string()), Some(m.to_string())),
            None => (None, Some(rest.to_string())),
        }
    } else {
        (Some(after.to_string()), None)
    }
}

/// Parses the merged output of `cargo test` (see the module docs).
pub fn parse(output: &str) -> TestRun {
    let mut run = TestRun::default();
    let mut target = Target::Other(String::new());
    let lines: Vec<&str> = output.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if let Some(desc) = t.strip_prefix("Running ").filter(|_| line.starts_with(' ')) {
            target = Target::from_running(desc);
            run.targets.push(target.clone());
        } else if t.starts_with("Doc-tests ") && line.starts_with(' ') {
            target = Target::Doc;
            run.targets.push(target.clone());
        } else if line.starts_with("test result: ") {
            run.binaries += 1;
        } else if let Some(rest) = line.strip_prefix("test ") {
            if let Some((name, result)) = rest.rsplit_once(" ... ") {
                let outcome = match result.trim() {
                    "ok" => Some(Outcome::Passed),
                    "FAILED" => Some(Outcome::Failed),
                    r if r.starts_with("ignored") => Some(Outcome::Ignored),
                    _ => None,
                };
                if let Some(outcome) = outcome {
                    run.cases.push(TestCase {
                        name: name.trim().to_string(),
                        target: target.clone(),
                        outcome,
                    });
                }
            }
        } else if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" stdout ----"))
        {
            let start = i + 1;
            let mut end = start;
            while end < lines.len() {
                let l = lines[end];
                let next_block = l.starts_with("---- ") && l.ends_with(" ----");
                if next_block || l == "failures:" || l.starts_with("test result: ") {
                    break;
                }
                end += 1;
            }
            let out = lines[start..end].join("\n").trim().to_string();
            let (location, message) = panic_of(&out);
            run.failures.push(Failure {
                name: name.to_string(),
                target: target.clone(),
                message,
                location,
                output: out,
            });
            i = end;
            continue;
        } else if run.build_error.is_none()
            && (line.starts_with("error[") || line.starts_with("error: "))
            && !line.starts_with("error: test failed")
            && !line.contains("target failed")
            && !line.contains("targets failed")
        {
            let block: Vec<&str> = lines[i..]
                .iter()
                .take_while(|l| !l.trim().is_empty())
                .take(40)
                .copied()
                .collect();
            run.build_error = Some(block.join("\n"));
        }
        i += 1;
    }
    run
}
