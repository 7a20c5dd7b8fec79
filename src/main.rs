//! The `junction` command line.
//!
//! ```text
//! junction                      run with the embedded default configuration
//! junction --config FILE        run with FILE
//! junction check FILE           validate FILE: print every problem (exit 1) or the warnings
//!                               and a summary (exit 0)
//! junction route-test FILE ...  how FILE routes a call (or a file of calls), step by step
//! junction --help | --version
//! ```
//!
//! Exit codes: 0 success; 1 `check` found problems, or running failed; 2 the configuration
//! could not be loaded, or the command line is wrong.
//!
//! The offline commands live in `cli/` (`check.rs`, `route_test.rs`).

mod cli;

use std::process::ExitCode;

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const USAGE_TEMPLATE: &str = "\
junction: a SIP inter-trunk router

Usage:
  junction                    run with the embedded default configuration
                              (listens on udp:127.0.0.1:5060, routes every number to
                              a trunk at 127.0.0.1:5070)
  junction --config FILE      run with the configuration in FILE
  junction check FILE         validate FILE; print every problem as file:line: key: message
                              (exit 1), or the warnings (unreachable routes, hairpin risk)
                              and a summary (exit 0)
{ROUTE_TEST}  junction --help             this text
  junction --version          the version

The configuration keys are documented in tuning/junction.toml.
";

fn usage() -> String {
    USAGE_TEMPLATE.replace(
        "{ROUTE_TEST}",
        &format!("{}{}", cli::route_test::USAGE, cli::trunks::USAGE),
    )
}

enum Command {
    Run(Option<String>),
    Check(String),
    RouteTest(cli::route_test::Args),
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
        [cmd, rest @ ..] if cmd == "route-test" => {
            cli::route_test::parse(rest).map(Command::RouteTest)
        }
        [cmd] if cmd == "check" => Err("check needs the configuration file to check".into()),
        [flag] if flag == "--config" || flag == "-c" => {
            Err(format!("{flag} needs a configuration file"))
        }
        _ => Err(format!("unexpected arguments: {}", args.join(" "))),
    }
}

/// The offline commands print to stdout like any Unix tool: when the reader goes away
/// (`junction check f | head`), end quietly instead of panicking in `println!`. Not for the
/// server, which must never die of a signal a peer can provoke.
fn default_sigpipe() {
    // SAFETY: restores the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(("trunks", rest)) = args.split_first().map(|(c, r)| (c.as_str(), r)) {
        return cli::trunks::run(rest);
    }
    let command = parse_args(&args);
    if matches!(command, Ok(Command::Check(_) | Command::RouteTest(_))) {
        default_sigpipe();
    }
    match command {
        Ok(Command::Help) => {
            print!("{}", usage());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("junction {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Check(file)) => cli::check::run(&file),
        Ok(Command::RouteTest(args)) => cli::route_test::run(&args),
        Ok(Command::Run(file)) => run(file.as_deref()),
        Err(message) => {
            eprintln!("junction: {message}\n\n{}", usage());
            ExitCode::from(2)
        }
    }
}

/// No transparent huge pages for this process. mimalloc asks for them on its arena, and then
/// the first touch of each new 2 MiB of call and transaction state zeroes the whole huge page
/// inside one datagram's handling: under a 40% CPU quota at 11,000 calls/s single datagrams
/// took 6-11 ms of a shard's CPU, ~500 receive rounds in 15 s took over 1 ms, and overload
/// control read the stalls as overload (with 4 KiB pages: ~200 such rounds, and one run
/// answered 11,000 calls/s against 9,768). Applies to every mapping from now on, the
/// arena's included (PR_SET_THP_DISABLE, Linux 3.15).
fn disable_transparent_huge_pages() {
    // SAFETY: prctl with these arguments only sets a flag on this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        eprintln!("junction: transparent huge pages stay enabled: {err}");
    }
}

fn run(file: Option<&str>) -> ExitCode {
    let config = match cli::load(file) {
        Ok((config, _)) => config,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    disable_transparent_huge_pages();
    match junction::shard::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("junction: {message}");
            ExitCode::from(1)
        }
    }
}
