//! The `backchannel` binary: parse, configure, run a command, print errors people can act on.
#![forbid(unsafe_code)]

mod args;
mod commands;
mod config;
mod demo;
mod render;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = args::Cli::parse();
    let json = matches!(&cli.command, args::Command::Relay(r) if relay_logs_json(r));
    init_logging(cli.verbose, json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `relay --log-format json`, or `log-format = "json"` in its `--config` file (read here only
/// for this; the relay reads and checks the whole file later).
fn relay_logs_json(r: &args::RelayArgs) -> bool {
    if let Some(format) = &r.log_format {
        return format == "json";
    }
    let file = r.config.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
    let table = file.and_then(|text| text.parse::<toml::Table>().ok());
    table.is_some_and(|t| t.get("log-format").and_then(toml::Value::as_str) == Some("json"))
}

/// Logs go to stderr: readable text, or one JSON object per line (`relay --log-format json`,
/// for log shippers).
fn init_logging(verbose: u8, json: bool) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    if json {
        tracing_subscriber::fmt().json().with_max_level(level).with_writer(std::io::stderr).init();
        return;
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_max_level(level).with_ansi(ansi).with_writer(std::io::stderr).init();
}

/// `backchannel read X | head` must end quietly when `head` closes the pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
