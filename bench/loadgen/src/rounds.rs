//! Round by round, ssegate against nginx, under the table: on this shared machine a median
//! of three rounds can fall either way, and the count of rounds each proxy won says how far
//! a ratio can be trusted.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use crate::table::{round_value, ROWS};

/// One line per target figure (the bold rows) that both nginx and ssegate have in two rounds
/// or more: ssegate's value over nginx's in each round, and in how many rounds it did better.
pub fn render(records: &[Value], rounds: &BTreeSet<u64>) -> String {
    let mut lines = String::new();
    for row in ROWS.iter().filter(|r| r.label.starts_with("**")) {
        let lower_is_better = if row.label.ends_with('↓') {
            true
        } else if row.label.ends_with('↑') {
            false
        } else {
            continue;
        };
        let pairs: Vec<(f64, f64)> = rounds
            .iter()
            .filter_map(|&r| {
                let n = round_value(records, row, "nginx", r)?;
                let s = round_value(records, row, "ssegate", r)?;
                Some((s, n))
            })
            .collect();
        if pairs.len() < 2 {
            continue;
        }
        let better = pairs
            .iter()
            .filter(|(s, n)| if lower_is_better { s < n } else { s > n })
            .count();
        let level = pairs.iter().filter(|(s, n)| s == n).count();
        // A ratio of two added delays means nothing when either is not above zero.
        let ratios: Vec<String> = pairs
            .iter()
            .map(|&(s, n)| {
                if s > 0.0 && n > 0.0 {
                    format!("{:.2}", s / n)
                } else {
                    "–".to_string()
                }
            })
            .collect();
        let name = row
            .label
            .trim_end_matches(['↓', '↑', ' '])
            .replace("**", "");
        let level = match level {
            0 => String::new(),
            l => format!(", level in {l}"),
        };
        let _ = writeln!(
            lines,
            "- {name}: {} (better in {better}{level} of {})",
            ratios.join(", "),
            pairs.len()
        );
    }
    if lines.is_empty() {
        return lines;
    }
    format!(
        "\nRound by round, ssegate ÷ nginx, and the rounds where ssegate did better:\n\n{lines}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(lines: &[&str]) -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }

    #[test]
    fn each_round_is_compared_and_counted_in_the_right_direction() {
        let recs = records(&[
            r#"{"scenario":"raw","target":"nginx","round":1,"proxy_cpu_s":4.0,"events_received":1000000}"#,
            r#"{"scenario":"raw","target":"ssegate","round":1,"proxy_cpu_s":5.0,"events_received":1000000}"#,
            r#"{"scenario":"raw","target":"nginx","round":2,"proxy_cpu_s":4.0,"events_received":1000000}"#,
            r#"{"scenario":"raw","target":"ssegate","round":2,"proxy_cpu_s":3.0,"events_received":1000000}"#,
            r#"{"scenario":"raw","target":"nginx","round":3,"proxy_cpu_s":4.0,"events_received":1000000}"#,
            r#"{"scenario":"raw","target":"ssegate","round":3,"proxy_cpu_s":4.4,"events_received":1000000}"#,
            r#"{"scenario":"plain","target":"nginx","round":1,"rps":100.0}"#,
            r#"{"scenario":"plain","target":"ssegate","round":1,"rps":110.0}"#,
            r#"{"scenario":"plain","target":"nginx","round":2,"rps":100.0}"#,
            r#"{"scenario":"plain","target":"ssegate","round":2,"rps":90.0}"#,
        ]);
        let rounds = BTreeSet::from([1, 2, 3]);
        let out = render(&recs, &rounds);
        // CPU: lower is better, won in round 2 only.
        assert!(
            out.contains("- proxy CPU s per million events: 1.25, 0.75, 1.10 (better in 1 of 3)"),
            "{out}"
        );
        // Requests per second: higher is better.
        assert!(
            out.contains("- requests/s: 1.10, 0.90 (better in 1 of 2)"),
            "{out}"
        );
    }

    #[test]
    fn ties_are_level_not_lost() {
        let recs = records(&[
            r#"{"scenario":"fanout","target":"nginx","round":1,"streams_completed":9900}"#,
            r#"{"scenario":"fanout","target":"ssegate","round":1,"streams_completed":9900}"#,
            r#"{"scenario":"fanout","target":"nginx","round":2,"streams_completed":9900}"#,
            r#"{"scenario":"fanout","target":"ssegate","round":2,"streams_completed":9900}"#,
        ]);
        let out = render(&recs, &BTreeSet::from([1, 2]));
        assert!(
            out.contains("- streams completed: 1.00, 1.00 (better in 0, level in 2 of 2)"),
            "{out}"
        );
        // One round is no comparison.
        assert_eq!(render(&recs, &BTreeSet::from([1])), "");
    }

    #[test]
    fn added_delays_at_or_below_zero_have_no_ratio() {
        let recs = records(&[
            r#"{"scenario":"latency","target":"direct","round":1,"delay_p50_us":100.0,"delay_p99_us":900.0}"#,
            r#"{"scenario":"latency","target":"nginx","round":1,"delay_p50_us":90.0,"delay_p99_us":1000.0}"#,
            r#"{"scenario":"latency","target":"ssegate","round":1,"delay_p50_us":150.0,"delay_p99_us":950.0}"#,
            r#"{"scenario":"latency","target":"direct","round":2,"delay_p50_us":100.0,"delay_p99_us":900.0}"#,
            r#"{"scenario":"latency","target":"nginx","round":2,"delay_p50_us":200.0,"delay_p99_us":1000.0}"#,
            r#"{"scenario":"latency","target":"ssegate","round":2,"delay_p50_us":150.0,"delay_p99_us":950.0}"#,
        ]);
        let out = render(&recs, &BTreeSet::from([1, 2]));
        assert!(
            out.contains("- added p50 over direct (µs): –, 0.50 (better in 1 of 2)"),
            "{out}"
        );
        assert!(
            out.contains("- added p99 over direct (µs): 0.50, 0.50 (better in 2 of 2)"),
            "{out}"
        );
    }
}
