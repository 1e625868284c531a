//! `lvsctl render`: every file a host needs, for hosts that cannot run lvsctl: the sysctl.d
//! file, the director's rules in ipvsadm-save format, the boot unit and a standalone script.

use crate::plan::files::TemplateContext;
use crate::plan::{Context, HostPlan};
use crate::templates::{IPVSADM_RULES, RenderError, SERVICE_UNIT, STANDALONE_SCRIPT, SYSCTL_CONF};

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
            name: crate::paths::sysctl_conf_name(&p.lab),
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
        name: crate::paths::unit_name(&p.lab),
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
