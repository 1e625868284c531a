use std::process::ExitCode;

use clap::Parser;

use lvsctl::cli::{Cli, Command, LabCommand};
use lvsctl::commands;
use lvsctl::exit::{self, Exit};

fn run(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Check(a) => {
            let lab = commands::load_inventory(&a.inventory)?;
            println!(
                "{}: lab {} ({} mode) is valid: {}, {}",
                a.inventory.display(),
                lab.name,
                lab.mode,
                lvsctl::plural(lab.hosts.len(), "host"),
                lvsctl::plural(lab.services.len(), "service")
            );
            Ok(exit::OK)
        }
        Command::Plan(a) => commands::plan::run(a),
        Command::Render(a) => commands::render::run(a),
        Command::Lab(LabCommand::Vm(a)) => lvsctl::lab::vm::run(a),
        Command::Lab(LabCommand::VmInit) => lvsctl::lab::vm::guest_init(),
        _ => Err(Exit::new(exit::ERROR, "not implemented yet").into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.downcast_ref::<Exit>().map(|x| x.code).unwrap_or(exit::ERROR);
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}
