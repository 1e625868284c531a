//! `lvsctl render`: the persistent configuration of each host, printed or written to a directory.

use anyhow::Context as _;

use crate::cli::{Output, RenderArgs};
use crate::contract::{FileJson, HostFiles, RenderBody};
use crate::plan::{self, Context};
use crate::render::render_host;

pub fn run(args: &RenderArgs) -> anyhow::Result<u8> {
    let lab = super::load_inventory(&args.inv.inventory)?;
    super::check_host_filter(&lab, &args.filter.hosts)?;
    let templates = super::load_templates(args.tpl.templates.as_deref())?;
    let ctx = Context { agent_path: super::agent_path_for_display(None), templates: &templates };
    let plans = plan::plan(&lab, &ctx)?;
    let json = args.format.output == Output::Json;
    let mut hosts = Vec::new();
    for p in plans.iter().filter(|p| args.filter.hosts.is_empty() || args.filter.hosts.contains(&p.host)) {
        let files = render_host(p, &ctx)?;
        if json {
            hosts.push(HostFiles {
                host: p.host.clone(),
                files: files
                    .iter()
                    .map(|f| FileJson {
                        path: format!("/{}", f.name),
                        mode: format!("{:04o}", f.mode),
                        bytes: f.content.len(),
                        sha256: crate::resource::sha256(f.content.as_bytes()),
                        written: args.out.as_ref().map(|d| d.join(&p.host).join(&f.name).display().to_string()),
                        content: f.content.clone(),
                    })
                    .collect(),
            });
        }
        match &args.out {
            None if json => {}
            None => {
                for f in files {
                    crate::outln!("==> {}: /{} <==", p.host, f.name);
                    crate::out!("{}", f.content);
                    if !f.content.ends_with('\n') {
                        crate::outln!();
                    }
                    crate::outln!();
                }
            }
            Some(dir) => {
                let out =
                    crate::safe_dir::SafeDir::open(dir).with_context(|| format!("cannot use {}", dir.display()))?;
                for f in files {
                    // keepalived users often take its configuration alone: a copy named after
                    // the lab and the director sits beside the host trees.
                    if p.keepalived.as_ref().is_some_and(|k| k.config.trim_start_matches('/') == f.name) {
                        let rel = std::path::PathBuf::from(format!("keepalived-{}-{}.conf", p.lab, p.host));
                        out.write(&rel, f.content.as_bytes(), f.mode, dir)
                            .with_context(|| format!("cannot write {}", dir.join(&rel).display()))?;
                        if !json {
                            eprintln!("wrote {}", dir.join(&rel).display());
                        }
                    }
                    let rel = std::path::Path::new(&p.host).join(&f.name);
                    let path = dir.join(&rel);
                    out.write(&rel, f.content.as_bytes(), f.mode, dir)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    if !json {
                        eprintln!("wrote {}", path.display());
                    }
                }
            }
        }
    }
    if json {
        crate::outln!(
            "{}",
            crate::contract::Output::new("render", Some(&lab.name), true, RenderBody { hosts }).pretty()
        );
    } else if let Some(dir) = &args.out {
        eprintln!(
            "each host's files are in {}/HOST/ as paths on the host: copy its files to its / (e.g. `cd {0}/HOST && find . -type f | tar -c -T - | ssh root@HOST tar -C / -x`; files only: tar resets the mode of every directory it unpacks, / itself for `.`), then `systemctl daemon-reload && systemctl enable --now {}`",
            dir.display(),
            crate::paths::unit_name(&lab.name)
        );
    }
    Ok(crate::exit::OK)
}
