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
        Command::Up(a) => commands::up::run(a),
        Command::Down(a) => commands::down::run(a),
        Command::Status(a) => commands::status::run(a),
        Command::Agent(a) => Ok(match &a.command {
            lvsctl::cli::AgentCommand::Serve => lvsctl::agent::serve(),
            lvsctl::cli::AgentCommand::Boot { action, lab } => lvsctl::agent::boot(action, lab),
        } as u8),
        Command::Lab(LabCommand::Create(a)) => lvsctl::lab::build::create(&a.inventory),
        Command::Lab(LabCommand::Destroy(a)) => lvsctl::lab::build::destroy(&a.inventory),
        Command::Lab(LabCommand::Exec(a)) => lvsctl::lab::build::exec(&a.inventory, &a.host, &a.command),
        Command::Lab(LabCommand::Reboot(a)) => lvsctl::lab::build::reboot(&a.inventory, &a.host),
        Command::Lab(LabCommand::Responder(a)) => lvsctl::lab::responder::run(a),
        Command::Lab(LabCommand::BootUnits) => lvsctl::lab::build::boot_units(),
        Command::Lab(LabCommand::Vm(a)) => lvsctl::lab::vm::run(a),
        Command::Lab(LabCommand::VmInit) => lvsctl::lab::vm::guest_init(),
        Command::Verify(a) => commands::verify::run(a),
        Command::Doctor(a) => commands::doctor::run(a),
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
