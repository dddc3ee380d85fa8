//! `ssegate probe`: find out from the outside whether a stream really streams, and which hop
//! buffers it.
//!
//! The probe sends the request a browser or SDK would send, reads the body as it arrives with
//! ssegate's own SSE/NDJSON parser and payload dialects, prints every event with its arrival
//! time, then a summary and a verdict (rules in [`verdict`], the buffering thresholds in
//! [`bursts`]).
//!
//! Exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | `streamed` |
//! | 1 | bad input: URL, header, `-d @file`, option |
//! | 2 | command-line usage error (clap) |
//! | 10 | `buffered` |
//! | 11 | `compressed` |
//! | 12 | `incomplete` |
//! | 13 | `not a stream` |
//! | 20 | DNS: the name does not resolve |
//! | 21 | connection refused or failed |
//! | 22 | TLS handshake or certificate |
//! | 23 | `--timeout` ran out before the response header |
//! | 24 | non-2xx status |
//! | 25 | broken HTTP, or closed before answering |
//!
//! With `--compare`, the exit code is the first URL's when it is not 0, else the second's.
//!
//! `--json` prints one document. For one URL it is a probe object:
//! `url`, `method`, `exit_code`; `verdict` (`streamed`, `buffered`, `compressed`,
//! `incomplete`, `not_a_stream`, or null on error) and its `evidence`; `findings` (every rule
//! that fired, `{verdict, evidence}`, the verdict first); `error` (null, or `{class, message}`
//! with `class` one of `input`, `dns`, `refused`, `connect`, `tls`, `timeout`, `status`,
//! `protocol`, and `body` for `status`); `status`; `address`; `headers` (`[{name, value,
//! warning}]` for Content-Type, Cache-Control, X-Accel-Buffering, Content-Encoding,
//! Transfer-Encoding, Content-Length); `timing_ms` (`connect`: resolving and connecting;
//! from the request sent: `ttfb` (response header), `first_byte`, `first_event`,
//! `first_token`, `duration`; `longest_gap` between events); `events`, `chunks`, `bytes`,
//! `decoded_bytes`, `output_chars`; `tokens` (`{input, output}`, null without a usage block);
//! `dialect`; `end_marker`; `end` (`finished`, `stopped_after_end_marker`, `timed_out`,
//! `broken`, with `end_error`); `decode_error`; `event_log` (`[{at_ms, gap_ms, type, preview,
//! chars, end, error}]`). With `--compare`: `{probes: [probe, probe], conclusion, lost_at
//! (the URL blamed, or null), exit_code}`.

pub mod bursts;
pub mod error;
pub mod fetch;
pub mod hops;
pub mod report;
pub mod request;
pub mod timeline;
pub mod verdict;

use std::cell::Cell;
use std::time::Duration;

use clap::Args;
use pingora::connectors::http::Connector;

use error::ProbeError;
use fetch::{fetch, Progress};
use report::{Judged, Outcome};
use request::{build_request, ProbeRequest};

/// `ssegate probe` arguments.
#[derive(Args, Clone, Debug)]
#[command(
    after_help = "Exit codes: 0 streamed, 10 buffered, 11 compressed, 12 incomplete, \
13 not a stream; 1 bad input, 20 DNS, 21 connection refused/failed, 22 TLS, 23 timeout, \
24 non-2xx status, 25 bad response. With --compare: the first URL's code if not 0, else the second's."
)]
pub struct ProbeArgs {
    /// URL of the stream (http:// or https://).
    pub url: String,
    /// Request method [default: POST with -d, else GET].
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// Request body; `@file` reads it from a file, `@-` from standard input.
    #[arg(short = 'd', long = "data", value_name = "BODY")]
    pub data: Option<String>,
    /// Request header `Name: value` (repeatable); `Name:` drops a default header.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Give up after this long, from resolving the name to the end of the body.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Probe this URL too, at the same time with the same request, and compare.
    #[arg(long, value_name = "URL2")]
    pub compare: Option<String>,
    /// Accept any TLS certificate (for self-signed test servers).
    #[arg(long)]
    pub insecure: bool,
}

/// Runs `ssegate probe`; returns the exit code.
pub fn run(args: ProbeArgs) -> i32 {
    // Pingora logs its own view of connection failures; the probe reports them itself, once.
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Off);
    }
    match execute(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ssegate probe: {e}");
            if args.json {
                let doc = serde_json::json!({
                    "url": args.url,
                    "exit_code": e.exit_code(),
                    "error": { "class": e.class(), "message": e.to_string() },
                });
                println!("{doc}");
            }
            e.exit_code()
        }
    }
}

fn execute(args: &ProbeArgs) -> Result<i32, ProbeError> {
    let first = build_request(args, &args.url)?;
    let second = args
        .compare
        .as_deref()
        .map(|url| build_request(args, url))
        .transpose()?;
    // Pingora's connector panics on an unreadable SSL_CERT_FILE/SSL_CERT_DIR: check first.
    pingora::tls::load_platform_certs_incl_env_into_store(
        &mut pingora::tls::RootCertStore::empty(),
    )
    .map_err(|e| ProbeError::Input(format!("loading CA certificates: {e}")))?;
    let connector = Connector::new(None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ProbeError::Input(format!("starting the runtime: {e}")))?;
    let quiet = args.json;
    // Column heads come with the first event, so that an error prints none.
    let heads = Cell::new(false);
    let Some(second) = second else {
        let outcome = rt.block_on(probe(&first, &connector, "", &heads, quiet));
        if quiet {
            println!("{}", report::json(&outcome));
        } else {
            print_outcome(&outcome);
        }
        return Ok(outcome.exit_code());
    };
    if !quiet {
        println!("1 = {}\n2 = {}", first.target.url, second.target.url);
    }
    let (a, b) = rt.block_on(async {
        tokio::join!(
            probe(&first, &connector, "1  ", &heads, quiet),
            probe(&second, &connector, "2  ", &heads, quiet)
        )
    });
    let code = match a.exit_code() {
        0 => b.exit_code(),
        c => c,
    };
    if quiet {
        println!("{}", report::compare_json(&a, &b, code));
    } else {
        print!("{}", report::compare_text(&a, &b));
        for o in [&a, &b] {
            if let Err(e) = &o.result {
                eprintln!("ssegate probe: {}: {e}", o.url);
            }
        }
    }
    Ok(code)
}

fn print_outcome(o: &Outcome) {
    match &o.result {
        Ok(_) => print!("{}", report::text(o)),
        Err(e) => eprintln!("ssegate probe: {e}"),
    }
}

/// One probe, printing live lines prefixed with `label` unless `quiet`; `heads` turns true
/// once the column heads are printed.
async fn probe(
    req: &ProbeRequest,
    connector: &Connector,
    label: &str,
    heads: &Cell<bool>,
    quiet: bool,
) -> Outcome {
    let mut live = |p: Progress<'_>| {
        if quiet {
            return;
        }
        match p {
            Progress::Head { status, at } => println!("{}", report::head_line(label, status, at)),
            Progress::Event(e) => {
                if !heads.replace(true) {
                    println!("{}", report::event_heads(&" ".repeat(label.len())));
                }
                println!("{}", report::event_line(label, e));
            }
        }
    };
    let result = fetch(req, connector, &mut live).await.map(judge);
    Outcome {
        url: req.target.url.clone(),
        method: req.method.to_string(),
        result,
    }
}

/// Judges a completed exchange.
fn judge(exchange: fetch::Exchange) -> Judged {
    let tl = &exchange.timeline;
    let arrivals = tl.arrivals();
    let text_arrivals: Vec<_> = tl
        .events
        .iter()
        .filter(|e| e.text_chars > 0)
        .map(|e| e.at)
        .collect();
    let (ct, ce, cl) = (
        exchange.header("content-type"),
        exchange.header("content-encoding"),
        exchange.header("content-length"),
    );
    let verdict = verdict::judge(&verdict::Facts {
        content_type: ct.as_deref(),
        content_encoding: ce.as_deref(),
        content_length: cl.as_deref(),
        arrivals: &arrivals,
        text_arrivals: &text_arrivals,
        body_bytes: tl.bytes,
        dialect: tl.dialect,
        end_marker: tl.end_marker,
        end: &exchange.end,
        decode_error: tl.decode_error.as_deref(),
    });
    let notes = hops::header_notes(|name| exchange.header(name));
    Judged {
        exchange,
        verdict,
        notes,
    }
}
