//! `lvsctl import`: an inventory from what exists — saved ipvsadm rules, keepalived.conf,
//! ldirectord.cf, or live hosts read over SSH — written as `lvsctl init` writes one, with what
//! could not be imported said, each with its file and line (or host).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::cli::{ImportArgs, ImportFormat};
use crate::exit::{self, Exit};

/// The largest file read (the rules of 10,000 real servers are about 600 KB).
const MAX_BYTES: u64 = 16 << 20;

pub fn run(a: &ImportArgs) -> anyhow::Result<u8> {
    if let Err((what, help)) = crate::inventory::value::check_lab_name(&a.name) {
        bail!("--name: {what}: {help}");
    }
    let (setup, shown) = match (&a.from_host, &a.file) {
        (Some(host), _) => (from_hosts(a, host)?, host.clone()),
        (None, Some(file)) => (from_file(a, file)?, file.display().to_string()),
        (None, None) => bail!("give a FILE to read, or --from-host HOST"),
    };
    let imported = crate::import::inventory::inventory(&setup, &a.name, &shown, a.lab).map_err(|lines| {
        Exit::new(exit::INVALID, format!("{}\nno service could be imported; nothing was written", lines.join("\n")))
    })?;
    super::write_new(&imported.text, a.out.as_deref(), "import")?;
    if let Some(path) = &a.out {
        let p = path.display();
        let next = if a.lab {
            format!("try it with `lvsctl lab create`, then `lvsctl check {p}`")
        } else if imported.text.contains("# CHANGE:") {
            format!("change every value marked CHANGE, then `lvsctl check {p}`")
        } else {
            format!("`lvsctl up --dry-run {p}` shows what up would add (lvsctl's files, no kernel object)")
        };
        eprintln!("wrote {p}: {} imported; {next}", crate::plural(imported.services, "service"));
    }
    for l in &imported.left_out {
        eprintln!("left out: {l}");
    }
    Ok(if imported.left_out.is_empty() { exit::OK } else { exit::IMPORT_PARTIAL })
}

/// The setup a file holds.
fn from_file(a: &ImportArgs, file: &Path) -> anyhow::Result<crate::import::model::Setup> {
    let shown = file.display().to_string();
    let mut text = String::new();
    let read = if shown == "-" {
        std::io::stdin().take(MAX_BYTES + 1).read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_BYTES + 1).read_to_string(&mut text))
    };
    read.with_context(|| format!("cannot read {shown}"))?;
    if text.len() as u64 > MAX_BYTES {
        bail!("{shown} is larger than {} MiB: not a file lvsctl imports", MAX_BYTES >> 20);
    }
    let format = match a.format {
        Some(f) => f,
        None => guess(&text).ok_or_else(|| {
            Exit::new(
                exit::INVALID,
                format!(
                    "{shown}: cannot tell what it is: lvsctl import reads saved ipvsadm rules (`ipvsadm-save -n`: \
                     -A and -a lines), keepalived.conf and ldirectord.cf; give --format when the guess is wrong"
                ),
            )
        })?,
    };
    let located = |errors: Vec<(String, String)>| {
        let lines: Vec<String> = errors.iter().map(|(at, m)| format!("{at}: {m}")).collect();
        Exit::new(
            exit::INVALID,
            format!("{}\n{}; nothing was written", lines.join("\n"), crate::plural(errors.len(), "error")),
        )
    };
    Ok(match format {
        ImportFormat::Ipvsadm => {
            let (services, notes) = crate::import::ipvsadm::parse(&text, &shown).map_err(|errors| {
                located(errors.into_iter().map(|e| (format!("{shown}:{}", e.line), e.message)).collect())
            })?;
            crate::import::model::Setup { services, notes, ..Default::default() }
        }
        ImportFormat::Keepalived => {
            use crate::import::keepalived::conf;
            let open = |p: &Path| -> std::io::Result<String> {
                let mut t = String::new();
                std::fs::File::open(p)?.take(MAX_BYTES).read_to_string(&mut t)?;
                Ok(t)
            };
            let reading = conf::Reading { config_id: a.config_id.as_deref(), open: &open, glob: &glob };
            let dir = if shown == "-" { None } else { Some(file.parent().unwrap_or(Path::new("."))) };
            let nodes = conf::read(&text, &shown, dir, &reading)
                .map_err(|errors| located(errors.into_iter().map(|e| (e.at.to_string(), e.message)).collect()))?;
            let own = text.starts_with("# Written by lvsctl for director ");
            crate::import::keepalived::interpret(&nodes, own)
        }
        ImportFormat::Ldirectord => crate::import::ldirectord::parse(&text, &shown).map_err(|errors| {
            located(errors.into_iter().map(|e| (format!("{shown}:{}", e.line), e.message)).collect())
        })?,
    })
}

/// The setup live hosts hold: the director's facts and the real servers', read by lvsctl's agent
/// over SSH, all at once (one agent run per host, changing nothing, leaving nothing).
fn from_hosts(a: &ImportArgs, director: &str) -> anyhow::Result<crate::import::model::Setup> {
    use crate::agent::facts::FactsRequest;
    use crate::agent::protocol::{Operation, Request};
    use crate::inventory::{Become, HostKeyPolicy, SshSettings, SshTarget};

    let logins: Vec<String> = std::iter::once(director.to_string()).chain(a.real_servers.iter().cloned()).collect();
    let mut settings = Vec::new();
    for login in &logins {
        let (user, host) = match login.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h.to_string()),
            None => (None, login.clone()),
        };
        if host.is_empty()
            || host.starts_with('-')
            || user.as_deref().is_some_and(|u| u.is_empty() || u.starts_with('-'))
        {
            bail!("{login:?}: not [USER@]HOST");
        }
        let mut s = SshSettings::defaults_for(SshTarget::Remote(host));
        if let Some(u) = user {
            s.user = u;
        }
        if a.sudo {
            s.become_ = Become::Sudo;
        }
        if a.accept_new_host_keys {
            s.host_key = HostKeyPolicy::AcceptNew;
        }
        settings.push(s);
    }
    let mut sysctls = crate::import::live::ipvs_sysctl_names();
    sysctls.push("kernel.hostname".into());
    let facts = FactsRequest { sysctls, ipvs_timeouts: true, ..Default::default() };
    let agent = std::sync::Arc::new(crate::remote::binary::resolve(a.agent_binary.as_deref(), true)?);
    let opts = crate::remote::ConnectOptions { ssh_config: a.ssh_config.clone(), ..Default::default() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let reports = rt.block_on(async {
        let mut tasks = Vec::new();
        for (login, s) in logins.iter().zip(settings) {
            eprintln!("{login}: reading (IPVS table, addresses, routes, settings)");
            let (agent, opts, facts, login) = (agent.clone(), opts.clone(), facts.clone(), login.clone());
            tasks.push(tokio::spawn(async move {
                let t = crate::remote::connect(&s, &opts).await?;
                let req = Request::new("import", &login, Operation::Facts { plan: None, facts });
                let r = t.run_agent(&agent, &req, &mut |_| {}, &mut || {}).await;
                t.close().await;
                r
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(
                t.await.map_err(|e| crate::remote::HostError::Agent(format!("internal error: {e}"))).and_then(|r| r),
            );
        }
        out
    });
    let mut live = Vec::new();
    let mut failed = Vec::new();
    for (login, r) in logins.iter().zip(reports) {
        match r.map(|r| r.answer) {
            Ok(Some(crate::agent::protocol::Answer::Facts(f))) => {
                live.push(crate::import::live::Live { ssh: login.clone(), facts: *f })
            }
            Ok(_) => failed.push(format!("{login}: the agent answered without the host's facts")),
            Err(e) => failed.push(format!("{login}: {e}")),
        }
    }
    if !failed.is_empty() {
        return Err(Exit::new(exit::UNREACHABLE, format!("{}\nnothing was written", failed.join("\n"))).into());
    }
    let mut setup = crate::import::live::setup(&live[0], &live[1..]);
    setup.ssh_user = director.rsplit_once('@').map(|(u, _)| u.to_string());
    Ok(setup)
}

/// What `text` is, from its first line that says anything.
fn guess(text: &str) -> Option<ImportFormat> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))?;
    if first.starts_with("-A ") || first.starts_with("-a ") || first.starts_with("--add-service") {
        return Some(ImportFormat::Ipvsadm);
    }
    // ldirectord.cf: `key=value` lines, a virtual= block somewhere.
    let ld_key = first.split_once('=').map(|(k, _)| k.trim()).filter(|k| !k.contains(char::is_whitespace));
    if ld_key.is_some()
        && !first.starts_with('$')
        && text.lines().any(|l| l.split_once('=').is_some_and(|(k, _)| matches!(k.trim(), "virtual" | "virtual6")))
    {
        return Some(ImportFormat::Ldirectord);
    }
    // keepalived.conf's top-level keywords.
    let keepalived = [
        "global_defs",
        "vrrp_instance",
        "vrrp_sync_group",
        "vrrp_script",
        "virtual_server",
        "virtual_server_group",
        "include",
        "child_wait_time",
        "static_ipaddress",
        "net_namespace",
    ];
    // `@ID keyword ...` is a conditional line: its keyword is the second word.
    let w = if first.starts_with('@') { first.split_whitespace().nth(1) } else { first.split_whitespace().next() };
    let keyword = |w: Option<&str>| w.is_some_and(|w| keepalived.contains(&w) || w.starts_with('$'));
    keyword(w).then_some(ImportFormat::Keepalived)
}

/// The files `pattern` names, sorted; a pattern's wildcards (`*`, `?`) in its last part only.
fn glob(pattern: &Path) -> std::io::Result<Vec<PathBuf>> {
    let name = pattern.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !name.contains(['*', '?', '[']) {
        return Ok(if pattern.exists() { vec![pattern.to_path_buf()] } else { vec![] });
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    if dir.to_string_lossy().contains(['*', '?', '[']) {
        return Err(std::io::Error::other("wildcards in a directory of the pattern are not read; name the directory"));
    }
    if name.contains('[') {
        return Err(std::io::Error::other("[...] in a pattern is not read; use * and ?"));
    }
    let mut found: Vec<PathBuf> = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.starts_with('.') && matches(name.as_bytes(), n.as_bytes()) && e.path().is_file() {
            found.push(e.path());
        }
    }
    found.sort();
    Ok(found)
}

/// A shell-style match of `*` and `?`.
fn matches(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => matches(&p[1..], s) || (!s.is_empty() && matches(p, &s[1..])),
        (Some(b'?'), Some(_)) => matches(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => matches(&p[1..], &s[1..]),
        _ => false,
    }
}
