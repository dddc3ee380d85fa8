//! `loadgen`: ssegate's benchmark load tool.
//!
//! It plays both ends of a proxy: `upstream` streams stamped SSE events, `client` opens many
//! streams through a target and measures every event's delay, `wrk` wraps wrk for plain
//! requests, `wait` readies a target, and `table` renders the results. `bench/run.sh` drives
//! them against nginx, haproxy and ssegate.

mod client;
mod clock;
mod http;
mod procfs;
mod rounds;
mod stats;
mod table;
mod upstream;
mod wait;
mod wrk;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "loadgen", about = "ssegate's benchmark load tool")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve stamped SSE streams (`/stream?n=N&iv=US`) and a small `/plain` response.
    Upstream(upstream::Args),
    /// Open streams through a target and print one JSON line of measurements.
    Client(client::Args),
    /// Run wrk against a target while sampling it, and print one JSON line.
    Wrk(wrk::Args),
    /// Wait until a target proxies requests, then warm it up.
    Wait(wait::Args),
    /// Print the results table from JSON lines files.
    Table(table::Args),
}

/// A tokio runtime with `threads` workers (one: the lighter current-thread scheduler).
pub(crate) fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    let mut b = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    b.enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Upstream(a) => upstream::main(a),
        Cmd::Client(a) => client::main(a),
        Cmd::Wrk(a) => wrk::main(a),
        Cmd::Wait(a) => wait::main(a),
        Cmd::Table(a) => table::main(a),
    };
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}
