use std::process::ExitCode;

use clap::Parser;

use lvsctl::cli::{AgentCommand, Cli, Command};
use lvsctl::commands;
use lvsctl::exit::{self, Exit};

fn run(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Check(a) => commands::check::run(a),
        Command::Plan(a) => commands::plan::run(a),
        Command::Render(a) => commands::render::run(a),
        Command::Up(a) => commands::up::run(a),
        Command::Down(a) => commands::down::run(a),
        Command::Status(a) => commands::status::run(a),
        Command::Drain(a) => commands::drain::run(a),
        Command::Undrain(a) => commands::drain::undrain(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Doctor(a) => commands::doctor::run(a),
        Command::Graph(a) => commands::graph::run(a),
        Command::Trace(a) => commands::trace::run(a),
        Command::Metrics(a) => commands::metrics::run(a),
        Command::Top(a) => commands::top::run(a),
        Command::Capture(a) => commands::capture::run(a),
        Command::Lab(c) => commands::lab::run(c),
        Command::Init(a) => commands::init::run(a),
        Command::Import(a) => commands::import::run(a),
        Command::Completions(a) => commands::docs::completions(a.shell),
        Command::Man(a) => commands::docs::man(a.page),
        Command::Schema(a) => commands::docs::schema(&a.command),
        Command::Agent(a) => Ok(match &a.command {
            AgentCommand::Serve => lvsctl::agent::serve(),
            AgentCommand::Boot { action, lab } => lvsctl::agent::boot(action, lab),
            AgentCommand::Metrics { lab, listen } => lvsctl::agent::exporter::run(lab, listen),
        } as u8),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    lvsctl::output::set_color(cli.color.forced());
    lvsctl::output::set_verbosity(match (cli.verbose, cli.quiet) {
        (true, _) => lvsctl::output::Verbosity::Verbose,
        (_, true) => lvsctl::output::Verbosity::Quiet,
        _ => lvsctl::output::Verbosity::Normal,
    });
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
