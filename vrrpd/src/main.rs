use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use ha_common::config::ConfigError;
use vrrpd::cli::{Cli, Command};
use vrrpd::config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { offline }) => run_check(&cli, offline),
        Some(Command::Ctl { ref socket, ref words }) => run_ctl(&cli, socket.as_deref(), words),
        Some(Command::Import { ref keepalived, ref haproxy }) => run_import(keepalived.as_deref(), haproxy.as_deref()),
        Some(Command::Generate { what }) => run_generate(what),
        None => run_daemon(&cli),
    }
}

fn run_check(cli: &Cli, offline: bool) -> ExitCode {
    let load = if offline { config::load_offline } else { config::load };
    let loaded = match load(&cli.config, &cli.overrides()) {
        Ok(loaded) => loaded,
        Err(error) => return report_invalid(&error),
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    if loaded.config.global.user.is_none() {
        eprintln!("warning: if started as root, vrrpd stays root: {}", vrrpd::privileges::ROOT_WITHOUT_USER);
    }
    // The scripts as the start would take them: they exist, their users exist, and the
    // security check passes for the user running this check (the unit's ExecStartPre runs it
    // with vrrpd's own identity). --offline checks a file for another machine: the file only.
    if !offline && !check_host(cli, &loaded.config) {
        return ExitCode::FAILURE;
    }
    println!("{}: valid", cli.config.display());
    print!("{}", vrrpd::preflight::summary(&loaded.config));
    ExitCode::SUCCESS
}

/// What the start would find on this host: the scripts (they exist, their users exist, the
/// security check passes for the identity running this check, as the unit's ExecStartPre
/// does), the interfaces, their addresses, the users. Prints every problem located in the
/// file; returns whether the start may go ahead.
fn check_host(cli: &Cli, config: &ha_common::Config) -> bool {
    let mut ok = true;
    if let Err(problems) = vrrpd::daemon::plan::plan(config) {
        for problem in &problems {
            eprintln!("error: {}: {problem}", cli.config.display());
        }
        ok = false;
    }
    let findings =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string()).and_then(|runtime| {
            runtime.block_on(async {
                let netlink = vrrpd::vrrp::net::link::Netlink::new().map_err(|e| e.to_string())?;
                Ok(vrrpd::preflight::host_findings(config, &netlink).await)
            })
        });
    let locator = ha_common::config::Locator::load(&cli.config);
    match (findings, locator) {
        (Ok(findings), Ok(locator)) => {
            for (place, message) in &findings.warnings {
                eprintln!("warning: {}", locator.at(*place, message.as_str()));
            }
            for (place, message) in &findings.errors {
                eprintln!("error: {}", locator.at(*place, message.as_str()));
            }
            ok &= findings.errors.is_empty();
        }
        (Err(e), _) => eprintln!("warning: could not look at this host's interfaces ({e}); use --offline to check the file only"),
        (_, Err(e)) => eprintln!("warning: {e}"),
    }
    ok
}

/// `vrrpd ctl`: the socket comes from `--socket`, else from the configuration file, else the
/// default path.
fn run_ctl(cli: &Cli, socket: Option<&Path>, words: &[String]) -> ExitCode {
    let socket = match socket {
        Some(path) => path.to_owned(),
        None => match config::load(&cli.config, &cli.overrides()) {
            Ok(loaded) => loaded.config.global.control_socket,
            Err(_) => vrrpd::config::default_control_socket(),
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

fn run_import(keepalived: Option<&Path>, haproxy: Option<&Path>) -> ExitCode {
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

/// `vrrpd generate man|completions SHELL`: to stdout, for scripts/install.sh.
fn run_generate(what: vrrpd::cli::Generate) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match vrrpd::cli::generate(what, &mut stdout).and_then(|()| std::io::Write::flush(&mut stdout)) {
        Ok(()) => ExitCode::SUCCESS,
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

fn run_daemon(cli: &Cli) -> ExitCode {
    if let Err(error) = ha_common::logging::init(cli.log_format, cli.log_level.as_deref()) {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    let source = vrrpd::daemon::ConfigSource { path: cli.config.clone(), overrides: cli.overrides() };
    let config = match source.load() {
        Ok(config) => config,
        Err(error) => return report_invalid(&error),
    };
    // Scripts for other users need a launcher, split off before any thread exists.
    let script_users = vrrpd::hooks::script_users(&config);
    if let Some(user) = config.global.user.clone() {
        if nix::unistd::geteuid().is_root() {
            let also: &[_] = if script_users.is_empty() { &[] } else { &vrrpd::hooks::launcher::SWITCH_USERS };
            if let Err(error) = vrrpd::privileges::drop_to(&user, &config.global.control_socket, also) {
                tracing::error!("{error}");
                return ExitCode::FAILURE;
            }
            tracing::info!(user, "dropped root; kept CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE");
        }
    }
    if !nix::unistd::geteuid().is_root() {
        if let Err(error) = vrrpd::hooks::launcher::split(script_users) {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    }
    match vrrpd::daemon::run(source, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}
