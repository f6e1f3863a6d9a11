//! What the scanner's verdicts mean for a file and for a repository: a file's status, a
//! revision's overall status (its worst file), and when a file is quarantined. The API's
//! `scan_summary`, the file listings and the web search page all read them from here, so that a
//! model can never be `malformed` in one place and "clean" in another.

use crate::db::types::ScanVerdict;

/// A file's status: the scanner's verdict, or `pending` before it has one.
pub fn file_status(verdict: Option<ScanVerdict>) -> &'static str {
    verdict.map_or(PENDING, ScanVerdict::as_str)
}

pub const PENDING: &str = "pending";
pub const CLEAN: &str = "clean";

/// The statuses that make a revision's overall status, worst first; with none of them, it is
/// `clean` (a revision without files too).
pub const WORST_FIRST: [&str; 5] = ["malicious", "malformed", "error", "suspicious", PENDING];

/// Every status a file or a revision can have, in the order a filter offers them.
pub const STATUSES: [&str; 6] = [
    CLEAN,
    "suspicious",
    "malformed",
    "error",
    "malicious",
    PENDING,
];

/// A revision's overall status from its files' statuses: the worst one present.
pub fn overall<'a>(statuses: impl IntoIterator<Item = &'a str>) -> &'static str {
    let present: Vec<&str> = statuses.into_iter().collect();
    WORST_FIRST
        .into_iter()
        .find(|s| present.contains(s))
        .unwrap_or(CLEAN)
}

/// The same rule in SQL, over `states`, an expression of type `text[]` holding the files'
/// statuses (see [`FILE_STATUS_SQL`]).
pub fn overall_sql(states: &str) -> String {
    let arms: String = WORST_FIRST
        .iter()
        .map(|s| format!(" WHEN '{s}' = ANY({states}) THEN '{s}'"))
        .collect();
    format!("(CASE{arms} ELSE '{CLEAN}' END)")
}

/// A file's status in SQL, for a query that joins `blobs b`.
pub const FILE_STATUS_SQL: &str = "COALESCE(b.scan_verdict, 'pending')";

/// Whether a file is quarantined: malicious and not released by an admin, or held by a
/// reviewer. Downloads of a quarantined file are refused.
pub fn quarantined(verdict: Option<ScanVerdict>, released: bool, held: bool) -> bool {
    (verdict == Some(ScanVerdict::Malicious) && !released) || held
}

/// The same rule in SQL, for a query that joins `blobs b`.
pub const QUARANTINED_SQL: &str =
    "((b.scan_verdict = 'malicious' AND b.released_at IS NULL) OR b.held_reason IS NOT NULL)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_file_decides_and_no_file_is_clean() {
        assert_eq!(overall([]), "clean");
        assert_eq!(overall(["clean", "suspicious"]), "suspicious");
        assert_eq!(overall(["pending", "suspicious"]), "suspicious");
        assert_eq!(overall(["clean", "pending"]), "pending");
        assert_eq!(overall(["malformed", "error", "clean"]), "malformed");
        assert_eq!(overall(["suspicious", "malicious"]), "malicious");
        for s in STATUSES {
            assert_eq!(overall([s, "clean"]), s, "every status is ranked");
        }
    }

    #[test]
    fn quarantine_is_an_unreleased_malicious_file_or_a_hold() {
        use ScanVerdict::*;
        assert!(quarantined(Some(Malicious), false, false));
        assert!(!quarantined(Some(Malicious), true, false));
        assert!(quarantined(Some(Clean), false, true));
        assert!(!quarantined(None, false, false));
        assert!(!quarantined(Some(Suspicious), false, false));
        assert_eq!(file_status(None), PENDING);
        for v in ScanVerdict::ALL {
            assert!(STATUSES.contains(&file_status(Some(*v))), "{v} is a status");
        }
    }
}
