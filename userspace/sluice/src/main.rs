//! `sluice`: the daemon's command line.
//!
//! The daemon wires the crates together (docs/design.md); protocol logic lives in them,
//! not here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod serve;

/// mimalloc rather than glibc's malloc: see Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sluice: a userspace TCP/IPv4 stack on AF_XDP, serving DNS over TCP.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve an example zone over AF_XDP on a two-namespace veth pair, show answers
    /// fetched with kdig (and through Unbound), load it and the kernel-socket servers
    /// (sluice's kernel backend, Knot DNS) side by side with sluice-bench, print one
    /// table and write a latency plot, then tear everything down. `--echo`: the TCP
    /// stack alone with an echo service. Needs root.
    Demo(demo::DemoArgs),
    /// Serve TCP ports with built-in handlers (dns, echo, discard) until SIGINT/SIGTERM,
    /// then drain and exit; SIGHUP reloads the zones.
    Serve(Box<serve::ServeArgs>),
    /// Check a zone file: prints each problem with its line, exits non-zero if any.
    CheckZone {
        /// The zone file.
        file: std::path::PathBuf,
        /// The zone's name, when the file does not set $ORIGIN.
        #[arg(long)]
        name: Option<String>,
    },
    /// Print a running daemon's counters, per worker.
    Stats {
        /// The daemon's control socket.
        #[arg(long, default_value = serve::DEFAULT_CONTROL)]
        control: std::path::PathBuf,
        /// The same counters as one JSON document, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Make a running daemon reload its zones (as SIGHUP does), and say how it went:
    /// an error, and the old zones still served, when a zone does not load.
    Reload {
        /// The daemon's control socket.
        #[arg(long, default_value = serve::DEFAULT_CONTROL)]
        control: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args).map_err(|e| e.to_string()),
        Command::Serve(args) => serve::run(&args).map_err(|e| e.to_string()),
        Command::CheckZone { file, name } => {
            serve::check_zone(&file, name.as_deref()).map_err(|e| e.to_string())
        }
        Command::Stats { control, json } => {
            serve::print_stats(&control, json).map_err(|e| e.to_string())
        }
        Command::Reload { control } => serve::reload(&control).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "sluice",
            "serve",
            "--addr",
            "198.18.0.1",
            "--listen",
            "7=echo",
            "--cores",
            "0-1",
            "--backend",
            "kernel",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Serve(_)));
        assert!(Cli::try_parse_from(["sluice", "serve", "--listen", "7=bogus"]).is_err());
        assert!(Cli::try_parse_from(["sluice", "demo", "--queues", "1"]).is_ok());
    }
}
