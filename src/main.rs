//! The `ssegate` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use ssegate::{config, demo, server::Gate};

/// An edge reverse proxy for web apps that stream LLM output with Server-Sent Events.
#[derive(Parser)]
#[command(name = "ssegate", version, about)]
struct Cli {
    /// Config file (same as `ssegate run -c FILE`).
    #[arg(short = 'c', long = "config", global = false)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with a config file.
    Run {
        /// Config file.
        #[arg(short = 'c', long = "config", default_value = "conf/ssegate.yaml")]
        config: PathBuf,
    },
    /// Validate a config file and print a summary; exit 1 on error.
    Check {
        /// Config file.
        #[arg(short = 'c', long = "config", default_value = "conf/ssegate.yaml")]
        config: PathBuf,
    },
    /// Run ssegate in front of a built-in streaming model (nothing else to start).
    Demo {
        /// Public listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin listener (/metrics, /streams, /healthz).
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// Pause between two tokens of the demo model.
        #[arg(long, default_value = "80ms", value_parser = humantime::parse_duration)]
        token_interval: Duration,
        /// How long the demo model takes to "load" on its first request.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        load_delay: Duration,
    },
    /// Probe a stream from the outside: does it stream, or does some hop buffer it?
    Probe(ssegate::probe::ProbeArgs),
    /// Print the ssegate YAML equivalent to an nginx config; what does not translate goes to stderr.
    ConvertNginx {
        /// nginx.conf to translate
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let command = match (cli.command, cli.config) {
        (Some(c), _) => c,
        (None, Some(config)) => Command::Run { config },
        (None, None) => Command::Run {
            config: PathBuf::from("conf/ssegate.yaml"),
        },
    };
    match command {
        Command::Probe(args) => {
            ExitCode::from(u8::try_from(ssegate::probe::run(args)).unwrap_or(1))
        }
        Command::ConvertNginx { file } => convert_nginx(&file),
        Command::Check { config } => match config::load(&config) {
            Ok(cfg) => {
                print!("{}", config::summary(&cfg));
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Command::Run { config } => match config::load(&config) {
            Ok(cfg) => match Gate::new(cfg, Some(config)) {
                Ok(gate) => gate.run(),
                Err(e) => fail(e),
            },
            Err(e) => fail(e),
        },
        Command::Demo {
            listen,
            admin,
            token_interval,
            load_delay,
        } => match demo::run(demo::DemoOptions {
            listen,
            admin,
            token_interval,
            load_delay,
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
    }
}

/// `convert-nginx`: the YAML on stdout, one note per line on stderr.
fn convert_nginx(file: &std::path::Path) -> ExitCode {
    match ssegate::nginx::convert(file) {
        Ok(conversion) => {
            print!("{}", conversion.yaml);
            for note in &conversion.notes {
                eprintln!("{note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The notes say why nothing usable was left.
            for note in e.notes() {
                eprintln!("{note}");
            }
            fail(e)
        }
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("ssegate: {e}");
    ExitCode::FAILURE
}
