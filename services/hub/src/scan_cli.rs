//! `kaiyuan scan PATH...`: the scanner without a server, for publishers before they push and for
//! CI gates. Exit code 0 when everything is clean, 1 when anything is suspicious, malicious or
//! malformed, 2 on usage or I/O errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use kaiyuan_scanner::{Report, Verdict};

/// Files under `paths` (directories walked recursively, in a stable order).
fn collect(paths: &[PathBuf], out: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    for path in paths {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                    children.sort();
                    collect(&children, out, errors);
                }
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            },
            Ok(meta) if meta.is_file() => out.push(path.clone()),
            Ok(_) => errors.push(format!(
                "{}: not a regular file (links are not followed)",
                path.display()
            )),
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
}

fn scan_file(path: &Path) -> std::io::Result<Report> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    Ok(kaiyuan_scanner::scan(
        &mut file,
        len,
        &path.to_string_lossy(),
    ))
}

/// Runs the scan and returns the process exit code.
pub fn run(paths: &[PathBuf], json: bool) -> u8 {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    collect(paths, &mut files, &mut errors);
    let mut worst = Verdict::Clean;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in &files {
        let report = match scan_file(path) {
            Ok(report) => report,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        worst = worst.max(report.verdict);
        let shown = path.display().to_string();
        if json {
            let line = serde_json::json!({
                "path": shown,
                "format": report.format,
                "verdict": report.verdict,
                "findings": report.findings,
                "scanner_version": kaiyuan_scanner::SCANNER_VERSION,
            });
            let _ = writeln!(out, "{line}");
        } else {
            let verdict = match report.verdict {
                Verdict::Clean => "clean".to_string(),
                other => other.as_str().to_uppercase(),
            };
            let _ = writeln!(out, "{verdict:<11} {:<18} {shown}", report.format);
            for f in &report.findings {
                let evidence = f
                    .evidence
                    .as_deref()
                    .map(|e| format!(" [{e}]"))
                    .unwrap_or_default();
                let location = if f.location.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", f.location)
                };
                let _ = writeln!(
                    out,
                    "    {} ({}){location}: {}{evidence}",
                    f.rule,
                    f.severity.as_str(),
                    f.message
                );
            }
        }
    }
    for error in &errors {
        eprintln!("error: {error}");
    }
    if !errors.is_empty() || worst == Verdict::Error {
        2
    } else if worst == Verdict::Clean {
        0
    } else {
        1
    }
}
