//! `lvsctl completions SHELL` and `lvsctl man`: generated from the clap definitions, so they
//! never disagree with `--help`.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;

/// The command tree users see (the hidden agent and lab internals are left out by clap).
fn command() -> clap::Command {
    Cli::command()
}

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut cmd = command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "lvsctl", &mut out);
    write_stdout(&out)
}

pub fn man(page: crate::cli::ManPage) -> anyhow::Result<u8> {
    let mut out = Vec::new();
    match page {
        crate::cli::ManPage::Lvsctl => man_page(&mut out)?,
        crate::cli::ManPage::Inventory => {
            out = crate::inventory::keys::man_page(env!("CARGO_PKG_VERSION")).into_bytes();
        }
    }
    write_stdout(&out)
}

/// `lvsctl schema COMMAND`.
pub fn schema(name: &str) -> anyhow::Result<u8> {
    let of = crate::contract::SchemaOf::named(name).expect("clap accepts only the contract's names");
    let mut text = serde_json::to_string_pretty(&crate::contract::schema(of))?;
    text.push('\n');
    write_stdout(text.as_bytes())
}

/// lvsctl(1): the top-level page, with each subcommand's help as a section of its own (one page,
/// like git's summary pages, so `man lvsctl` answers everything).
pub fn man_page(out: &mut Vec<u8>) -> std::io::Result<()> {
    let cmd = command();
    let man = clap_mangen::Man::new(cmd.clone()).date(env!("CARGO_PKG_VERSION"));
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        writeln!(out, ".SH \"LVSCTL {}\"", sub.get_name().to_uppercase())?;
        let mut sub = sub.clone().bin_name(format!("lvsctl {}", sub.get_name()));
        sub.build();
        let text = sub.render_long_help().to_string();
        for line in text.lines() {
            // Plain text, line by line: keep it verbatim (no filling) and escape what roff reads.
            let escaped = line.replace('\\', "\\e");
            let escaped = if escaped.starts_with(['.', '\'']) { format!("\\&{escaped}") } else { escaped };
            writeln!(out, "{escaped}\n.br")?;
        }
    }
    man.render_extra_section(out)?;
    man.render_authors_section(out)?;
    Ok(())
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<u8> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(crate::exit::OK),
        // `lvsctl man | head`: the reader is gone, which is not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(crate::exit::OK),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_know_every_subcommand_and_option() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "lvsctl", &mut out);
            let text = String::from_utf8(out).unwrap();
            for sub in ["check", "plan", "render", "up", "down", "status", "verify", "doctor", "lab", "init"] {
                assert!(text.contains(sub), "{shell}: {sub} missing");
            }
            assert!(text.contains("dry-run"), "{shell}: options missing");
            // clap_complete also lists hidden commands (agent, lab vm-init): harmless, they only
            // run lvsctl's internals; the man page leaves them out.
        }
    }

    #[test]
    fn the_man_page_covers_every_subcommand() {
        let mut out = Vec::new();
        man_page(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH lvsctl 1"), "{}", &text[..200]);
        for sub in ["CHECK", "PLAN", "UP", "DOWN", "VERIFY", "DOCTOR", "LAB", "INIT", "RENDER"] {
            assert!(text.contains(&format!(".SH \"LVSCTL {sub}\"")), "section {sub} missing");
        }
        assert!(text.contains("Exit status"), "exit statuses missing");
        assert!(!text.contains(".SH \"LVSCTL AGENT\""), "the hidden agent has a section");
    }
}
