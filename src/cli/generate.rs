//! `junction completions SHELL` and `junction man`: generated at run time from the clap
//! definitions in `args.rs`, so they can never disagree with `--help`. (A build script would
//! need those definitions compiled twice and would slow every build; the package build runs
//! these two commands on the binary it packages.)

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap_complete::Shell;

use super::args;

pub fn completions(shell: Shell) -> ExitCode {
    let mut command = args::command();
    clap_complete::generate(shell, &mut command, "junction", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// junction(1) on stdout, or junction.1 and junction-COMMAND.1 for every command into `dir`.
pub fn man(dir: Option<&Path>) -> ExitCode {
    let command = args::command();
    let result = match dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .and_then(|()| out.flush())
        }
        Some(dir) => write_pages(command, dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("junction: writing the man page: {e}");
            ExitCode::from(1)
        }
    }
}

fn write_pages(command: clap::Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut command = command;
    command.build();
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("junction-{}", sub.get_name());
        let page = sub.clone().bin_name(format!("junction {}", sub.get_name()));
        let mut bytes = Vec::new();
        clap_mangen::Man::new(page)
            .title(&name)
            .render(&mut bytes)?;
        std::fs::write(dir.join(format!("{name}.1")), bytes)?;
    }
    let mut bytes = Vec::new();
    clap_mangen::Man::new(command).render(&mut bytes)?;
    std::fs::write(dir.join("junction.1"), bytes)
}
