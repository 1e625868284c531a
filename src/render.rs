//! Persistent configuration rendered from minijinja templates.
//!
//! The templates in the repository's `templates/` are embedded in the binary; `--templates DIR`
//! replaces any of them by file name.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::inventory::{Lab, Protocol};
use crate::plan::{self, Context, FileSpec, Forward, HostPlan};

pub const SYSCTL_CONF: &str = "sysctl.conf.j2";
pub const IPVSADM_RULES: &str = "ipvsadm.rules.j2";
pub const SERVICE_UNIT: &str = "lvsctl.service.j2";
pub const STANDALONE_SCRIPT: &str = "lvsctl.sh.j2";

const EMBEDDED: [(&str, &str); 4] = [
    (SYSCTL_CONF, include_str!("../templates/sysctl.conf.j2")),
    (IPVSADM_RULES, include_str!("../templates/ipvsadm.rules.j2")),
    (SERVICE_UNIT, include_str!("../templates/lvsctl.service.j2")),
    (STANDALONE_SCRIPT, include_str!("../templates/lvsctl.sh.j2")),
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read templates directory {dir}: {source}")]
    Dir { dir: PathBuf, source: std::io::Error },
    #[error("{path}: lvsctl uses no template of this name (it uses {known}); rename it or remove it")]
    Unknown { path: PathBuf, known: String },
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
}

/// The set of templates in use: embedded ones, some possibly replaced from a directory.
pub struct Templates {
    env: Environment<'static>,
    /// Which templates came from the override directory.
    pub overridden: Vec<PathBuf>,
}

fn template_error(name: &str, e: minijinja::Error) -> RenderError {
    let mut message = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        message.push_str(&format!(": {s}"));
        src = s.source();
    }
    RenderError::Template { name: name.to_string(), message }
}

/// Quotes a value for a POSIX shell: `'it'\''s'`.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_' | ':' | '=' | ','))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Templates {
    pub fn embedded() -> Templates {
        Self::load(None).expect("embedded templates are valid")
    }

    /// Embedded templates, with files of `dir` (if given) replacing them by name.
    pub fn load(dir: Option<&Path>) -> Result<Templates, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("default delimiters are valid"),
        );
        env.add_filter("sq", |v: String| shell_quote(&v));
        for (name, src) in EMBEDDED {
            env.add_template(name, src).map_err(|e| template_error(name, e))?;
        }
        let mut overridden = Vec::new();
        if let Some(dir) = dir {
            let entries =
                std::fs::read_dir(dir).map_err(|source| RenderError::Dir { dir: dir.to_path_buf(), source })?;
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
            paths.sort();
            for path in paths {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                if !EMBEDDED.iter().any(|(n, _)| *n == name) {
                    let known = EMBEDDED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
                    return Err(RenderError::Unknown { path, known });
                }
                let src =
                    std::fs::read_to_string(&path).map_err(|source| RenderError::Dir { dir: path.clone(), source })?;
                env.add_template_owned(name.clone(), src)
                    .map_err(|e| template_error(&path.display().to_string(), e))?;
                overridden.push(path);
            }
        }
        Ok(Templates { env, overridden })
    }

    pub fn render(&self, name: &str, ctx: &TemplateContext) -> Result<String, RenderError> {
        let t = self.env.get_template(name).map_err(|e| template_error(name, e))?;
        t.render(minijinja::value::Serde(ctx)).map_err(|e| template_error(name, e))
    }
}

#[derive(Serialize)]
struct SysctlLine<'a> {
    key: &'a str,
    value: &'a str,
    reason: &'a str,
    /// Keys of devices that may not exist when systemd-sysctl runs at boot (tunl0 appears only
    /// once ipip is loaded): `-` tells systemd-sysctl to ignore a failure; the unit sets them.
    boot_optional: bool,
}

#[derive(Serialize)]
struct AddressLine<'a> {
    dev: &'a str,
    address: String,
    ip: String,
    label: Option<&'a str>,
    reason: &'a str,
}

#[derive(Serialize)]
struct RouteLine<'a> {
    destination_ip: String,
    gateway: String,
    reason: &'a str,
}

#[derive(Serialize)]
struct DestLine {
    address: String,
    port: u16,
    flag: &'static str,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
}

#[derive(Serialize)]
struct ServiceLine {
    flag: &'static str,
    vip: String,
    port: u16,
    scheduler: String,
    persistence: u32,
    netmask: Option<String>,
    destinations: Vec<DestLine>,
}

/// What every template sees.
#[derive(Serialize)]
pub struct TemplateContext<'a> {
    lab: &'a str,
    host: &'a str,
    role: &'a str,
    version: &'static str,
    agent: &'a str,
    plan_path: String,
    unit: String,
    modules: &'a [plan::ModuleSpec],
    sysctls: Vec<SysctlLine<'a>>,
    links_up: &'a [plan::LinkSpec],
    addresses: Vec<AddressLine<'a>>,
    routes: Vec<RouteLine<'a>>,
    ipvs: Vec<ServiceLine>,
}

fn protocol_flag(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "-t",
        Protocol::Udp => "-u",
        Protocol::Sctp => "--sctp-service",
    }
}

fn boot_optional(key: &str) -> bool {
    match key.strip_prefix("net.ipv4.conf.") {
        Some(rest) => !matches!(rest.split('.').next(), Some("all" | "default" | "lo")),
        None => false,
    }
}

impl<'a> TemplateContext<'a> {
    pub fn new(p: &'a HostPlan, agent: &'a str) -> Self {
        TemplateContext {
            lab: &p.lab,
            host: &p.host,
            role: p.role.as_str(),
            version: env!("CARGO_PKG_VERSION"),
            agent,
            plan_path: plan::host_plan_path(&p.lab),
            unit: plan::unit_name(&p.lab),
            modules: &p.modules,
            sysctls: p
                .sysctls
                .iter()
                .map(|s| SysctlLine {
                    key: &s.key,
                    value: &s.value,
                    reason: &s.reason,
                    boot_optional: boot_optional(&s.key),
                })
                .collect(),
            links_up: &p.links_up,
            addresses: p
                .addresses
                .iter()
                .map(|a| AddressLine {
                    dev: &a.dev,
                    address: a.address.to_string(),
                    ip: a.address.addr().to_string(),
                    label: a.label.as_deref(),
                    reason: &a.reason,
                })
                .collect(),
            routes: p
                .routes
                .iter()
                .filter_map(|r| {
                    Some(RouteLine {
                        destination_ip: if r.destination.prefix_len() == 0 {
                            "default".into()
                        } else {
                            r.destination.to_string()
                        },
                        gateway: r.gateway?.to_string(),
                        reason: &r.reason,
                    })
                })
                .collect(),
            ipvs: p
                .ipvs
                .iter()
                .map(|s| ServiceLine {
                    flag: protocol_flag(s.protocol),
                    vip: s.vip.to_string(),
                    port: s.port,
                    scheduler: s.scheduler.clone(),
                    persistence: s.persistence,
                    netmask: s.netmask.map(|m| m.to_string()),
                    destinations: s
                        .destinations
                        .iter()
                        .map(|d| DestLine {
                            address: d.address.to_string(),
                            port: d.port,
                            flag: match d.forward {
                                Forward::Masq => "-m",
                                Forward::Route => "-g",
                                Forward::Tunnel => "-i",
                            },
                            weight: d.weight,
                            u_threshold: d.u_threshold,
                            l_threshold: d.l_threshold,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The files `lvsctl up` installs on a host so that it comes back provisioned after a reboot.
pub fn persistent_files(lab: &Lab, runtime: &HostPlan, ctx: &Context) -> Result<Vec<FileSpec>, RenderError> {
    let tc = TemplateContext::new(runtime, &ctx.agent_path);
    let mut files = Vec::new();
    let mut json = serde_json::to_string_pretty(runtime).expect("plans serialize");
    json.push('\n');
    files.push(FileSpec {
        path: plan::host_plan_path(&lab.name),
        mode: 0o644,
        content: json,
        reason: "the runtime state the boot unit re-applies".into(),
    });
    if !runtime.sysctls.is_empty() {
        files.push(FileSpec {
            path: plan::sysctl_conf_path(&lab.name),
            mode: 0o644,
            content: ctx.templates.render(SYSCTL_CONF, &tc)?,
            reason: "sysctls set early at boot by systemd-sysctl".into(),
        });
    }
    files.push(FileSpec {
        path: plan::unit_path(&lab.name),
        mode: 0o644,
        content: ctx.templates.render(SERVICE_UNIT, &tc)?,
        reason: "re-applies this host's state at boot; systemctl stop undoes it".into(),
    });
    Ok(files)
}

/// One rendered file of `lvsctl render`.
pub struct Rendered {
    pub name: String,
    pub mode: u32,
    pub content: String,
}

/// Everything `lvsctl render` writes for one host.
pub fn render_host(p: &HostPlan, ctx: &Context) -> Result<Vec<Rendered>, RenderError> {
    let runtime = p.runtime();
    let tc = TemplateContext::new(&runtime, &ctx.agent_path);
    let mut out = Vec::new();
    if !runtime.sysctls.is_empty() {
        out.push(Rendered {
            name: format!("90-lvsctl-{}.conf", p.lab),
            mode: 0o644,
            content: ctx.templates.render(SYSCTL_CONF, &tc)?,
        });
    }
    if !runtime.ipvs.is_empty() {
        out.push(Rendered {
            name: format!("ipvsadm-{}.rules", p.lab),
            mode: 0o644,
            content: ctx.templates.render(IPVSADM_RULES, &tc)?,
        });
    }
    out.push(Rendered {
        name: plan::unit_name(&p.lab),
        mode: 0o644,
        content: ctx.templates.render(SERVICE_UNIT, &tc)?,
    });
    out.push(Rendered {
        name: format!("lvsctl-{}-{}.sh", p.lab, p.host),
        mode: 0o755,
        content: ctx.templates.render(STANDALONE_SCRIPT, &tc)?,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("net.ipv4.conf.all.arp_ignore"), "net.ipv4.conf.all.arp_ignore");
        assert_eq!(shell_quote("192.168.1.1/32"), "192.168.1.1/32");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn boot_optional_only_for_devices_that_may_be_missing() {
        assert!(boot_optional("net.ipv4.conf.tunl0.rp_filter"));
        assert!(!boot_optional("net.ipv4.conf.all.rp_filter"));
        assert!(!boot_optional("net.ipv4.conf.lo.arp_ignore"));
        assert!(!boot_optional("net.ipv4.ip_forward"));
    }

    #[test]
    fn unknown_override_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sysctl.conf"), "x").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains("lvsctl uses no template of this name"), "{err}");
    }

    #[test]
    fn override_replaces_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SERVICE_UNIT), "custom unit for {{ host }}\n").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let p = HostPlan {
            lab: "l".into(),
            host: "h".into(),
            role: crate::inventory::Role::Client,
            modules: vec![],
            sysctls: vec![],
            links_up: vec![],
            addresses: vec![],
            routes: vec![],
            ipvs: vec![],
            files: vec![],
            boot_unit: None,
        };
        let out = t.render(SERVICE_UNIT, &TemplateContext::new(&p, "/a")).unwrap();
        assert_eq!(out, "custom unit for h\n");
        assert_eq!(t.overridden.len(), 1);
    }
}
