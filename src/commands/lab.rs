//! `lvsctl lab …`: the command line mapped onto the lab layer, which never sees clap types.

use anyhow::Context;

use crate::cli::LabCommand;
use crate::lab::{build, load, responder, vm};

pub fn run(c: &LabCommand) -> anyhow::Result<u8> {
    match c {
        LabCommand::Create(a) => build::create(&super::load_inventory(&a.inv.inventory)?, a.fast_ssh),
        // Works on an inventory that no longer validates: destroy finds the lab by its name.
        LabCommand::Destroy(a) => build::destroy(&a.inventory),
        // Finds the lab by its name alone, as destroy does.
        LabCommand::Exec(a) => build::exec(&a.inv.inventory, &a.host, &a.command),
        LabCommand::Reboot(a) => build::reboot(&super::load_inventory(&a.inv.inventory)?, &a.host),
        LabCommand::Impair(a) => {
            let lab = super::load_inventory(&a.inv.inventory)?;
            let imp = crate::lab::impair::Impairment {
                delay_us: a.delay.as_deref().map(|d| crate::lab::impair::parse_duration("delay", d)).transpose()?,
                jitter_us: a.jitter.as_deref().map(|d| crate::lab::impair::parse_duration("jitter", d)).transpose()?,
                loss_percent: a.loss.as_deref().map(crate::lab::impair::parse_loss).transpose()?,
                rate_bps: a.rate.as_deref().map(crate::lab::impair::parse_rate).transpose()?,
            };
            crate::lab::impair::impair(&lab, &a.target, &imp, a.clear)?;
            Ok(crate::exit::OK)
        }
        LabCommand::Cut(a) => {
            crate::lab::faults::cut(&super::load_inventory(&a.inv.inventory)?, &a.link, false)?;
            Ok(crate::exit::OK)
        }
        LabCommand::Heal(a) => {
            crate::lab::faults::cut(&super::load_inventory(&a.inv.inventory)?, &a.link, true)?;
            Ok(crate::exit::OK)
        }
        LabCommand::Stop(a) => {
            crate::lab::faults::stop(&super::load_inventory(&a.inv.inventory)?, &a.host, false)?;
            Ok(crate::exit::OK)
        }
        LabCommand::Start(a) => {
            crate::lab::faults::stop(&super::load_inventory(&a.inv.inventory)?, &a.host, true)?;
            Ok(crate::exit::OK)
        }
        LabCommand::Show(a) => {
            let lab = super::load_inventory(&a.inv.inventory)?;
            let links = crate::lab::impair::show(&lab)?;
            match a.out.output {
                crate::cli::Output::Json => {
                    let stopped = &crate::lab::faults::load(&lab.name).stopped;
                    let hosts: Vec<serde_json::Value> = lab
                        .hosts
                        .iter()
                        .map(|h| serde_json::json!({ "name": h.name, "role": h.role.to_string(), "stopped": stopped.contains(&h.name) }))
                        .collect();
                    let doc = serde_json::json!({ "lab": lab.name, "hosts": hosts, "links": links });
                    crate::outln!("{}", serde_json::to_string_pretty(&doc)?);
                }
                crate::cli::Output::Text => {
                    crate::outln!("lab {} ({} mode): {} hosts", lab.name, lab.mode, lab.hosts.len());
                    for h in &lab.hosts {
                        let ssh = match &h.ssh.target {
                            crate::inventory::SshTarget::Remote(a) => a.clone(),
                            crate::inventory::SshTarget::Local => "local".into(),
                        };
                        let stopped = if crate::lab::faults::load(&lab.name).stopped.contains(&h.name) {
                            "   STOPPED (lab start brings it back)"
                        } else {
                            ""
                        };
                        crate::outln!("  {:<10} {:<13} ssh {ssh}{stopped}", h.name, h.role.to_string());
                    }
                    let mut segment = String::new();
                    for l in &links {
                        if l.segment != segment {
                            segment = l.segment.clone();
                            crate::outln!("segment {segment}");
                        }
                        let cut = if l.cut { "CUT, " } else { "" };
                        let what = match (&l.impairment, &l.by, l.active) {
                            (Some(i), Some(by), true) => format!("{i} (lab impair {by})"),
                            (Some(i), Some(by), false) => format!("{i} set by lab impair {by}, gone from the link"),
                            (_, _, true) => "impaired by netem lvsctl did not record".into(),
                            _ => "clean".into(),
                        };
                        crate::outln!("  {:<16} {cut}{what}", format!("{}:{}", l.host, l.interface));
                    }
                }
            }
            Ok(crate::exit::OK)
        }
        LabCommand::Vm(a) => vm::run(&vm::VmOptions {
            memory: a.memory,
            cpus: a.cpus,
            cpu_model: a.cpu_model.clone(),
            timeout: a.timeout,
            no_install: a.no_install,
            if_needed: a.if_needed,
            command: a.command.clone(),
        }),
        LabCommand::Load(a) => {
            let lab = super::load_inventory(&a.inv.inventory)?;
            let from = match &a.from {
                Some(h) => lab.host(h).with_context(|| format!("no host {h} in {}", a.inv.inventory.display()))?,
                None => lab.hosts_with_role(crate::inventory::Role::Client).next().with_context(|| {
                    format!("{} has no client: name the host with --from", a.inv.inventory.display())
                })?,
            };
            // Only this thread moves, before any other starts: the workers are born in the host's
            // network namespace.
            let ns = build::host_netns_path(&lab.name, &from.name);
            crate::lab::enter_netns(&ns).with_context(|| {
                format!(
                    "cannot enter {}'s network namespace {} (is lab {} created here?)",
                    from.name,
                    ns.display(),
                    lab.name
                )
            })?;
            load::stop_on_signals();
            let r = load::run(&load::LoadOptions {
                to: a.to,
                seconds: a.seconds,
                concurrency: a.concurrency as usize,
                slow: a.slow as usize,
                slow_bytes: a.slow_bytes as usize,
                timeout: std::time::Duration::from_secs(a.timeout),
                rate: a.rate,
            });
            crate::outln!("{}", serde_json::to_string_pretty(&r)?);
            let failed = r.short_failed > 0 || r.slow.iter().any(|s| !s.ok && !s.cut);
            Ok(if failed { crate::exit::CHECK_FAILED } else { crate::exit::OK })
        }
        LabCommand::Responder(a) => responder::run(&a.name, &a.listen, &a.vip),
        LabCommand::BootUnits { lab } => build::boot_units(lab),
        LabCommand::VmInit => vm::guest_init(),
    }
}
