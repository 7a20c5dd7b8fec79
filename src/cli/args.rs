//! The command line of `junction`, on clap: `--help` and `--version` on every command, errors
//! with a did-you-mean for mistyped flags and commands, and the shell completions and man page
//! (`junction completions SHELL`, `junction man`) generated from these same definitions.

use std::net::SocketAddr;

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

/// Shown after the top-level `--help`: the commands as an operator types them.
const EXAMPLES: &str = "\
Examples:
  junction                      run with the embedded default configuration (listens on
                                udp:127.0.0.1:5060, routes every number to a trunk at
                                127.0.0.1:5070)
  junction --config FILE        run with the configuration in FILE
  junction check FILE           validate FILE; print every problem as file:line: key: message
                                (exit 1), or the warnings (unreachable routes, hairpin risk,
                                shards sharing a CPU) and a summary (exit 0)
  junction route-test FILE --from pbx-nyc --called 2125551234
                                how FILE routes one call, step by step
  junction reload --config FILE reload the running junction (POST /reload on the management
                                address of FILE); exit 1 when the reload was refused
  junction trunks disable gw-a  take trunk gw-a out of service in the running junction (POST
                                /trunks/gw-a/disable on its management address); `enable`
                                brings it back, `junction trunks` lists the trunks
  junction doctor --config FILE check this host for junction: memlock and file limits, socket
                                buffers, io_uring, THP, CPU governor, with the fix for each

Exit codes: 0 success; 1 `check` found problems, a reload was refused, `doctor` found a
problem, or running failed; 2 the configuration could not be loaded, or the command line is
wrong.

The configuration keys are documented in tuning/junction.toml.";

/// junction: a carrier-scale SIP inter-trunk router.
#[derive(Debug, Parser)]
#[command(
    name = "junction",
    version,
    about = "a carrier-scale SIP inter-trunk router",
    long_about = "junction: a carrier-scale SIP inter-trunk router (a transaction-stateful SIP \
                  proxy, one shard per CPU on io_uring). Without a command it runs: with the \
                  configuration given by --config, or the embedded default.",
    after_help = EXAMPLES,
    propagate_version = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Run with the configuration in FILE (default: the embedded configuration).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration file, and its cores and cpus against this host.
    #[command(
        long_about = "Validate a configuration file. Every problem is printed as \
                      file:line: key: message (exit 1); otherwise the warnings (unreachable \
                      routes, hairpin risk, shards sharing a CPU) and a summary (exit 0). \
                      `cores` and `cpus` are checked against the CPUs this process may run on \
                      (sched_getaffinity) unless --no-host is given."
    )]
    Check(CheckArgs),
    /// How a configuration routes a call (or a file of calls), step by step.
    #[command(name = "route-test", long_about = ROUTE_TEST_ABOUT)]
    RouteTest(RouteTestArgs),
    /// Reload the running junction's configuration (POST /reload on its management address).
    #[command(long_about = RELOAD_ABOUT)]
    Reload(ReloadArgs),
    /// Check this host for junction and say what to change.
    #[command(long_about = DOCTOR_ABOUT)]
    Doctor(DoctorArgs),
    /// The trunks of a running junction; take one out of service and back.
    #[command(long_about = TRUNKS_ABOUT)]
    Trunks(TrunksArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        long_about = "Print the completion script for SHELL, generated from the same \
                      definitions as --help. For bash: \
                      junction completions bash > /usr/share/bash-completion/completions/junction"
    )]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff), generated from the same definitions as --help.
    #[command(
        long_about = "Print the man page junction(1) in roff, generated from the same \
                      definitions as --help: junction man | man -l -. With --out-dir, write \
                      junction.1 and one page per command (junction-check.1, ...) there."
    )]
    Man {
        /// Write junction.1 and junction-COMMAND.1 into this directory instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The configuration file to check.
    #[arg(value_name = "FILE")]
    pub file: String,
    /// Skip the checks against this host's CPUs (when the file is for another machine).
    #[arg(long, conflicts_with = "host")]
    pub no_host: bool,
    /// Also run `junction doctor` on this host (limits, buffers, io_uring, ...).
    #[arg(long)]
    pub host: bool,
}

const ROUTE_TEST_ABOUT: &str = "How CONFIG routes one call, evaluated offline, every step: the \
ingress trunk and the peer entry that matched, the inbound rules applied, the usage walk, \
every attempt with its translated numbers, or the final answer when nothing routes. With \
--file CALLS, one compact line per call of CALLS (lines \"from,called[,calling]\"; # comments \
and blank lines skipped); call n of the file (from 0) uses rotation N + n.";

#[derive(Debug, Args)]
pub struct RouteTestArgs {
    /// The configuration to evaluate.
    #[arg(value_name = "CONFIG")]
    pub config: String,
    /// Where the call comes from: a trunk name, or an IP address with an optional port.
    #[arg(long, value_name = "TRUNK|IP[:PORT]", required_unless_present = "file")]
    pub from: Option<String>,
    /// The called number.
    #[arg(long, value_name = "NUMBER", required_unless_present = "file")]
    pub called: Option<String>,
    /// The calling number.
    #[arg(long, value_name = "NUMBER")]
    pub calling: Option<String>,
    /// A file of calls, one "from,called[,calling]" per line (replaces --from and --called).
    #[arg(long, value_name = "CALLS", conflicts_with_all = ["from", "called", "calling"])]
    pub file: Option<String>,
    /// The round-robin counter.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rotation: u64,
    /// Treat these trunks as down or full (comma-separated; may be repeated).
    #[arg(long, value_name = "T1,T2", value_delimiter = ',')]
    pub down: Vec<String>,
    /// With --file: text (readable), or tsv / csv (one machine-readable line per call, what
    /// junction-load --expect reads).
    #[arg(long, value_name = "FORMAT", default_value = "text", requires = "file",
          value_parser = ["text", "tsv", "csv"])]
    pub format: String,
    /// The time for routes with `when` windows: 2026-12-24T20:00 (UTC), with an offset
    /// (2026-12-24T20:00+01:00) or a zone (2026-12-24T20:00[Europe/Paris]); default now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

impl RouteTestArgs {
    pub fn into_args(self) -> super::route_test::Args {
        super::route_test::Args {
            config: self.config,
            from: self.from,
            called: self.called,
            calling: self.calling,
            file: self.file,
            rotation: self.rotation,
            at: self.at,
            format: match self.format.as_str() {
                "tsv" => super::route_test::Format::Tsv,
                "csv" => super::route_test::Format::Csv,
                _ => super::route_test::Format::Text,
            },
            down: self
                .down
                .into_iter()
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect(),
        }
    }
}

const TRUNKS_ABOUT: &str = "The trunks of a running junction, through its management port \
(GET /trunks): health, why a trunk is down, limits, calls. `disable NAME` takes a trunk out of \
service (POST /trunks/NAME/disable: new calls skip it, calls up continue; kept across reloads, \
not a restart), `enable NAME` brings it back, `show NAME` shows one. The address is --metrics, \
else the [server] metrics key of --config, else 127.0.0.1:9090. Exit 1 when junction refused or \
could not be reached, 2 for bad arguments.";

#[derive(Debug, Args)]
pub struct TrunksArgs {
    /// The management address of the running junction.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "config")]
    pub metrics: Option<String>,
    /// The configuration whose [server] metrics address to use.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<String>,
    /// Print the JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// list (default), show NAME, disable NAME or enable NAME.
    #[arg(value_name = "ACTION", value_parser = ["list", "show", "disable", "enable"])]
    pub action: Option<String>,
    /// The trunk, for show, disable and enable.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

impl TrunksArgs {
    /// The words `cli::trunks::run` takes.
    pub fn into_words(self) -> Vec<String> {
        let mut words = Vec::new();
        if let Some(m) = self.metrics {
            words.extend(["--metrics".to_string(), m]);
        }
        if let Some(c) = self.config {
            words.extend(["--config".to_string(), c]);
        }
        if self.json {
            words.push("--json".to_string());
        }
        words.extend(self.action);
        words.extend(self.name);
        words
    }
}

const RELOAD_ABOUT: &str = "Ask the running junction to reload its configuration file: POST \
/reload on the management (metrics) address, taken from --metrics or from the [server] metrics \
key of the configuration (--config, default /etc/junction/junction.toml). The server re-reads \
the file it was started with. Prints the server's report; exits 1, printing the reason, when \
the reload was refused (the running configuration stays), 2 when the server cannot be asked. \
For systemd's ExecReload.";

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The configuration whose [server] metrics address to use.
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "/etc/junction/junction.toml"
    )]
    pub config: String,
    /// The management address to POST to (instead of the configuration's).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Seconds to wait for the answer (a large prefix file takes a while to compile).
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub timeout: u64,
}

const DOCTOR_ABOUT: &str = "Check this host for junction and say what to change: the memlock \
limit (glommio's io_uring memory), the open-file limit, net.core.rmem_max and wmem_max against \
the socket buffers junction asks for, whether io_uring can be set up, transparent huge pages, \
the CPU frequency governor of the shards' CPUs, and the placement of the shards on the CPUs \
this process may run on. Exit 0 when nothing must change (warnings are advice; with --strict \
they count), 1 when something must.";

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The configuration junction runs with (default: the embedded default).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<String>,
    /// Exit 1 on warnings too.
    #[arg(long)]
    pub strict: bool,
}

/// The clap command, for completions and the man page.
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("junction").chain(list.iter().copied()))
    }

    fn route_test(list: &[&str]) -> Result<super::super::route_test::Args, clap::Error> {
        let mut all = vec!["route-test"];
        all.extend_from_slice(list);
        match parse(&all)?.command {
            Some(Command::RouteTest(a)) => Ok(a.into_args()),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn definitions_are_consistent() {
        command().debug_assert();
    }

    #[test]
    fn route_test_arguments() {
        let a = route_test(&[
            "c.toml",
            "--from",
            "pbx",
            "--called=123",
            "--down",
            "a,b",
            "--rotation",
            "2",
        ])
        .map_err(|e| e.to_string());
        assert_eq!(
            a,
            Ok(super::super::route_test::Args {
                config: "c.toml".into(),
                from: Some("pbx".into()),
                called: Some("123".into()),
                rotation: 2,
                down: vec!["a".into(), "b".into()],
                ..Default::default()
            })
        );
        assert!(route_test(&["c.toml", "--from", "pbx"]).is_err());
        assert!(route_test(&["c.toml", "--called", "1"]).is_err());
        assert!(route_test(&["--from", "pbx", "--called", "1"]).is_err());
        assert!(route_test(&["c.toml", "--file", "f", "--from", "x"]).is_err());
        assert!(route_test(&["c.toml", "--file", "f", "--calling", "x"]).is_err());
        assert!(route_test(&["c.toml", "d.toml", "--file", "f"]).is_err());
        assert!(route_test(&["c.toml", "--file"]).is_err());
        assert!(route_test(&["c.toml", "--rotation", "x", "--file", "f"]).is_err());
        assert!(route_test(&["c.toml", "--frob", "1"]).is_err());
        assert!(route_test(&["c.toml", "--file", "f"]).is_ok());
        let down = route_test(&["c.toml", "--file", "f", "--down", "a,", "--down", " b"]);
        assert_eq!(
            down.map(|a| a.down).ok(),
            Some(vec!["a".into(), "b".into()])
        );
        let at = route_test(&["c.toml", "--file", "f", "--at", "2026-12-24T20:00"]);
        assert_eq!(at.map(|a| a.at).ok(), Some(Some("2026-12-24T20:00".into())));
    }

    #[test]
    fn trunks_arguments() {
        let words = |list: &[&str]| {
            let mut all = vec!["trunks"];
            all.extend_from_slice(list);
            match parse(&all).map(|c| c.command) {
                Ok(Some(Command::Trunks(t))) => Ok(t.into_words()),
                other => Err(format!("{other:?}")),
            }
        };
        assert_eq!(words(&[]), Ok(Vec::<String>::new()));
        assert_eq!(
            words(&["--metrics", "127.0.0.1:9", "--json", "disable", "gw-a"]),
            Ok(["--metrics", "127.0.0.1:9", "--json", "disable", "gw-a"]
                .map(String::from)
                .to_vec())
        );
        assert!(words(&["frob", "gw-a"]).is_err());
        assert!(words(&["--metrics", "a:1", "--config", "f"]).is_err());
    }

    #[test]
    fn running_takes_a_config_or_nothing() {
        let run = parse(&[]).map(|c| (c.config, c.command.is_none()));
        assert_eq!(run.ok(), Some((None, true)));
        for args in [&["--config", "f"][..], &["-c", "f"], &["--config=f"]] {
            let c = parse(args).map(|c| c.config).ok();
            assert_eq!(c, Some(Some("f".to_string())), "{args:?}");
        }
        // A command and a configuration to run with are not both given.
        assert!(parse(&["--config", "f", "check", "g"]).is_err());
    }

    #[test]
    fn a_mistyped_flag_gets_a_suggestion() {
        let err = parse(&["check", "--no-hots", "f"]).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("--no-host"), "{err}");
        let err = parse(&["--confg", "f"]).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("--config"), "{err}");
    }
}
