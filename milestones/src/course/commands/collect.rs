//! `grade --collect`: grades every student workspace under a folder, each in its own process group,
//! target directory and time limit, into one CSV.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::course::grading::load_manifest;
use crate::course::runner::TestOptions;
use crate::course::{CourseError, CHAPTERS};

/// Quotes a CSV field when needed.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Runs `course grade` on one student workspace in its own process group, killed after `limit`.
pub fn grade_one(
    student: &Path,
    manifest: &Path,
    json: &Path,
    limit: std::time::Duration,
    opts: TestOptions,
) -> Result<(String, Option<serde_json::Value>), CourseError> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|source| CourseError::Spawn {
        command: "course (current executable)".into(),
        source,
    })?;
    let log = student.join(".course").join("grade.log");
    std::fs::create_dir_all(student.join(".course")).map_err(|source| CourseError::Io {
        path: student.join(".course"),
        source,
    })?;
    let log_file = std::fs::File::create(&log).map_err(|source| CourseError::Io {
        path: log.clone(),
        source,
    })?;
    let mut cmd = Command::new(exe);
    cmd.arg("--workspace").arg(student);
    if !opts.release {
        cmd.arg("--debug");
    }
    cmd.arg("grade")
        .arg("--manifest")
        .arg(manifest)
        .arg("--json")
        .arg(json)
        .env("CARGO_TARGET_DIR", student.join("target"))
        .stdout(log_file.try_clone().map_err(|source| CourseError::Io {
            path: log.clone(),
            source,
        })?)
        .stderr(log_file)
        .process_group(0);
    let mut child = cmd.spawn().map_err(|source| CourseError::Spawn {
        command: format!("course grade --workspace {}", student.display()),
        source,
    })?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > limit => {
                // The whole group: the grader and the cargo and test processes it started.
                let _ = Command::new("kill")
                    .args(["-KILL", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                return Ok((format!("timeout after {} s", limit.as_secs()), None));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(200)),
            Err(e) => return Ok((format!("error: {e}"), None)),
        }
    }
    match std::fs::read_to_string(json)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    {
        Some(v) => Ok(("graded".into(), Some(v))),
        None => {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let last = text
                .lines()
                .rev()
                .find(|l| l.starts_with("error"))
                .unwrap_or("no grade sheet written")
                .to_string();
            Ok((last, None))
        }
    }
}

/// `course grade --collect DIR`: one CSV row per student workspace under `dir`, graded with one
/// manifest (the instructor's), a broken or slow workspace never stopping the others.
pub fn collect_grades(
    root: &Path,
    dir: &Path,
    manifest: Option<&Path>,
    time_limit: u64,
    out: Option<&Path>,
    opts: TestOptions,
) -> Result<ExitCode, CourseError> {
    // One manifest for everyone: the instructor's (never a student's own copy).
    let manifest_file = match manifest {
        Some(p) => p.to_path_buf(),
        None => {
            let m = load_manifest(root, None)?;
            let p =
                std::env::temp_dir().join(format!("course-manifest-{}.json", std::process::id()));
            m.write(&p)?;
            p
        }
    };
    let mut students: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| CourseError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    students.sort();
    let mut csv = format!("student,status,{},total,max\n", CHAPTERS.join(","));
    for s in &students {
        let name = s
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        eprintln!("== grading {name}");
        let json =
            std::env::temp_dir().join(format!("course-grade-{}-{name}.json", std::process::id()));
        let _ = std::fs::remove_file(&json);
        let (status, sheet) = grade_one(
            s,
            &manifest_file,
            &json,
            std::time::Duration::from_secs(time_limit),
            opts,
        )?;
        let _ = std::fs::remove_file(&json);
        let mut row = vec![csv_field(&name), csv_field(&status)];
        match sheet {
            Some(v) => {
                for c in CHAPTERS {
                    let pts = v["chapters"]
                        .as_array()
                        .and_then(|a| a.iter().find(|x| x["chapter"] == c))
                        .and_then(|x| x["points"].as_u64())
                        .unwrap_or(0);
                    row.push(pts.to_string());
                }
                row.push(v["total"].as_u64().unwrap_or(0).to_string());
                row.push(v["max"].as_u64().unwrap_or(0).to_string());
            }
            None => {
                row.extend(CHAPTERS.iter().map(|_| "0".to_string()));
                row.push("0".into());
                row.push(String::new());
            }
        }
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    if manifest.is_none() {
        let _ = std::fs::remove_file(&manifest_file);
    }
    match out {
        Some(p) => {
            std::fs::write(p, &csv).map_err(|source| CourseError::Io {
                path: p.to_path_buf(),
                source,
            })?;
            println!("{} student(s) graded into {}", students.len(), p.display());
        }
        None => print!("{csv}"),
    }
    Ok(ExitCode::SUCCESS)
}
