//! Scans each file named on the command line and prints `verdict<TAB>format<TAB>path`; used by
//! scripts/bench-scan.sh. Exit status 1 when any file is not clean (as `kaiyuan scan`).
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut worst = kaiyuan_scanner::Verdict::Clean;
    for path in std::env::args().skip(1) {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::from(2);
            }
        };
        let report = kaiyuan_scanner::scan_bytes(&bytes, &path);
        println!("{}\t{}\t{path}", report.verdict.as_str(), report.format);
        worst = worst.max(report.verdict);
    }
    if worst != kaiyuan_scanner::Verdict::Clean {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
