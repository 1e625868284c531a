//! `lvsctl render`: every file a host needs to run its part of the lab without lvsctl, as paths
//! on the host (a tree to copy to `/`): the sysctl.d and modules-load.d files, the director's
//! rules in `ipvsadm-save -n` format, its nftables table of firewall-mark services (JSON for
//! `nft -j -f`), a standalone start/stop script and the unit that runs it.

use crate::plan::files::{Boot, TemplateContext};
use crate::plan::{Context, HostPlan};
use crate::templates::{
    IPVSADM_RULES, KEEPALIVED_CONF, MODULES_LOAD, RenderError, SERVICE_UNIT, STANDALONE_SCRIPT, SYSCTL_CONF,
};

/// One rendered file of `lvsctl render`.
pub struct Rendered {
    /// Its path on the host, relative to `/` (`etc/sysctl.d/90-lvsctl-LAB.conf`).
    pub name: String,
    pub mode: u32,
    pub content: String,
}

fn relative(path: String) -> String {
    path.trim_start_matches('/').to_string()
}

/// Everything `lvsctl render` writes for one host.
pub fn render_host(p: &HostPlan, ctx: &Context) -> Result<Vec<Rendered>, RenderError> {
    let runtime = p.runtime();
    let tc = TemplateContext::with_boot(&runtime, &ctx.agent_path, Boot::Script);
    let lab = &p.lab;
    let mut out = Vec::new();
    let mut file = |path: String, mode: u32, template: &str| -> Result<(), RenderError> {
        out.push(Rendered { name: relative(path), mode, content: ctx.templates.render(template, &tc)? });
        Ok(())
    };
    if !runtime.modules.is_empty() {
        file(crate::paths::modules_load_path(lab), 0o644, MODULES_LOAD)?;
    }
    if !runtime.sysctls.is_empty() {
        file(crate::paths::sysctl_conf_path(lab), 0o644, SYSCTL_CONF)?;
    }
    if !runtime.ipvs.is_empty() {
        file(crate::paths::ipvsadm_rules_path(lab), 0o644, IPVSADM_RULES)?;
    }
    if let Some(k) = &runtime.keepalived {
        file(k.config.clone(), 0o644, KEEPALIVED_CONF)?;
    }
    file(crate::paths::script_path(lab), 0o755, STANDALONE_SCRIPT)?;
    file(crate::paths::unit_path(lab), 0o644, SERVICE_UNIT)?;
    if let Some(t) = &runtime.nftables {
        // Data, as lvsctl's agent sends it: the transaction that replaces the table whole.
        let tx = crate::resource::nft::replace_commands(&t.name, &crate::resource::nft::objects(t));
        let content = serde_json::to_string_pretty(&tx).expect("JSON values serialize") + "\n";
        out.push(Rendered { name: relative(crate::paths::nftables_path(lab)), mode: 0o644, content });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::Templates;

    fn rendered(inv: &str) -> Vec<(String, Vec<Rendered>)> {
        let lab = crate::inventory::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(inv)).unwrap();
        let templates = Templates::embedded();
        let ctx = Context { agent_path: "/a".into(), templates: &templates };
        crate::plan::plan(&lab, &ctx).unwrap().iter().map(|p| (p.host.clone(), render_host(p, &ctx).unwrap())).collect()
    }

    /// Debian and RHEL-family hosts read the same directories: nothing rendered is specific to one.
    #[test]
    fn every_file_goes_where_systemd_hosts_of_both_families_read_it() {
        for (host, files) in rendered("inventories/tun.toml") {
            for f in &files {
                assert!(
                    ["etc/sysctl.d/", "etc/modules-load.d/", "etc/systemd/system/", "usr/local/sbin/", "etc/lvsctl/"]
                        .iter()
                        .any(|d| f.name.starts_with(d)),
                    "{host}: {}",
                    f.name
                );
            }
            let unit = files.iter().find(|f| f.name.ends_with(".service")).unwrap();
            assert!(unit.content.contains("ExecStart=/usr/local/sbin/lvsctl-tun.sh start"), "{}", unit.content);
            assert!(unit.content.contains("After=network-online.target"), "{}", unit.content);
            assert!(!unit.content.contains("/usr/local/lib/lvsctl"), "render's unit must not need the agent");
        }
    }

    #[test]
    fn tun_real_servers_load_ipip_at_boot() {
        let all = rendered("inventories/tun.toml");
        let (_, web1) = all.iter().find(|(h, _)| h == "web1").unwrap();
        let m = web1.iter().find(|f| f.name == "etc/modules-load.d/lvsctl-tun.conf").unwrap();
        let modules: Vec<&str> = m.content.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
        assert_eq!(modules, ["ipip"]);
    }
}
