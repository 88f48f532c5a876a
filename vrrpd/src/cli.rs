//! The command line: `vrrpd --config FILE [--state MASTER|BACKUP] [--priority N] ...` runs the
//! daemon; subcommands do everything else. The man page and the shell completions are rendered
//! from the same [`Cli`] (`vrrpd generate ...`), so they cannot drift from it.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;
use ha_common::config::InitialState;
use ha_common::logging::LogFormat;

pub const DEFAULT_CONFIG: &str = "/etc/vrrpd/vrrpd.toml";

#[derive(Clone, Debug, Parser)]
#[command(
    name = "vrrpd",
    version,
    about = "VRRPv2 speaker and AMQP balancer for a pair of proxy hosts: keepalived + HAProxy in one process",
    long_about = "vrrpd moves a virtual IP between two proxy hosts with VRRPv2 (RFC 3768, wire-compatible \
                  with keepalived) and balances AMQP connections over RabbitMQ nodes: keepalived and HAProxy \
                  in one process, one per proxy host.\n\n\
                  The MASTER holds the VIPs and announces them with gratuitous ARP. The balancer checks its \
                  servers (a TCP connect or an AMQP handshake) and sends each session to one that is UP; a \
                  proxy left without a server can put its instance in FAULT, so the VIP moves to the peer. \
                  The stats listener serves an HTML page, HAProxy-style CSV and Prometheus metrics.\n\n\
                  Run the daemon:   vrrpd --config /etc/vrrpd/vrrpd.toml [--state MASTER]\n\
                  Check a file:     vrrpd check --config /etc/vrrpd/vrrpd.toml",
    after_long_help = reference_as_text()
)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(short, long, global = true, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    /// Initial state of every instance, overriding `state` in the file (keepalived's `state`).
    #[arg(long, value_name = "MASTER|BACKUP", value_parser = parse_state)]
    pub state: Option<InitialState>,

    /// Priority of every instance, overriding `priority` in the file (1..=255).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=255))]
    pub priority: Option<u8>,

    /// Log line format.
    #[arg(long, value_name = "text|json", default_value = "text", value_parser = parse_log_format)]
    pub log_format: LogFormat,

    /// Log level or filter (error, warn, info, debug, trace); VRRPD_LOG is used when absent.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration and what the start would find on this host (scripts, their
    /// users and their security), and print what it would run; exit 0 if valid, 1 if not.
    Check {
        /// Validate the file only, not this host: for a file meant for another machine.
        #[arg(long)]
        offline: bool,
    },
    /// Print the vrrpd configuration equivalent to a keepalived.conf (and a haproxy.cfg);
    /// what cannot be carried over is listed on stderr with its file and line.
    Import {
        /// The keepalived.conf to translate: its vrrp_instance, vrrp_script and track blocks.
        #[arg(long, value_name = "FILE")]
        keepalived: Option<PathBuf>,
        /// The haproxy.cfg to translate: its TCP frontends and backends become [[proxy]] tables.
        #[arg(long, value_name = "FILE")]
        haproxy: Option<PathBuf>,
    },
    /// Talk to the running daemon through its control socket.
    #[command(after_help = crate::control::command::USAGE)]
    Ctl {
        /// Control socket (default: control_socket from the configuration file).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
        words: Vec<String>,
    },
    /// Print a file generated from this command line, for packaging (scripts/install.sh).
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

/// What `vrrpd generate` prints.
#[derive(Clone, Copy, Debug, Subcommand)]
pub enum Generate {
    /// The vrrpd(8) manual page, as roff.
    Man,
    /// The completion script for SHELL.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn parse_state(text: &str) -> Result<InitialState, String> {
    text.parse()
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    text.parse()
}

impl Cli {
    /// What `--state` and `--priority` override.
    pub fn overrides(&self) -> crate::config::Overrides {
        crate::config::Overrides { state: self.state, priority: self.priority }
    }
}

/// Writes what `vrrpd generate` was asked for.
pub fn generate(what: Generate, out: &mut dyn Write) -> io::Result<()> {
    match what {
        Generate::Man => out.write_all(man_page().as_bytes()),
        Generate::Completions { shell } => {
            // Into memory first: clap_complete panics when its writer fails (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "vrrpd", &mut script);
            out.write_all(&script)
        }
    }
}

/// The sections of vrrpd(8) that are not about arguments, as (term, description); `vrrpd --help`
/// shows them too.
const REFERENCE: &[(&str, &[(&str, &str)])] = &[
    (
        "FILES",
        &[
            (
                "/etc/vrrpd/vrrpd.toml",
                "The configuration (--config), read at start and on every reload. Mode 0640: it holds the VRRP \
                 password and the stats credentials. `vrrpd check` validates it.",
            ),
            ("/run/vrrpd/vrrpd.sock", "The control socket `vrrpd ctl` talks to ([global] control_socket), mode 0600."),
            (
                "/etc/systemd/system/vrrpd.service",
                "The systemd unit: Type=notify with a watchdog, runs as the vrrpd user with CAP_NET_ADMIN, \
                 CAP_NET_RAW and CAP_NET_BIND_SERVICE; `systemctl reload vrrpd` sends HUP.",
            ),
        ],
    ),
    (
        "SIGNALS",
        &[
            (
                "TERM, INT",
                "Resign and exit: every MASTER sends one priority-0 advert (the peer takes over after its \
                 Skew_Time), the VIPs are removed, sessions drain up to hard_stop_after; exit status 0.",
            ),
            (
                "HUP",
                "Reload the configuration, as `vrrpd ctl reload`: an instance keeping its name and VRID is \
                 reconfigured in place (a MASTER stays MASTER), servers keeping name and address keep their \
                 sessions. An invalid file is refused, the reason logged, and the running configuration stays.",
            ),
        ],
    ),
    (
        "ENVIRONMENT",
        &[
            ("VRRPD_LOG", "Log level or tracing filter, when --log-level is absent."),
            (
                "NOTIFY_SOCKET, WATCHDOG_USEC",
                "Set by systemd: vrrpd reports READY, STATUS (each instance's state), RELOADING and STOPPING, \
                 and pings the watchdog from its VRRP loop.",
            ),
            ("JOURNAL_STREAM", "Set by systemd when stderr goes to the journal: log lines carry no timestamp."),
        ],
    ),
    (
        "EXIT STATUS",
        &[
            ("0", "Success; the daemon after TERM or INT."),
            (
                "1",
                "An invalid configuration, a failed start, a `vrrpd ctl` command the daemon refused or could not \
                 be sent, or a VRRP driver that panicked (the VIPs are removed first, for a restart).",
            ),
            ("2", "A command line vrrpd does not understand."),
        ],
    ),
];

const SEE_ALSO: &[(&str, &str)] =
    &[("keepalived", "8"), ("keepalived.conf", "5"), ("haproxy", "1"), ("systemd.service", "5"), ("systemctl", "1")];

/// `--help`'s closing part: the reference sections as plain text.
fn reference_as_text() -> String {
    let mut text = String::new();
    for (heading, entries) in REFERENCE {
        text.push_str(&format!("{heading}:\n"));
        for (term, description) in *entries {
            text.push_str(&format!("  {term}\n          {description}\n"));
        }
        text.push('\n');
    }
    let see_also: Vec<String> = SEE_ALSO.iter().map(|(page, section)| format!("{page}({section})")).collect();
    text.push_str(&format!("See also: {}", see_also.join(", ")));
    text
}

/// vrrpd(8): clap_mangen's NAME, SYNOPSIS (a line per command) and OPTIONS; the
/// description, COMMANDS with each command's own options, and the reference sections.
pub fn man_page() -> String {
    let root = Cli::command();
    let commands: Vec<clap::Command> = root
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        // The global options and --help are documented once, under OPTIONS.
        .map(|c| c.clone().bin_name(format!("vrrpd {}", c.get_name())).disable_help_flag(true))
        .collect();
    let version = root.get_version().unwrap_or_default().to_owned();
    let about = root.get_long_about().or(root.get_about()).map(ToString::to_string).unwrap_or_default();
    let man = Man::new(root).section("8");

    // The preamble every rendered part starts with, once.
    let mut page = Roff::new().render();
    // By hand: clap_mangen would write an empty date as no argument at all, shifting the others.
    page += &format!(".TH VRRPD 8 \"\" \"vrrpd {version}\" \"System Manager's Manual\"\n");
    page += &rendered(|w| man.render_name_section(w), Heading::Keep);
    page += &rendered(|w| man.render_synopsis_section(w), Heading::Keep);
    for command in &commands {
        page += ".br\n";
        page += &rendered(|w| Man::new(command.clone()).render_synopsis_section(w), Heading::Drop);
    }
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    paragraphs(&mut roff, &about);
    page += &roff.to_roff();
    page += &rendered(|w| man.render_options_section(w), Heading::Keep);

    page += &Roff::new().control("SH", ["COMMANDS"]).to_roff();
    for command in &commands {
        let mut roff = Roff::new();
        roff.control("SS", [command.get_bin_name().unwrap_or_default()]);
        paragraphs(&mut roff, &command.get_long_about().or(command.get_about()).map(ToString::to_string).unwrap_or_default());
        page += &roff.to_roff();
        if command.get_arguments().next().is_some() {
            page += &rendered(|w| Man::new(command.clone()).render_options_section(w), Heading::Drop);
        }
        if let Some(after) = command.get_after_long_help().or(command.get_after_help()) {
            let mut roff = Roff::new();
            roff.control("PP", []).control("nf", []);
            for line in after.to_string().lines() {
                roff.text([roman(line)]);
            }
            page += &roff.control("fi", []).to_roff();
        }
    }

    let mut roff = Roff::new();
    for (heading, entries) in REFERENCE {
        roff.control("SH", [*heading]);
        for (term, description) in *entries {
            roff.control("TP", []).text([bold(*term)]).text([roman(*description)]);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut see_also = Vec::new();
    for (i, (page, section)) in SEE_ALSO.iter().enumerate() {
        if i > 0 {
            see_also.push(roman(", "));
        }
        see_also.extend([bold(*page), roman(format!("({section})"))]);
    }
    roff.text(see_also);
    roff.control("PP", []).text([
        roman("README.md in the vrrpd sources: installing on two hosts, failover drills, migrating from "),
        italic("keepalived"),
        roman(" and "),
        italic("HAProxy"),
        roman(" one host at a time."),
    ]);
    page += &roff.to_roff();
    page
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Heading {
    Keep,
    /// For a part that goes under another heading.
    Drop,
}

/// One part clap_mangen renders, without the preamble it starts with.
fn rendered(render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>, heading: Heading) -> String {
    let mut buffer = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = render(&mut buffer);
    let text = String::from_utf8_lossy(&buffer);
    let preamble = Roff::new().render();
    let text = text.strip_prefix(preamble.as_str()).unwrap_or(&text);
    text.lines().filter(|l| heading == Heading::Keep || !l.starts_with(".SH ")).flat_map(|l| [l, "\n"]).collect()
}

/// Help text as roff: a blank line starts a paragraph, a line break stays one.
fn paragraphs(roff: &mut Roff, text: &str) {
    let mut in_paragraph = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            roff.control("PP", []);
            in_paragraph = false;
        } else {
            if in_paragraph {
                roff.control("br", []);
            }
            roff.text([roman(line)]);
            in_paragraph = true;
        }
    }
}
