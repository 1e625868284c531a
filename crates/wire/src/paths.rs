//! Every path lvsctl uses on a host, in one place. The agent takes them from here (through
//! `agent::Paths`, which tests point at a temporary root), the planner names its files with them,
//! and the controller's install scripts are checked against them.

/// Journals and file backups: `STATE_ROOT/LAB/journal.json`.
pub const STATE_ROOT: &str = "/var/lib/lvsctl";
/// Persisted runtime plans the boot unit re-applies: `CONFIG_ROOT/LAB/host.json`.
pub const CONFIG_ROOT: &str = "/etc/lvsctl";
/// Lock files: `RUN_DIR/lvsctl-LAB.lock`.
pub const RUN_DIR: &str = "/run";
/// Installed agents, one directory per content hash, so versions never overwrite each other.
pub const INSTALL_ROOT: &str = "/usr/local/lib/lvsctl";

/// Where systemd finds the boot units.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// Where systemd-sysctl finds the sysctl files.
pub const SYSCTL_DIR: &str = "/etc/sysctl.d";

/// The boot unit of a lab.
pub fn unit_name(lab: &str) -> String {
    format!("lvsctl-{lab}.service")
}

pub fn unit_path(lab: &str) -> String {
    format!("{UNIT_DIR}/{}", unit_name(lab))
}

/// The persisted runtime plan's file name, in `CONFIG_ROOT/LAB/`.
pub const HOST_PLAN_FILE: &str = "host.json";

pub fn host_plan_path(lab: &str) -> String {
    format!("{CONFIG_ROOT}/{lab}/{HOST_PLAN_FILE}")
}

pub fn sysctl_conf_name(lab: &str) -> String {
    format!("90-lvsctl-{lab}.conf")
}

pub fn sysctl_conf_path(lab: &str) -> String {
    format!("{SYSCTL_DIR}/{}", sysctl_conf_name(lab))
}

pub fn lock_name(lab: &str) -> String {
    format!("lvsctl-{lab}.lock")
}

/// What the boot unit checks the agent against before running it (`sha256sum --check` input).
pub fn agent_check_path(lab: &str) -> String {
    format!("{CONFIG_ROOT}/{lab}/agent.sha256")
}

/// Where the agent with this sha256 is installed.
pub fn agent_path(sha256: &str) -> String {
    format!("{INSTALL_ROOT}/{sha256}/lvsctl")
}

/// What `lvsctl render` writes for hosts that cannot run lvsctl, as paths on the host (the same
/// on Debian and RHEL-family systems: systemd reads both directories, /usr/local/sbin is local).
pub const MODULES_LOAD_DIR: &str = "/etc/modules-load.d";

pub fn modules_load_path(lab: &str) -> String {
    format!("{MODULES_LOAD_DIR}/lvsctl-{lab}.conf")
}

/// The standalone start/stop script of a lab.
pub fn script_path(lab: &str) -> String {
    format!("/usr/local/sbin/lvsctl-{lab}.sh")
}

/// The director's rules in `ipvsadm-save -n` format (`ipvsadm -R < FILE`).
pub fn ipvsadm_rules_path(lab: &str) -> String {
    format!("{CONFIG_ROOT}/{lab}/ipvsadm.rules")
}

/// The director's nftables table of firewall-mark services, as the JSON transaction that
/// replaces it whole (`nft -j -f FILE`).
pub fn nftables_path(lab: &str) -> String {
    format!("{CONFIG_ROOT}/{lab}/nftables.json")
}

/// The standalone script's records: the prior value of each sysctl it changed (kept across
/// reboots, as the sysctl.d file keeps applying the lab's values), and what it added since boot.
pub fn script_state_path(lab: &str) -> String {
    format!("/var/lib/lvsctl-sh/{lab}.state")
}

pub fn script_runtime_state_path(lab: &str) -> String {
    format!("{RUN_DIR}/lvsctl-sh/{lab}.state")
}

/// The exporter's pid file (`lvsctl-agent agent metrics` writes it once it listens).
pub fn exporter_pid_path(lab: &str) -> String {
    format!("{RUN_DIR}/lvsctl-{lab}-metrics.pid")
}

/// The exporter's output (it logs only what stopped it).
pub fn exporter_log_path(lab: &str) -> String {
    format!("{RUN_DIR}/lvsctl-{lab}-metrics.log")
}
