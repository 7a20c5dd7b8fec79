//! The `junction` command line.
//!
//! ```text
//! junction                      run with the embedded default configuration
//! junction --config FILE        run with FILE
//! junction check FILE           validate FILE: print every problem (exit 1) or a summary (exit 0)
//! junction --help | --version
//! ```
//!
//! Exit codes: 0 success; 1 `check` found problems, or running failed; 2 the configuration
//! could not be loaded, or the command line is wrong.

use std::path::Path;
use std::process::ExitCode;

use junction::config::{self, Config, ConfigError};
use junction::routing::RoutingTable;
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const USAGE: &str = "\
junction: a SIP inter-trunk router

Usage:
  junction                    run with the embedded default configuration
                              (listens on udp:127.0.0.1:5060, routes every number to
                              a trunk at 127.0.0.1:5070)
  junction --config FILE      run with the configuration in FILE
  junction check FILE         validate FILE; print every problem as file:line: key: message
                              (exit 1), or a summary (exit 0)
  junction --help             this text
  junction --version          the version

The configuration keys are documented in tuning/junction.toml.
";

enum Command {
    Run(Option<String>),
    Check(String),
    Help,
    Version,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    match args {
        [] => Ok(Command::Run(None)),
        [flag] if flag == "--help" || flag == "-h" || flag == "help" => Ok(Command::Help),
        [flag] if flag == "--version" || flag == "-V" => Ok(Command::Version),
        [flag, file] if flag == "--config" || flag == "-c" => Ok(Command::Run(Some(file.clone()))),
        [flag] if flag.starts_with("--config=") => Ok(Command::Run(Some(
            flag.trim_start_matches("--config=").to_string(),
        ))),
        [cmd, file] if cmd == "check" => Ok(Command::Check(file.clone())),
        [cmd] if cmd == "check" => Err("check needs the configuration file to check".into()),
        [flag] if flag == "--config" || flag == "-c" => {
            Err(format!("{flag} needs a configuration file"))
        }
        _ => Err(format!("unexpected arguments: {}", args.join(" "))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("junction {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Check(file)) => check(&file),
        Ok(Command::Run(file)) => run(file.as_deref()),
        Err(message) => {
            eprintln!("junction: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Load a file (or the embedded default) and make sure it compiles.
fn load(file: Option<&str>) -> Result<(Config, RoutingTable), Vec<ConfigError>> {
    let config = match file {
        Some(f) => config::load(Path::new(f))?,
        None => config::parse(config::EMBEDDED_DEFAULT, config::EMBEDDED_SOURCE)?,
    };
    let table = RoutingTable::compile(&config)?;
    Ok((config, table))
}

fn check(file: &str) -> ExitCode {
    match load(Some(file)) {
        Ok((config, table)) => {
            println!("{}", summary(&config, &table));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            let n = errors.len();
            eprintln!("{file}: {n} problem{} found", if n == 1 { "" } else { "s" });
            ExitCode::from(1)
        }
    }
}

fn summary(config: &Config, table: &RoutingTable) -> String {
    let s = &config.server;
    let egress = config.trunks.iter().filter(|t| t.send_to.is_some()).count();
    let patterns = config.routes.iter().filter(|r| r.pattern.is_some()).count();
    let metrics = s
        .metrics
        .map_or_else(|| "off".to_string(), |m| m.to_string());
    format!(
        "{}: ok\n  server: {}, listen udp:{}, advertise {}, metrics {}\n  \
         trunks: {} ({} with send_to, {})\n  \
         routes: {} ({} by pattern, {} by prefix, {})",
        config.source,
        count(s.cores, "shard"),
        s.listen,
        s.advertise,
        metrics,
        config.trunks.len(),
        egress,
        count(table.peers_len(), "peer entry"),
        config.routes.len(),
        patterns,
        config.routes.len() - patterns,
        count(table.prefixes_len(), "prefix"),
    )
}

fn count(n: usize, what: &str) -> String {
    match (n, what.strip_suffix('y')) {
        (1, _) => format!("1 {what}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ if what.ends_with('x') => format!("{n} {what}es"),
        _ => format!("{n} {what}s"),
    }
}

fn run(file: Option<&str>) -> ExitCode {
    let config = match load(file) {
        Ok((config, _)) => config,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    match junction::shard::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("junction: {message}");
            ExitCode::from(1)
        }
    }
}
