//! The inventory document: its top-level keys, and each table handed to the file that owns it
//! (`hosts`, `services`, `ha`, `ipvs`, `ssh`, `lab`; values in `value`). Cross-field rules: `validate`.

use super::ha::{DraftHa, parse_ha};
use super::hosts::{DraftHost, parse_host};
use super::ipvs::parse_ipvs;
use super::keys;
use super::lab::{DraftLab, parse_lab};
use super::model::*;
use super::reader::{Reader, Table};
use super::services::{DraftService, parse_service};
use super::ssh::{SshDefaults, parse_ssh_defaults};
use super::value::{check_host_name, check_lab_name, parse_enum};

pub struct Draft {
    /// False when `hosts` is missing or not a table: references to hosts are then not checked.
    pub hosts_ok: bool,
    pub name: Option<String>,
    pub mode: Option<Mode>,
    pub hosts: Vec<DraftHost>,
    pub services: Vec<DraftService>,
    pub lab: Option<DraftLab>,
    pub ha: Option<DraftHa>,
    pub ipvs: IpvsSettings,
    /// `[metrics]`, with its port's key path.
    pub metrics: Option<(MetricsSettings, String)>,
}

pub fn parse_document(r: &mut Reader, root: Table) -> Draft {
    let name = root
        .require(r, "name", "add `name = \"mylab\"` (lowercase letters, digits and '-'; used in file and unit names)")
        .and_then(|i| {
            let s = i.str(r)?;
            check_lab_name(s).map_err(|(m, h)| r.error(i.span(), &i.path, m, Some(h))).ok()?;
            Some(s.to_string())
        });
    if let Some(i) = root.get(r, "description") {
        i.text(r);
    }
    let mode = root
        .require(r, "mode", "add `mode = \"dr\"` (one of nat, dr, tun)")
        .and_then(|i| parse_enum(r, &i, &Mode::NAMES, Mode::parse, "mode"));

    let defaults = match root.get(r, "ssh") {
        Some(i) => match i.table(r) {
            Some(t) => parse_ssh_defaults(r, t, SshDefaults::default()),
            None => SshDefaults::default(),
        },
        None => SshDefaults::default(),
    };

    let mut hosts = Vec::new();
    let mut hosts_ok = false;
    if let Some(item) = root.require(r, "hosts", "add one table per host, e.g. `[hosts.web1]` with `role` and `ssh`")
        && let Some(t) = item.table(r)
    {
        hosts_ok = true;
        for (name, key_span, hi) in t.entries(r) {
            if let Err((m, h)) = check_host_name(&name) {
                r.error(key_span, &hi.path, m, Some(h));
                continue;
            }
            if let Some(ht) = hi.table(r) {
                hosts.push(parse_host(r, name, ht, &defaults));
            }
        }
        t.finish(r, &[]);
    }

    let mut services = Vec::new();
    if let Some(item) = root.get(r, "services")
        && let Some(items) = item.array(r)
    {
        for (index, si) in items.into_iter().enumerate() {
            if let Some(st) = si.table(r) {
                services.push(parse_service(r, index, st));
            }
        }
    }

    let lab = root.get(r, "lab").and_then(|i| i.table(r)).map(|t| parse_lab(r, t));
    let ha = root.get(r, "ha").and_then(|i| i.table(r)).map(|t| parse_ha(r, t));
    let ipvs = root.get(r, "ipvs").and_then(|i| i.table(r)).map(|t| parse_ipvs(r, t)).unwrap_or_default();
    let metrics = root.get(r, "metrics").and_then(|i| i.table(r)).and_then(|t| super::metrics::parse_metrics(r, t));
    root.finish(r, &keys::TOP.names());
    Draft { hosts_ok, name, mode, hosts, services, lab, ha, ipvs, metrics }
}
