//! The command line: `vrrpd --config FILE [--state MASTER|BACKUP] [--priority N] ...` runs the
//! daemon; subcommands do everything else.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ha_common::config::InitialState;
use ha_common::logging::LogFormat;

pub const DEFAULT_CONFIG: &str = "/etc/vrrpd/vrrpd.toml";

#[derive(Clone, Debug, Parser)]
#[command(
    name = "vrrpd",
    version,
    about = "VRRPv2 speaker and AMQP balancer for a pair of proxy hosts: keepalived + HAProxy in one process",
    long_about = "vrrpd moves a virtual IP between two proxy hosts with VRRPv2 (RFC 3768, wire-compatible \
                  with keepalived) and balances AMQP connections over RabbitMQ nodes.\n\n\
                  Run the daemon:   vrrpd --config /etc/vrrpd/vrrpd.toml [--state MASTER]\n\
                  Check a file:     vrrpd check --config /etc/vrrpd/vrrpd.toml"
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
        #[arg(long, value_name = "FILE")]
        keepalived: Option<PathBuf>,
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
