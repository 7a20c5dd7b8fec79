//! The `junction` command line (definitions in `cli/args.rs`, on clap).
//!
//! ```text
//! junction                      run with the embedded default configuration
//! junction --config FILE        run with FILE
//! junction check FILE           validate FILE (and its cores and cpus against this host):
//!                               print every problem (exit 1) or the warnings and a summary
//! junction route-test FILE ...  how FILE routes a call (or a file of calls), step by step
//! junction reload [--config FILE | --metrics ADDR]
//!                               reload the running junction; exit 1 when refused
//! junction doctor [--config FILE]
//!                               check this host (limits, buffers, io_uring, THP, governor)
//! junction completions SHELL | junction man
//! junction [COMMAND] --help | --version
//! ```
//!
//! Exit codes: 0 success; 1 `check` found problems, a reload was refused, `doctor` found a
//! problem, or running failed; 2 the configuration could not be loaded, or the command line
//! is wrong.
//!
//! The offline commands live in `cli/` (`check.rs`, `route_test.rs`, `reload.rs`,
//! `host.rs`).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;

use cli::args::{Cli, Command};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version (exit 0, stdout) or a usage error (exit 2, stderr).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let Some(command) = cli.command else {
        return run(cli.config.as_deref());
    };
    default_sigpipe();
    match command {
        Command::Check(args) => cli::check::run(&args),
        Command::RouteTest(args) => cli::route_test::run(&args.into_args()),
        Command::Reload(args) => cli::reload::run(&args),
        Command::Trunks(args) => cli::trunks::run(&args.into_words()),
        Command::Doctor(args) => cli::host::doctor(&args),
        Command::Completions { shell } => cli::generate::completions(shell),
        Command::Man { out_dir } => cli::generate::man(out_dir.as_deref()),
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
    if let Err(message) = cli::host::memlock_preflight() {
        eprintln!("junction: {message}");
        return ExitCode::from(1);
    }
    disable_transparent_huge_pages();
    match junction::shard::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("junction: {message}");
            if let Some(advice) = cli::host::startup_advice(&message) {
                eprintln!("junction: {advice}");
            }
            ExitCode::from(1)
        }
    }
}
