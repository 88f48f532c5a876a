use std::process::ExitCode;

use clap::Parser;
use ha_common::config::{Config, ConfigError};
use vrrpd::check;
use vrrpd::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check) => run_check(&cli),
        Some(Command::Ctl { ref socket, ref words }) => run_ctl(&cli, socket.as_deref(), words),
        Some(Command::Import { ref keepalived, ref haproxy }) => run_import(keepalived.as_deref(), haproxy.as_deref()),
        None => run_daemon(cli),
    }
}

fn run_check(cli: &Cli) -> ExitCode {
    let loaded = match Config::load(&cli.config) {
        Ok(loaded) => loaded,
        Err(error) => return report_invalid(&error),
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let mut config = loaded.config;
    cli.apply_overrides(&mut config);
    println!("{}: valid", cli.config.display());
    print!("{}", check::summary(&config));
    ExitCode::SUCCESS
}

/// `vrrpd ctl`: the socket comes from `--socket`, else from the configuration file, else the
/// default path.
fn run_ctl(cli: &Cli, socket: Option<&std::path::Path>, words: &[String]) -> ExitCode {
    let socket = match socket {
        Some(path) => path.to_owned(),
        None => match Config::load(&cli.config) {
            Ok(loaded) => loaded.config.global.control_socket,
            Err(_) => std::path::PathBuf::from(ha_common::config::DEFAULT_CONTROL_SOCKET),
        },
    };
    match vrrpd::control::request(&socket, words) {
        Ok(reply) if reply.ok => {
            println!("{}", reply.message.trim_end());
            ExitCode::SUCCESS
        }
        Ok(reply) => {
            eprintln!("error: {}", reply.message.trim_end());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_import(keepalived: Option<&std::path::Path>, haproxy: Option<&std::path::Path>) -> ExitCode {
    if keepalived.is_none() && haproxy.is_none() {
        eprintln!("error: give --keepalived FILE, --haproxy FILE, or both");
        return ExitCode::from(2);
    }
    match vrrpd::import::import(keepalived, haproxy) {
        Ok(imported) => {
            print!("{}", imported.toml);
            for note in &imported.notes {
                eprintln!("{note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn report_invalid(error: &ConfigError) -> ExitCode {
    eprintln!("error: {error}");
    if error.problems().len() > 1 {
        eprintln!("{} problems", error.problems().len());
    }
    ExitCode::FAILURE
}

fn run_daemon(cli: Cli) -> ExitCode {
    if let Err(error) = ha_common::logging::init(cli.log_format, cli.log_level.as_deref()) {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    let loaded = match Config::load(&cli.config) {
        Ok(loaded) => loaded,
        Err(error) => return report_invalid(&error),
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let mut config = loaded.config;
    cli.apply_overrides(&mut config);
    if let Some(user) = config.global.user.clone() {
        if nix::unistd::geteuid().is_root() {
            if let Err(error) = vrrpd::privileges::drop_to(&user, &config.global.control_socket) {
                tracing::error!("{error}");
                return ExitCode::FAILURE;
            }
            tracing::info!(user, "dropped root; kept CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE");
        }
    }
    match vrrpd::daemon::run(cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}
