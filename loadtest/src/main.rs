//! `junction-load`: parse the command line, run, print the summary, write the JSON, and exit
//! non-zero when the failures pass the threshold given with --max-failures.

use junction_load::cli::{self, Threshold};
use junction_load::flood;
use junction_load::numbers_cmd;
use junction_load::probe;
use junction_load::report;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    let own_parser = match args.first().map(String::as_str) {
        Some("flood") => Some(("flood", flood::USAGE, flood as fn(&[String]) -> ExitCode)),
        Some("probe") => Some(("probe", probe::USAGE, probe as fn(&[String]) -> ExitCode)),
        Some("numbers") => Some((
            "numbers",
            numbers_cmd::USAGE,
            numbers_cmd::main as fn(&[String]) -> ExitCode,
        )),
        _ => None,
    };
    if let Some((name, usage, run)) = own_parser {
        if rest.iter().any(|a| a == "--version" || a == "-V") {
            println!("junction-load {name} {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        if let Some(e) = cli::unknown_option(rest, usage) {
            eprintln!("junction-load {name}: {e}");
            return ExitCode::from(2);
        }
        return run(rest);
    }
    let plan = match cli::parse_cli(&args) {
        Ok(p) => p,
        Err(cli::Stop::Info(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(cli::Stop::Usage(e)) if e.starts_with("junction-load") => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
        Err(cli::Stop::Usage(e)) => {
            eprintln!("junction-load: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match junction_load::io::run(&plan) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("junction-load: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report::summary(&outcome));
    if let Some(path) = &plan.json {
        let text = serde_json::to_string_pretty(&report::json(&outcome)).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("junction-load: --json {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let failures = report::failure_total(&outcome);
    // The calls placed: those withheld by overload control (--oc) were never sent, so they
    // are neither failures nor calls for the percentage.
    let calls = outcome
        .uac
        .as_ref()
        .map(|u| u.started.saturating_sub(u.throttled))
        .or(outcome.uas.as_ref().map(|u| u.uas_calls))
        .unwrap_or(0);
    let over = match plan.max_failures {
        Some(Threshold::Count(n)) => failures > n,
        Some(Threshold::Percent(p)) => failures as f64 > p / 100.0 * calls as f64,
        None => false,
    };
    if over {
        eprintln!("junction-load: {failures} failures exceed --max-failures");
        return ExitCode::from(1);
    }
    let misrouted = outcome.uac.as_ref().map_or(0, |u| u.misrouted());
    if misrouted > 0 {
        eprintln!("junction-load: {misrouted} calls misrouted (--expect)");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// `junction-load flood ...`: exit 0 when the run completed (what came back is for the caller
/// to judge), 2 for usage or start-up errors.
fn flood(args: &[String]) -> ExitCode {
    let plan = match flood::parse(args) {
        Ok(p) => p,
        Err(e) if e.is_empty() => {
            print!("{}", flood::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("junction-load flood: {e} (junction-load flood --help)");
            return ExitCode::from(2);
        }
    };
    let outcome = match flood::run(&plan) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("junction-load flood: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", outcome.summary());
    if let Some(path) = &plan.json {
        let text = serde_json::to_string_pretty(&outcome.json()).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("junction-load flood: --json {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// `junction-load probe ...`: exit 0 at the end of --duration, 2 for usage or start-up errors.
fn probe(args: &[String]) -> ExitCode {
    let plan = match probe::parse(args) {
        Ok(p) => p,
        Err(e) if e.is_empty() => {
            print!("{}", probe::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("junction-load probe: {e} (junction-load probe --help)");
            return ExitCode::from(2);
        }
    };
    match probe::run(&plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("junction-load probe: {e}");
            ExitCode::from(2)
        }
    }
}
