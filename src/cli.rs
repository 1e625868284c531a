//! Command-line interface definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Provision Linux Virtual Server (LVS/IPVS) labs over SSH, and undo it exactly";

const LONG_ABOUT: &str = "\
lvsctl provisions a whole LVS lab (client, router, director, real servers) in NAT, DR or TUN mode
from one inventory file, over SSH, and persists it so hosts come back provisioned after a reboot.
`down` undoes exactly what `up` did, from a journal kept on each host: a sysctl that was 2 before
`up` is 2 again after `down`, and an address that existed before is kept.

Typical session:
  lvsctl check  inventories/dr.toml     # validate the inventory, touch nothing
  lvsctl plan   inventories/dr.toml     # what each host will get, and why
  lvsctl up     inventories/dr.toml     # make it so (prints before -> after per change)
  lvsctl status inventories/dr.toml     # in sync or drifted, plus the director's IPVS table
  lvsctl verify inventories/dr.toml     # send requests from the client, check the split
  lvsctl doctor inventories/dr.toml     # explain what is wrong, host by host
  lvsctl down   inventories/dr.toml     # restore every host as it was before `up`

No IPVS machines at hand? `lvsctl lab create INV` builds the inventory's hosts on this machine as
network namespaces with a real sshd each; `lvsctl lab vm -- CMD` runs CMD inside a qemu guest with
a distribution kernel when this kernel lacks IPVS.";

const AFTER_HELP: &str = "\
Exit status: 0 success; 1 error; 2 usage error; 3 invalid inventory or templates;
4 some hosts failed (the others completed); 5 some hosts unreachable;
6 a check did not pass (status drifted, verify failed, doctor found problems, trace departs);
7 changes pending (up or down --dry-run --detailed-exitcode); 8 import left something out.";

#[derive(Parser, Debug)]
#[command(name = "lvsctl", version = env!("LVSCTL_VERSION"), about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More: every note as it comes, connection progress, each host's recap line.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Less: only problems and the recap.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = Color::Auto)]
    pub color: Color,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    /// As `output::set_color` takes it: None decides per stream.
    pub fn forced(self) -> Option<bool> {
        match self {
            Color::Auto => None,
            Color::Always => Some(true),
            Color::Never => Some(false),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate an inventory and report every problem with file, line and key.
    #[command(
        long_about = "Validate an inventory and report every problem at once, each with its file, line, column, key\n\
and how to fix it. Touches no host. Exit status 3 when the inventory is invalid."
    )]
    Check(CheckArgs),

    /// Print what every host will get, and why (no host is contacted).
    #[command(
        long_about = "Print the desired state of every host: kernel modules, sysctls, links, addresses, routes, IPVS\n\
services and destinations, and the persistent files, each with the reason it is there.\n\
This is computed from the inventory alone; `lvsctl up --dry-run` compares it with live state."
    )]
    Plan(PlanArgs),

    /// Render the persistent configuration (sysctl.d, ipvsadm rules, systemd unit, start/stop script).
    #[command(
        long_about = "Render, per host, the files that persist the lab: a sysctl.d file, the director's rules in\n\
ipvsadm-save format (load with `ipvsadm-restore`), a systemd unit, and a standalone\n\
`start|stop|status` shell script for hosts that cannot run lvsctl (its `stop` restores the values\n\
found at `start`, not 0). Templates are embedded; --templates DIR replaces them by file name."
    )]
    Render(RenderArgs),

    /// Apply the inventory on every host over SSH and persist it.
    #[command(
        long_about = "Apply the plan on every host: lvsctl installs its own static binary on each host (once, checked\n\
by sha256) and runs it as an agent that reads the current state, records the prior value of\n\
everything it changes in /var/lib/lvsctl/LAB/journal.json, then applies the changes. Prints per\n\
host what changed (before -> after) and a summary. A second `up` reports 0 changes.\n\
With --dry-run, nothing is changed: each host's pending changes are listed as + (add), ~ (change)\n\
and - (remove) with before -> after, then \"Plan: N to add, M to change, K to remove\";\n\
--detailed-exitcode makes that exit 7 when anything is pending."
    )]
    Up(UpArgs),

    /// Undo on every host exactly what `up` did, from the host's journal.
    #[command(
        long_about = "Undo what `up` did on every host, in reverse order, from the journal kept on the host: sysctls\n\
get their prior values back (not 0), only addresses, routes, IPVS entries and files that `up`\n\
added are removed, the boot unit and persistent files are removed, the journal last.\n\
Works after the inventory was edited: hosts that `up` reached but are no longer in the inventory\n\
are found through the controller's state file. --dry-run lists what would be undone, changing\n\
nothing (the journal included)."
    )]
    Down(DownArgs),

    /// Compare every host with the plan: in sync or drifted (and how), plus the IPVS table.
    Status(StatusArgs),

    /// Take a real server out of rotation gracefully: weight 0, then wait for its connections.
    #[command(
        long_about = "Drain HOST, a real server: on every director its weight becomes 0 in each service it serves (or\n\
in --service NAME only), so no new connection reaches it while established ones finish; then the\n\
directors' count of its active connections is printed as it falls, until it is 0 (with\n\
--wait-inactive, the inactive entries too: TCP ones linger for the kernel's 2-minute TIME_WAIT,\n\
UDP ones until their timeout) or until --timeout (exit status 6, with what is still open).\n\
--remove takes it out of the table once drained.\n\
The drain is kept on the director (/var/lib/lvsctl/LAB/drained.json): every later `up` and boot\n\
keeps the real server drained and says so, `status` shows it, `verify` expects nothing of it,\n\
until `lvsctl undrain`; `down` restores the weights as always. One agent run per director,\n\
streaming (--output jsonl for programs).\n\
Services keepalived runs (health checks or a sorry server) are drained through keepalived: the\n\
real server's weight parameter in its keepalived.conf becomes 0, then a reload (--remove is\n\
refused there: keepalived keeps its real servers in the table).\n\
  lvsctl drain lab.toml web1 --timeout 120 && <maintenance> && lvsctl undrain lab.toml web1"
    )]
    Drain(DrainArgs),

    /// Give a drained real server its weight back (see drain).
    Undrain(UndrainArgs),

    /// Send requests from the client to every service and check the split between real servers.
    #[command(
        long_about = "From the client (over SSH, through the agent), send N requests to every service: an HTTP GET\n\
for TCP ports 80, 8080 and 8000-8099, a plain TCP connection for other TCP ports, a datagram for\n\
UDP; each on a new connection. Each answer is attributed to a real server by its body (when it\n\
names one, as the lab's responders do) or by the director's per-destination counters, read before\n\
and after. Per service: a table with each real server's answers, share, expected share and\n\
verdict. Fails (exit 6) when a real server never answers, when answers bypass the director, when\n\
requests go unanswered, or when the split is off: rr/wrr by more than max(2, 10 %) of the\n\
requests, lc/wlc/sed/nq by more than max(3, 25 %); persistent and hashing schedulers (sh, dh, mh,\n\
lblc, lblcr, fo, ovf) must keep the one client on one real server."
    )]
    Verify(VerifyArgs),

    /// Check live state against the rules of each mode and explain every problem found.
    #[command(
        long_about = "Read the live state of every host (addresses, routes, links, ARP and rp_filter settings,\n\
forwarding, modules, the IPVS table, route lookups towards the VIPs, drift from the plan) and\n\
check it against the rules of the lab's modes. Every finding names the host, the cause, the\n\
evidence and the fix. Exit 6 when anything is found."
    )]
    Doctor(DoctorArgs),

    /// Follow one request through the lab, hop by hop, and check the walk against the mode.
    #[command(
        long_about = "Send one request from the client to a service and capture it on every host it crosses (the\n\
client, routers, the director that holds the VIP, the real servers), with lvsctl's agent on each\n\
host (AF_PACKET, filtered to the request's own client port: no tcpdump needed, one agent run per\n\
host). Then print the walk of the request and of its reply, hop by hop: interface, direction,\n\
addresses and ports, the outer header of a tunnelled packet, TTL, and what each hop changed -\n\
the destination rewritten to a real server (NAT), only the MAC (DR), an outer header added or\n\
removed (TUN), the source put back to the VIP (NAT). The walk is checked against the mode: in\n\
NAT the reply must come back through the director, in DR and TUN it must not; the director must\n\
rewrite, re-address or wrap as its mode does; the reply must reach the client from the VIP.\n\
Exit status 6 when the walk departs from the mode, each departure naming its hop.\n\
  lvsctl trace inventories/dr.toml\n\
  lvsctl trace inventories/dr-fwmark.toml --service web --output json"
    )]
    Trace(TraceArgs),

    /// Capture packets on one host of the lab into a pcapng file (tcpdump and Wireshark read it).
    #[command(
        long_about = "Capture packets on HOST, every interface or --interface IF, with lvsctl's agent (AF_PACKET:\n\
no tcpdump needed on the host), until --count packets, --seconds, or Ctrl-C, and write them to\n\
--out as pcapng with each interface's name and each packet's direction. The capture's own SSH\n\
session is left out (its packets carry the capture). The file is never overwritten.\n\
  lvsctl capture inventories/dr.toml lvs --seconds 5 --out lvs.pcapng && tcpdump -nr lvs.pcapng"
    )]
    Capture(CaptureArgs),

    /// A live view of every director: rates, connections, weights, health, the VRRP master.
    #[command(
        long_about = "Watch every director live, over one streaming agent run each: per service and real server the\n\
new connections and packets a second (from the kernel's counters, between two samples), active\n\
and inactive connections, weight and state (up, quiesced by a health check, drained, removed),\n\
and each VRRP instance's state in keepalived labs. On a terminal the screen is redrawn every\n\
--interval; through a pipe each sample is plain lines (`TIME DIRECTOR SERVICE REAL-SERVER\n\
conn/s=… pkt/s=… …`); --output jsonl gives one JSON object per row. Ctrl-C, or --seconds, ends it.\n\
Run `lvsctl verify` or `lvsctl lab load` in another terminal to watch the scheduler at work.\n\
  lvsctl top inventories/dr.toml\n\
  lvsctl top inventories/nat-ha.toml --seconds 60 | grep vrrp"
    )]
    Top(TopArgs),

    /// Print every director's metrics once, in Prometheus's text format, named as the inventory names them.
    #[command(
        long_about = "Read every director's IPVS services and real servers from its kernel (over SSH, through the\n\
agent) and print them once in Prometheus's text exposition format, labelled with the inventory's\n\
names: lab, director, service (its name, or its VIP:port or mark), real server host. Counters per\n\
service and real server (connections, packets and bytes each way), active and inactive\n\
connections, weights, each real server's state (up, quiesced, drained, removed), VRRP and sync\n\
daemon state in keepalived labs, and lvsctl's own (plan applied, drift, last up).\n\
  lvsctl metrics inventories/dr.toml | promtool check metrics"
    )]
    Metrics(MetricsArgs),

    /// Draw the lab: hosts, segments, VIPs and services, as Mermaid, Graphviz DOT or SVG.
    #[command(
        long_about = "Draw the lab's topology from the inventory alone (no host is contacted): every host with its\n\
role and addresses, the L2 segments it is wired to, which host holds each VIP (both directors of\n\
a pair, with the master by priority), and each service with its real servers and weights.\n\
Mermaid pastes into Markdown (GitHub and GitLab draw it); DOT goes to Graphviz; the SVG is drawn\n\
by lvsctl itself, no other program needed. The format follows --out's extension (.mmd, .dot,\n\
.svg) unless --format says otherwise.\n\
  lvsctl graph inventories/dr.toml                   # Mermaid to standard output\n\
  lvsctl graph inventories/dr.toml --out dr.svg      # a picture\n\
  lvsctl graph --format dot inventories/dr.toml | dot -Tpng > dr.png"
    )]
    Graph(GraphArgs),

    /// Build an inventory's hosts on this machine (network namespaces with sshd), or in a VM.
    #[command(subcommand)]
    Lab(LabCommand),

    /// Write an inventory from what exists: saved ipvsadm rules, keepalived.conf, ldirectord.cf.
    #[command(long_about = "Write an inventory from an existing setup: the rules `ipvsadm-save -n` prints on a\n\
director, a keepalived.conf or an ldirectord.cf (the format is guessed from the content;\n\
--format says it).\n\
Every virtual service becomes a service (protocol, VIP and port, scheduler and its flags,\n\
persistence and granularity, one-packet scheduling), every real server a host with its weight,\n\
thresholds and forwarding method (which gives the mode). From keepalived.conf also: each real\n\
server's check (TCP_CHECK, HTTP_GET, SSL_GET as HTTP), the sorry server, inhibit_on_failure as\n\
quiesce, the vrrp_instances as an [ha] pair (the other director's priority a guess), the sync\n\
daemon, lvs_timeouts; `include` files, `$NAME` definitions and `@ID` lines (with --config-id)\n\
are resolved as keepalived does. From ldirectord.cf: virtual= blocks, real= lines (ranges\n\
expanded), checktype connect or negotiate (http: request, receive), fallback, quiescent.\n\
What the source cannot know - how lvsctl reaches each host,\n\
interface names, the directors' own addresses - is a guess marked CHANGE, as `lvsctl init`\n\
writes it. What the inventory cannot say (a firewall mark's rules, real servers of mixed\n\
methods, MISC_CHECK, quorum, digests, ...) is listed with its file and line, and the import\n\
exits with status 8 (partial). A line that cannot be read is named, and nothing is written\n\
(status 3).\n\
  ipvsadm-save -n > rules && lvsctl import rules --out lab.toml && lvsctl check lab.toml\n\
  lvsctl import /etc/keepalived/keepalived.conf --lab --out lab.toml && lvsctl lab create lab.toml\n\
With --from-host [USER@]HOST it reads a live director instead (and with --real-server, live real\n\
servers): its IPVS table, interfaces and addresses, gateway, net.ipv4.vs.* settings and IPVS\n\
timeouts, through lvsctl's agent run once over SSH, changing nothing. The hosts read say\n\
themselves in the inventory (interface names, addresses, gateways, ssh address: nothing to\n\
CHANGE), so that `lvsctl up` of it on those hosts changes no kernel object it read.\n\
  lvsctl import --from-host root@lvs --real-server web1 --real-server web2 --out lab.toml")]
    Import(ImportArgs),

    /// Write a commented starter inventory for a mode (to stdout, or to a file with --out).
    #[command(
        long_about = "Write a commented starter inventory: a client, a router (DR and TUN), a director and N real\n\
servers in the chosen mode, valid as written (`lvsctl check` passes), with every value you must\n\
change for your own machines marked `CHANGE`: the ssh addresses, interface names and addresses.\n\
With --lab, the inventory is ready for `lvsctl lab create` instead (a [lab] table, management\n\
addresses, segments), to try the lab on this machine first.\n\
  lvsctl init --mode dr --real-servers 2 > lab.toml\n\
  lvsctl init --mode nat --lab --out nat.toml"
    )]
    Init(InitArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        long_about = "Print the completion script for SHELL, generated from lvsctl's own argument definitions:\n\
  lvsctl completions bash > /etc/bash_completion.d/lvsctl\n\
  lvsctl completions zsh > \"${fpath[1]}/_lvsctl\"\n\
  lvsctl completions fish > ~/.config/fish/completions/lvsctl.fish\n\
The Debian package installs them for bash, zsh and fish."
    )]
    Completions(CompletionsArgs),

    /// Print a man page (roff): lvsctl(1), or the inventory format, lvsctl-inventory(5).
    #[command(long_about = "Print a man page in roff: lvsctl(1), generated from the same definitions as --help, or\n\
lvsctl-inventory(5), every inventory key, generated from the definitions the parser checks against:\n\
  lvsctl man | man -l -\n\
  lvsctl man inventory | man -l -\n\
The Debian package installs them as /usr/share/man/man1/lvsctl.1.gz and\n\
/usr/share/man/man5/lvsctl-inventory.5.gz.")]
    Man(ManArgs),

    /// Print the JSON Schema of a command's --output json (or of --output jsonl's lines).
    #[command(
        long_about = "Print the JSON Schema (draft 2020-12) of what COMMAND prints with --output json, generated\n\
from the very types lvsctl serializes, so programs can check what they read:\n\
  lvsctl schema up > up.schema.json\n\
  lvsctl schema events   # each line of up/down/status --output jsonl\n\
Every document starts with schema_version, command, lab and ok; schema_version rises when a\n\
field changes meaning or goes away (new fields may appear without it)."
    )]
    Schema(SchemaArgs),

    /// Run as the on-host agent (used by lvsctl itself over SSH).
    #[command(hide = true)]
    Agent(AgentArgs),
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// lvsctl (the command, section 1) or inventory (the file format, section 5).
    #[arg(value_enum, default_value_t = ManPage::Lvsctl)]
    pub page: ManPage,
}

#[derive(Args, Debug, Clone)]
pub struct SchemaArgs {
    /// The command whose --output json to describe, or events for --output jsonl's lines.
    #[arg(value_parser = schema_names())]
    pub command: String,
}

/// `lvsctl schema`'s names, from the contract's list.
fn schema_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(crate::contract::SchemaOf::ALL.map(|s| {
        let v = clap::builder::PossibleValue::new(s.name());
        match s.about() {
            Some(about) => v.help(about),
            None => v,
        }
    }))
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ManPage {
    Lvsctl,
    Inventory,
}

#[derive(Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    /// mermaid, dot or svg (default: from --out's extension, else mermaid).
    #[arg(long, value_enum)]
    pub format: Option<GraphFormat>,
    /// Write to FILE (replaced atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
    Svg,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The forwarding mode of the lab's services.
    #[arg(long, value_enum, default_value_t = InitMode::Dr)]
    pub mode: InitMode,
    /// How many real servers.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=50))]
    pub real_servers: u8,
    /// Lab name (1-20 of a-z 0-9 -).
    #[arg(long, default_value = "lab", value_name = "NAME")]
    pub name: String,
    /// Write an inventory for `lvsctl lab create` (hosts on this machine) instead of your own VMs.
    #[arg(long)]
    pub lab: bool,
    /// Write to FILE (refused when it exists) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The file to read (`-` for standard input).
    #[arg(value_name = "FILE", required_unless_present = "from_host", conflicts_with = "from_host")]
    pub file: Option<PathBuf>,
    /// Read a live director over SSH instead of a file: its IPVS table, addresses, gateway and
    /// net.ipv4.vs.* settings, through lvsctl's agent run once (nothing on it is changed or left).
    #[arg(long, value_name = "[USER@]HOST")]
    pub from_host: Option<String>,
    /// With --from-host: a real server to read too (its addresses and gateway), by the address
    /// lvsctl reaches it at; repeat for each.
    #[arg(long = "real-server", value_name = "[USER@]HOST", requires = "from_host")]
    pub real_servers: Vec<String>,
    /// With --from-host: run the agent through `sudo -n` (a non-root login user).
    #[arg(long, requires = "from_host")]
    pub sudo: bool,
    /// With --from-host: add unknown hosts' keys to known_hosts on first contact (default:
    /// every host's key must be there already).
    #[arg(long, requires = "from_host")]
    pub accept_new_host_keys: bool,
    /// With --from-host: an ssh_config file for the connections.
    #[arg(long, value_name = "FILE", env = "LVSCTL_SSH_CONFIG")]
    pub ssh_config: Option<PathBuf>,
    /// With --from-host: the static lvsctl binary run on the hosts (default: this binary, when
    /// it is static).
    #[arg(long, value_name = "FILE", env = "LVSCTL_AGENT_BINARY")]
    pub agent_binary: Option<PathBuf>,
    /// What the file is (guessed from its content when left out).
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,
    /// Lab name (1-20 of a-z 0-9 -).
    #[arg(long, default_value = "imported", value_name = "NAME")]
    pub name: String,
    /// Write it for `lvsctl lab create` (hosts on this machine; a client and a router added)
    /// instead of for the machines the rules came from.
    #[arg(long)]
    pub lab: bool,
    /// keepalived.conf: the config id keepalived runs with (`keepalived -i ID`), which decides
    /// its `@ID` and `@^ID` lines.
    #[arg(long, value_name = "ID")]
    pub config_id: Option<String>,
    /// Write to FILE (refused when it exists) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// `ipvsadm-save -n` rules: -A and -a lines.
    Ipvsadm,
    /// keepalived.conf: virtual_server blocks, vrrp_instance blocks, global_defs.
    Keepalived,
    /// ldirectord.cf: virtual= blocks with real= lines, global defaults.
    Ldirectord,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitMode {
    Nat,
    Dr,
    Tun,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug, Clone)]
pub struct InventoryArg {
    /// The inventory file (TOML): hosts, their roles and SSH access, the services (see README).
    pub inventory: PathBuf,
}

/// `--host HOST…`: the hosts a command is limited to.
#[derive(Args, Debug, Clone, Default)]
pub struct HostFilter {
    /// Only these hosts (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct OutputArg {
    /// text for people, json for programs (lvsctl schema COMMAND describes it).
    #[arg(long, value_enum, default_value_t = Output::Text, value_name = "FORMAT")]
    pub output: Output,
}

/// `--output` of the commands that run on hosts: text, one JSON document, or events as lines.
#[derive(Args, Debug, Clone, Copy)]
pub struct StreamOutputArg {
    /// text for people; json for programs, one document at the end; jsonl, one JSON object per
    /// line as things happen (each change and note, each host when it is done, then the end);
    /// lvsctl schema COMMAND and lvsctl schema events describe them.
    #[arg(long, value_enum, default_value_t = StreamOutput::Text, value_name = "FORMAT")]
    pub output: StreamOutput,
}

#[derive(Args, Debug, Clone)]
pub struct TemplatesArg {
    /// Directory of templates replacing the embedded ones by file name.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum StreamOutput {
    Text,
    Json,
    Jsonl,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    #[command(flatten)]
    pub out: OutputArg,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    #[command(flatten)]
    pub filter: HostFilter,
    #[command(flatten)]
    pub out: OutputArg,
    #[command(flatten)]
    pub tpl: TemplatesArg,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    #[command(flatten)]
    pub filter: HostFilter,
    /// Write the files to DIR/HOST/ instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub tpl: TemplatesArg,
    /// text: the files; json: every host's files with path, mode, size, sha256 and content.
    #[command(flatten)]
    pub format: OutputArg,
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub filter: HostFilter,
    /// How many hosts to work on at once.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// ssh_config file for every connection (default: the lab's, when `lvsctl lab create` made one).
    #[arg(long, value_name = "FILE", env = "LVSCTL_SSH_CONFIG")]
    pub ssh_config: Option<PathBuf>,
    /// Static lvsctl binary to install on hosts (default: this binary, when it is static).
    #[arg(long, value_name = "FILE", env = "LVSCTL_AGENT_BINARY")]
    pub agent_binary: Option<PathBuf>,
    /// Where the controller keeps which hosts each lab touched.
    #[arg(long, value_name = "DIR", env = "LVSCTL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Keep each host's ssh connection open this many idle seconds after the command, so that the
    /// next command reuses it instead of connecting again (ssh ControlPersist); 0 closes them.
    #[arg(long, default_value_t = 60, value_name = "SECONDS", env = "LVSCTL_SSH_PERSIST")]
    pub ssh_persist: u32,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Show what would change on each host (+ add, ~ change, - remove), change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: exit status 7 when changes are pending (0: none; as terraform's).
    #[arg(long, requires = "dry_run")]
    pub detailed_exitcode: bool,
    /// Replace a default route even where it carries the SSH session lvsctl arrives on (refused
    /// without it: the host could become unreachable).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub tpl: TemplatesArg,
    #[command(flatten)]
    pub out: StreamOutputArg,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Show what would be undone on each host (- remove, ~ change back), change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: exit status 7 when anything would be undone (0: nothing).
    #[arg(long, requires = "dry_run")]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub out: StreamOutputArg,
}

/// The arguments of the commands that read every host's live state against its plan.
#[derive(Args, Debug)]
pub struct LiveArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub out: OutputArg,
    #[command(flatten)]
    pub tpl: TemplatesArg,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Requests per service.
    #[arg(long, default_value_t = 40, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub requests: u32,
    /// Send from this host (default: the first host with role = client).
    #[arg(long, value_name = "HOST")]
    pub from: Option<String>,
    /// Seconds to wait for each connection and answer before counting the request as failed.
    #[arg(long, default_value_t = 3, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub timeout: u64,
    /// HA pairs: while requests flow, stop keepalived on the master, measure how long the VIP goes
    /// unanswered until the backup takes over, check the split through the backup, then start the
    /// master again and measure the failback.
    #[arg(long)]
    pub failover: bool,
    /// With --failover: fail when the VIP goes unanswered for longer than this.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS", requires = "failover")]
    pub max_outage: f64,
    /// With --failover: how long the client sends requests in each of the two phases (takeover,
    /// failback). keepalived is stopped (or started) 5 s into a phase; with connection sync, the
    /// connection opened before the failover sends the rest of its request 10 s before the phase
    /// ends. Shorter phases finish sooner but leave less room for a slow takeover.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", requires = "failover", value_parser = clap::value_parser!(u64).range(20..=600))]
    pub failover_phase: u64,
    #[command(flatten)]
    pub out: OutputArg,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    /// The service to send the request to, by its name (default: the inventory's first service).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// The VIP to send to, where the service has several (a dual-stack or firewall-mark service;
    /// with --port, one port of a firewall-mark service).
    #[arg(long, value_name = "ADDRESS")]
    pub vip: Option<std::net::IpAddr>,
    /// The port to send to, of a firewall-mark service that takes several.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Send from this host (default: the first host with role = client).
    #[arg(long, value_name = "HOST")]
    pub from: Option<String>,
    /// Seconds to wait for the connection and the answer.
    #[arg(long, default_value_t = 3, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub timeout: u64,
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub out: OutputArg,
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    /// The host to capture on, by its name in the inventory.
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Only this interface of the host (default: every interface).
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// Stop after this many packets.
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub count: u32,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Bytes kept of each packet.
    #[arg(long, default_value_t = 262144, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(64..=262144))]
    pub snaplen: u32,
    /// The pcapng file to write (it must not exist).
    #[arg(long, value_name = "FILE.pcapng")]
    pub out: PathBuf,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    /// Seconds between two samples.
    #[arg(long, default_value_t = 1, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub interval: u64,
    /// End after this many seconds (default: at Ctrl-C).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub seconds: Option<u64>,
    #[command(flatten)]
    pub out: TopOutputArg,
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub tpl: TemplatesArg,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct TopOutputArg {
    /// text: a screen on a terminal, lines through a pipe; jsonl: one JSON object per row.
    #[arg(long, value_enum, default_value_t = TopOutput::Text, value_name = "FORMAT")]
    pub output: TopOutput,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopOutput {
    Text,
    Jsonl,
}

#[derive(Args, Debug)]
pub struct MetricsArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub tpl: TemplatesArg,
}

/// What `drain` and `undrain` name: the lab, the real server, maybe one service; how to reach
/// the directors and what to print.
#[derive(Args, Debug)]
pub struct DrainTarget {
    #[command(flatten)]
    pub inv: InventoryArg,
    /// The real server, by its host name.
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Only this service (its name in the inventory).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub out: StreamOutputArg,
    #[command(flatten)]
    pub tpl: TemplatesArg,
}

#[derive(Args, Debug)]
pub struct DrainArgs {
    #[command(flatten)]
    pub target: DrainTarget,
    /// Seconds to wait for the connections before giving up (exit status 6).
    #[arg(long, default_value_t = 300, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: u64,
    /// Wait for the inactive connection entries too.
    #[arg(long)]
    pub wait_inactive: bool,
    /// Take the real server out of the table once drained.
    #[arg(long)]
    pub remove: bool,
}

#[derive(Args, Debug)]
pub struct UndrainArgs {
    #[command(flatten)]
    pub target: DrainTarget,
}

/// `status`: `LiveArgs` with events as lines too (`--output jsonl`).
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub out: StreamOutputArg,
    #[command(flatten)]
    pub tpl: TemplatesArg,
}
pub type DoctorArgs = LiveArgs;

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// Build the inventory's hosts as network namespaces with a real sshd each.
    #[command(
        long_about = "Build the inventory's hosts on this machine: one network namespace per host, one bridge per\n\
[lab] segment (the bridges live in a namespace of their own, so this machine's root namespace is\n\
left alone), a management network carrying each host's `ssh` address, private /etc, /var, /root,\n\
/usr/local and /opt per host, and a real sshd per host trusted through a lab key. Hosts start bare:\n\
`lvsctl up` does all the provisioning over SSH. Real servers run a tiny responder that answers\n\
each service port with the host's name. Later lvsctl commands on the same inventory reach the\n\
hosts through the lab automatically. Needs root, and a kernel with IPVS (see `lab vm`)."
    )]
    Create(LabCreateArgs),
    /// Remove everything `lab create` made (also after a failed create).
    Destroy(InventoryArg),
    /// Run a command inside a lab host's namespaces (network and files). The lab is found by the
    /// inventory's `name` alone, so an inventory being edited still reaches its lab.
    Exec(LabExecArgs),
    /// Simulate a reboot of a host: fresh kernel state, same files, boot units started.
    Reboot(LabRebootArgs),
    /// Delay, jitter, loss or a rate limit on a lab segment or one host's link (netem), or --clear.
    #[command(long_about = "Impair the lab's own links with the kernel's netem: a SEGMENT of [lab] segments (every\n\
port of its bridge: each packet crossing the segment meets it once) or HOST:IFACE (both ends of\n\
that host's link: it acts both ways). --clear takes it off again. Only links `lab create` made\n\
are touched; `lab show` lists every link and what impairs it.\n\
  lvsctl lab impair inventories/dr.toml web2:eth0 --loss 100%    # web2 cut off\n\
  lvsctl lab impair inventories/dr.toml front --delay 200ms --jitter 20ms\n\
  lvsctl lab impair inventories/dr.toml front --clear")]
    Impair(LabImpairArgs),
    /// The lab's hosts and links, with what impairs each link (text, or --output json).
    Show(LabShowArgs),
    /// Take one of a host's links down at its segment (the host loses carrier); `lab heal` undoes it.
    Cut(LabLinkArgs),
    /// Bring a link `lab cut` took down back.
    Heal(LabLinkArgs),
    /// Stop a host as if its power were pulled: its segment links down, its processes frozen.
    #[command(long_about = "Stop a lab host as its peers would see a dead machine: every one of its segment links\n\
down at the bridge and every process in it frozen (SIGSTOP). `lab start` thaws them and brings\n\
the links back. Its management link stays up, so lvsctl's own sessions to it survive.\n\
  lvsctl lab stop inventories/dr-ha.toml lvs1    # the backup director takes over\n\
  lvsctl lab start inventories/dr-ha.toml lvs1   # and gives the VIP back (preempt)")]
    Stop(LabRebootArgs),
    /// Start a host `lab stop` stopped: its processes thawed, its links up.
    Start(LabRebootArgs),
    /// Run a command inside a qemu guest with a distribution kernel (IPVS, ipip) and this machine's files.
    #[command(
        long_about = "Boot a qemu guest (software emulation) with the newest kernel in /boot and this machine's root\n\
filesystem shared read-only under a writable overlay, run COMMAND inside it (same working directory,\n\
same environment), stream its output, and exit with its status. For kernels without IPVS, such as\n\
many CI machines:\n\
  lvsctl lab vm -- sh -c 'lvsctl lab create dr.toml && lvsctl up dr.toml && lvsctl verify dr.toml'\n\
With --if-needed, COMMAND runs directly on this machine when its kernel has IPVS and ipip.\n\
Installs qemu-system-x86, linux-image-amd64 and busybox-static with apt-get when missing. What the\n\
guest writes is lost when it ends: its root is this machine's, read-only, under a memory overlay."
    )]
    Vm(LabVmArgs),
    /// Send a bounded HTTP load from a lab host to a service and count every answer.
    #[command(
        long_about = "Send a bounded HTTP load to ADDR:PORT from a host of the lab on this machine (its network\n\
namespace; the lab's client unless --from names another):\n\
  lvsctl lab load lab.toml --to 192.168.188.100:80 --seconds 30 --slow 2\n\
CONCURRENCY workers send short requests one after the other until the deadline, and SLOW workers\n\
download SLOW_BYTES paced by the lab's responder (GET /slow/N, about 320 KB/s), each starting its\n\
next download when one ends, so that slow connections are open at every moment of the load (a\n\
drain always has some to wait for). Every answer must arrive whole (its Content-Length); it is\n\
attributed to the real server that sent it. At the deadline (or SIGTERM, Ctrl-C) the short\n\
requests in flight finish and a download still arriving is cut: reported as \"cut\" with the\n\
bytes that had come, not as a failure. Prints one JSON document: answers per server, failures,\n\
the slow downloads, and each short request's start time and server. Exit status 6 when any\n\
request failed. Bounded: at most 600 seconds, 64 workers and 16 slow workers; the lab's\n\
responders answer only lab hosts."
    )]
    Load(LabLoadArgs),
    /// Serve a host's name over TCP/UDP (the lab's real-server responder).
    #[command(hide = true)]
    Responder(ResponderArgs),
    /// Inside the guest: stage-two init of `lab vm`.
    #[command(hide = true)]
    VmInit,
    /// Inside a lab host: start its lvsctl boot units (used by `lab reboot`).
    #[command(hide = true)]
    BootUnits {
        #[arg(long)]
        lab: String,
    },
}

#[derive(Args, Debug)]
pub struct LabExecArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    pub host: String,
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LabCreateArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    /// Have the lab's ssh_config use the key exchange curve25519-sha256 and the cipher
    /// aes128-gcm@openssh.com instead of OpenSSH's defaults (sntrup761x25519-sha512,
    /// chacha20-poly1305): about half the CPU per new connection, which counts under emulation
    /// (the tests use it). Without it, the lab's connections use what OpenSSH prefers.
    #[arg(long)]
    pub fast_ssh: bool,
}

#[derive(Args, Debug)]
pub struct LabImpairArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    /// A segment of [lab] segments, or HOST:IFACE.
    pub target: String,
    /// One-way delay: 50ms, 1s, 200us.
    #[arg(long, value_name = "TIME")]
    pub delay: Option<String>,
    /// How much the delay varies (with --delay).
    #[arg(long, value_name = "TIME")]
    pub jitter: Option<String>,
    /// Packets dropped: 5%, 100%.
    #[arg(long, value_name = "PERCENT")]
    pub loss: Option<String>,
    /// A rate limit: 10mbit, 500kbit.
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// Take the impairment off instead.
    #[arg(long, conflicts_with_all = ["delay", "jitter", "loss", "rate"])]
    pub clear: bool,
}

#[derive(Args, Debug)]
pub struct LabLinkArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    /// HOST:IFACE, a host's interface on a lab segment.
    pub link: String,
}

#[derive(Args, Debug)]
pub struct LabShowArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    #[command(flatten)]
    pub out: OutputArg,
}

#[derive(Args, Debug)]
pub struct LabRebootArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    pub host: String,
}

#[derive(Args, Debug)]
pub struct LabVmArgs {
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 3072)]
    pub memory: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// The CPU qemu emulates (`-cpu`; `qemu-system-x86_64 -cpu help` lists them). What the guest's
    /// programs find there decides which code paths they take under emulation.
    #[arg(long, default_value = "max", value_name = "MODEL")]
    pub cpu_model: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
    /// Do not install missing Debian packages; fail instead.
    #[arg(long)]
    pub no_install: bool,
    /// Run COMMAND directly on this machine when its kernel has IPVS and ipip (no guest needed).
    #[arg(long)]
    pub if_needed: bool,
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LabLoadArgs {
    #[command(flatten)]
    pub inv: InventoryArg,
    /// The lab host the load comes from (default: the lab's client).
    #[arg(long, value_name = "HOST")]
    pub from: Option<String>,
    /// The service: ADDR:PORT ([ADDR]:PORT for IPv6).
    #[arg(long)]
    pub to: std::net::SocketAddr,
    /// How long the short requests go on (at most 600).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Workers sending short requests (at most 64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// Slow-download workers, each downloading again when one ends (at most 16).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=16))]
    pub slow: u64,
    /// Bytes of each slow download (at most 64 MiB).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=(64 << 20)))]
    pub slow_bytes: u64,
    /// Seconds one short request may take.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,
    /// At most this many short requests per second, all workers together (default: as fast as
    /// they are answered). A client's source ports come round again after a few thousand
    /// connections, and a DR or TUN director keeps a closed connection's entry for its tcp_fin
    /// timeout (2 minutes): a faster load leaves entries that later requests from the same
    /// ports follow to their old real server.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub rate: Option<u64>,
}

#[derive(Args, Debug)]
pub struct ResponderArgs {
    /// The name to answer with.
    #[arg(long)]
    pub name: String,
    /// tcp:PORT or udp:PORT (repeatable).
    #[arg(long = "listen", required = true)]
    pub listen: Vec<String>,
    /// VIPs to answer UDP from (repeatable).
    #[arg(long = "vip")]
    pub vip: Vec<std::net::IpAddr>,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: AgentCommand,
}

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Read one request (JSON) on stdin, answer with JSON lines on stdout.
    Serve,
    /// Boot-time entry point used by the systemd unit.
    Boot {
        #[arg(value_parser = ["start", "stop"])]
        action: String,
        #[arg(long)]
        lab: String,
    },
    /// The exporter `up` starts on directors of a lab with [metrics]: Prometheus's /metrics.
    Metrics {
        #[arg(long)]
        lab: String,
        /// ADDR:PORT ([ADDR]:PORT for IPv6).
        #[arg(long)]
        listen: String,
    },
}
