//! `loadgen table`: reads the JSON lines of a run and prints one Markdown table with the
//! median of every figure over the rounds, and ratios to direct and to nginx.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use crate::stats::median;

/// Flags of `loadgen table`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files of JSON lines written by `loadgen client` and `loadgen wrk`.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

const TARGETS: [&str; 4] = ["direct", "nginx", "haproxy", "ssegate"];

/// How a row's value relates to the direct run of the same round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rel {
    /// The value as measured.
    Raw,
    /// The value minus direct's (what the proxy adds).
    MinusDirect,
    /// The value divided by direct's.
    OverDirect,
}

/// One figure of the table.
pub(crate) struct Row {
    pub(crate) scenario: &'static str,
    /// Bold for the targets; ends with ↓ (lower is better) or ↑, or neither.
    pub(crate) label: &'static str,
    get: fn(&Value) -> Option<f64>,
    rel: Rel,
    /// A proxy's own figure (CPU, memory): direct has none.
    proxy_only: bool,
    decimals: usize,
}

fn f(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn per_stream_kib(v: &Value, base: Option<&str>) -> Option<f64> {
    let streams = f(v, "streams")?;
    let peak = f(v, "proxy_rss_peak_kib")?;
    let base = base.map_or(Some(0.0), |b| f(v, b))?;
    (streams > 0.0).then(|| (peak - base) / streams)
}

fn pct_of_core(v: &Value, key: &str) -> Option<f64> {
    Some(f(v, key)? / f(v, "wall_s")? * 100.0)
}

pub(crate) const ROWS: &[Row] = &[
    Row {
        scenario: "latency",
        label: "event delay p50 (µs) ↓",
        get: |v| f(v, "delay_p50_us"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "latency",
        label: "event delay p99 (µs) ↓",
        get: |v| f(v, "delay_p99_us"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "latency",
        label: "**added p50 over direct (µs)** ↓",
        get: |v| f(v, "delay_p50_us"),
        rel: Rel::MinusDirect,
        proxy_only: true,
        decimals: 0,
    },
    Row {
        scenario: "latency",
        label: "**added p99 over direct (µs)** ↓",
        get: |v| f(v, "delay_p99_us"),
        rel: Rel::MinusDirect,
        proxy_only: true,
        decimals: 0,
    },
    Row {
        scenario: "latency",
        label: "TTFB p50 (µs) ↓",
        get: |v| f(v, "ttfb_p50_us"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "latency",
        label: "TTFB p99 (µs) ↓",
        get: |v| f(v, "ttfb_p99_us"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "latency",
        label: "streams completed ↑",
        get: |v| f(v, "streams_completed"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "latency",
        label: "proxy CPU s ↓",
        get: |v| f(v, "proxy_cpu_s"),
        rel: Rel::Raw,
        proxy_only: true,
        decimals: 2,
    },
    Row {
        scenario: "latency",
        label: "tool CPU, % of a core: client",
        get: |v| pct_of_core(v, "client_cpu_s"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "latency",
        label: "tool CPU, % of a core: upstream",
        get: |v| pct_of_core(v, "upstream_cpu_s"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "fanout",
        label: "**streams completed** ↑",
        get: |v| f(v, "streams_completed"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "fanout",
        label: "proxy peak RSS (MiB) ↓",
        get: |v| Some(f(v, "proxy_rss_peak_kib")? / 1024.0),
        rel: Rel::Raw,
        proxy_only: true,
        decimals: 1,
    },
    Row {
        scenario: "fanout",
        label: "proxy RSS before the streams (MiB)",
        get: |v| Some(f(v, "proxy_rss_start_kib")? / 1024.0),
        rel: Rel::Raw,
        proxy_only: true,
        decimals: 1,
    },
    Row {
        scenario: "fanout",
        label: "**peak RSS ÷ streams (KiB)** ↓",
        get: |v| per_stream_kib(v, None),
        rel: Rel::Raw,
        proxy_only: true,
        decimals: 1,
    },
    Row {
        scenario: "fanout",
        label: "(peak − before) ÷ streams (KiB) ↓",
        get: |v| per_stream_kib(v, Some("proxy_rss_start_kib")),
        rel: Rel::Raw,
        proxy_only: true,
        decimals: 1,
    },
    Row {
        scenario: "fanout",
        label: "proxy CPU s ↓",
        get: |v| f(v, "proxy_cpu_s"),
        rel: Rel::Raw,
        proxy_only: true,
        decimals: 2,
    },
    Row {
        scenario: "fanout",
        label: "event delay p99 (µs) ↓",
        get: |v| f(v, "delay_p99_us"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "fanout",
        label: "tool CPU, % of a core: client",
        get: |v| pct_of_core(v, "client_cpu_s"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "fanout",
        label: "tool CPU, % of a core: upstream",
        get: |v| pct_of_core(v, "upstream_cpu_s"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "raw",
        label: "events/s ↑",
        get: |v| f(v, "events_per_s"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "raw",
        label: "events/s ÷ direct ↑",
        get: |v| f(v, "events_per_s"),
        rel: Rel::OverDirect,
        proxy_only: false,
        decimals: 2,
    },
    Row {
        scenario: "raw",
        label: "**proxy CPU s per million events** ↓",
        get: |v| Some(f(v, "proxy_cpu_s")? / f(v, "events_received")? * 1e6),
        rel: Rel::Raw,
        proxy_only: true,
        decimals: 2,
    },
    Row {
        scenario: "raw",
        label: "streams completed ↑",
        get: |v| f(v, "streams_completed"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "raw",
        label: "tool CPU, % of a core: client",
        get: |v| pct_of_core(v, "client_cpu_s"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "raw",
        label: "tool CPU, % of a core: upstream",
        get: |v| pct_of_core(v, "upstream_cpu_s"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "plain",
        label: "**requests/s** ↑",
        get: |v| f(v, "rps"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "plain",
        label: "requests/s ÷ direct ↑",
        get: |v| f(v, "rps"),
        rel: Rel::OverDirect,
        proxy_only: false,
        decimals: 2,
    },
    Row {
        scenario: "plain",
        label: "**p99 (µs)** ↓",
        get: |v| f(v, "p99_us"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "plain",
        label: "p50 (µs) ↓",
        get: |v| f(v, "p50_us"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "plain",
        label: "**proxy CPU µs per request** ↓",
        get: |v| f(v, "proxy_cpu_us_per_req"),
        rel: Rel::Raw,
        proxy_only: true,
        decimals: 1,
    },
    Row {
        scenario: "plain",
        label: "errors (non-2xx + socket)",
        get: |v| Some(f(v, "non_2xx")? + f(v, "socket_errors")?),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "plain",
        label: "tool CPU, % of a core: wrk",
        get: |v| pct_of_core(v, "wrk_cpu_s"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
    Row {
        scenario: "plain",
        label: "tool CPU, % of a core: upstream",
        get: |v| pct_of_core(v, "upstream_cpu_s"),
        rel: Rel::Raw,
        proxy_only: false,
        decimals: 0,
    },
];

/// Reads the files and prints the table.
pub fn main(args: Args) -> Result<(), String> {
    let mut records = Vec::new();
    for path in &args.files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            records.push(v);
        }
    }
    print!("{}", render(&records));
    Ok(())
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn record<'a>(records: &'a [Value], scenario: &str, target: &str, round: u64) -> Option<&'a Value> {
    records.iter().find(|v| {
        text(v, "scenario") == scenario
            && text(v, "target") == target
            && v.get("round").and_then(Value::as_u64) == Some(round)
    })
}

/// The row's value for one target in one round (relative to direct's as the row says).
pub(crate) fn round_value(records: &[Value], row: &Row, target: &str, round: u64) -> Option<f64> {
    if row.proxy_only && target == "direct" {
        return None;
    }
    let v = record(records, row.scenario, target, round).and_then(row.get)?;
    let direct = || record(records, row.scenario, "direct", round).and_then(row.get);
    match row.rel {
        Rel::Raw => Some(v),
        Rel::MinusDirect => direct().map(|d| v - d),
        Rel::OverDirect => direct().filter(|d| *d != 0.0).map(|d| v / d),
    }
}

/// The row's median over rounds for one target.
fn cell(records: &[Value], row: &Row, target: &str, rounds: &BTreeSet<u64>) -> Option<f64> {
    let mut values: Vec<f64> = rounds
        .iter()
        .filter_map(|&r| round_value(records, row, target, r))
        .collect();
    median(&mut values)
}

fn fmt_num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    // Thousands separators on the integer part, for readability of req/s and events/s.
    let (int, frac) = s
        .split_once('.')
        .map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(fr) => format!("{sign}{grouped}.{fr}"),
        None => format!("{sign}{grouped}"),
    }
}

fn section_title(records: &[Value], scenario: &str) -> String {
    let any = records.iter().find(|v| text(v, "scenario") == scenario);
    match (scenario, any) {
        ("latency", Some(v)) => format!(
            "**1. token latency**: {} streams × {} events, {} ms apart",
            f(v, "streams").unwrap_or(0.0),
            f(v, "events_per_stream").unwrap_or(0.0),
            f(v, "interval_us").unwrap_or(0.0) / 1000.0
        ),
        ("fanout", Some(v)) => format!(
            "**2. fan-out**: {} streams × {} events, {} s apart",
            f(v, "streams").unwrap_or(0.0),
            f(v, "events_per_stream").unwrap_or(0.0),
            f(v, "interval_us").unwrap_or(0.0) / 1e6
        ),
        ("raw", Some(v)) => format!(
            "**3. raw events**: {} streams × {} events, back to back",
            f(v, "streams").unwrap_or(0.0),
            f(v, "events_per_stream").unwrap_or(0.0)
        ),
        ("plain", Some(v)) => format!("**4. plain requests**: `{}`", text(v, "command")),
        _ => format!("**{scenario}**"),
    }
}

/// Renders the Markdown table.
fn render(records: &[Value]) -> String {
    let rounds: BTreeSet<u64> = records
        .iter()
        .filter_map(|v| v.get("round").and_then(Value::as_u64))
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Medians of {} round(s); \"over direct\" and \"÷ direct\" rows are medians of the per-round differences and ratios. ↓ lower is better, ↑ higher is better; \"÷ nginx\" is the value divided by nginx's.\n",
        rounds.len()
    );
    let _ = writeln!(
        out,
        "| metric | direct | nginx | haproxy | ssegate | haproxy ÷ nginx | ssegate ÷ nginx |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|");
    let mut current = "";
    for row in ROWS {
        if !records.iter().any(|v| text(v, "scenario") == row.scenario) {
            continue;
        }
        if row.scenario != current {
            current = row.scenario;
            let _ = writeln!(out, "| {} | | | | | | |", section_title(records, current));
        }
        let cells: Vec<Option<f64>> = TARGETS
            .iter()
            .map(|t| cell(records, row, t, &rounds))
            .collect();
        let nginx = cells[1];
        let ratio = |c: Option<f64>| match (c, nginx) {
            (Some(c), Some(n)) if n != 0.0 && row.rel != Rel::OverDirect => format!("{:.2}", c / n),
            _ => "–".to_string(),
        };
        let _ = write!(out, "| {} |", row.label);
        for c in &cells {
            let _ = write!(
                out,
                " {} |",
                c.map_or("–".to_string(), |v| fmt_num(v, row.decimals))
            );
        }
        let _ = writeln!(out, " {} | {} |", ratio(cells[2]), ratio(cells[3]));
    }
    out.push_str(&crate::rounds::render(records, &rounds));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(1234567.0, 0), "1,234,567");
        assert_eq!(fmt_num(-1234.5, 1), "-1,234.5");
        assert_eq!(fmt_num(12.345, 2), "12.35");
    }

    #[test]
    fn medians_and_added_latency() {
        let lines = [
            r#"{"scenario":"latency","target":"direct","round":1,"delay_p50_us":100.0,"delay_p99_us":200.0,"streams":2,"events_per_stream":3,"interval_us":20000}"#,
            r#"{"scenario":"latency","target":"nginx","round":1,"delay_p50_us":210.0,"delay_p99_us":500.0}"#,
            r#"{"scenario":"latency","target":"ssegate","round":1,"delay_p50_us":320.0,"delay_p99_us":600.0}"#,
            r#"{"scenario":"latency","target":"direct","round":2,"delay_p50_us":120.0,"delay_p99_us":200.0}"#,
            r#"{"scenario":"latency","target":"nginx","round":2,"delay_p50_us":230.0,"delay_p99_us":500.0}"#,
            r#"{"scenario":"latency","target":"ssegate","round":2,"delay_p50_us":340.0,"delay_p99_us":600.0}"#,
        ];
        let records: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let t = render(&records);
        assert!(
            t.contains("| **added p50 over direct (µs)** ↓ | – | 110 | – | 220 | – | 2.00 |"),
            "{t}"
        );
        assert!(
            t.contains("| event delay p50 (µs) ↓ | 110 | 220 | – | 330 | – | 1.50 |"),
            "{t}"
        );
        assert!(t.contains("2 streams × 3 events, 20 ms apart"), "{t}");
    }
}
