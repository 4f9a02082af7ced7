//! Summing a test log: `scripts/test`'s last line.

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// Sums `charts:`, `images:`, `real-node:`, `testbed:` lines (`N passed, M failed[, K skipped]`) and cargo's
/// `test result: ok. N passed; M failed; K ignored; ...` lines.
pub fn sum(log: &str) -> Counts {
    let mut counts = Counts::default();
    for line in log.lines() {
        let counted = match line.split_once(": ") {
            Some(("charts" | "images" | "real-node" | "testbed", rest)) => count_of(rest, ", "),
            _ => line.strip_prefix("test result: ").and_then(|rest| count_of(rest, "; ")),
        };
        if let Some(c) = counted {
            counts.passed += c.passed;
            counts.failed += c.failed;
            counts.skipped += c.skipped;
        }
    }
    counts
}

/// `N passed<sep>M failed<sep>K skipped|ignored` in any order among other fields; None without passed and failed.
fn count_of(text: &str, separator: &str) -> Option<Counts> {
    let mut counts = Counts::default();
    let (mut passed, mut failed) = (false, false);
    for field in text.split(separator) {
        let field = field.trim_start_matches("ok. ").trim_start_matches("FAILED. ");
        let Some((number, word)) = field.trim().split_once(' ') else { continue };
        let Ok(number) = number.parse::<u64>() else { continue };
        match word.trim_end_matches([';', ',', '.']) {
            "passed" => (counts.passed, passed) = (number, true),
            "failed" => (counts.failed, failed) = (number, true),
            "skipped" | "ignored" => counts.skipped = number,
            _ => {}
        }
    }
    (passed && failed).then_some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_suites_and_cargo_results() {
        let log = "\
charts: 755 passed, 0 failed
images: 180 passed, 6 failed, 2 skipped
noise: 1 passed, 1 failed
test result: ok. 24 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s
test result: FAILED. 9 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.10s
   test result: ok. 5 passed; 0 failed; 0 ignored
";
        assert_eq!(sum(log), Counts { passed: 755 + 180 + 24 + 9, failed: 6 + 1, skipped: 2 + 3 });
    }
}
