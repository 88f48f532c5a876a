use std::process::ExitCode;

use clap::Parser;
use ha_common::config::{Config, ConfigError};
use vrrpd::check;
use vrrpd::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check) => run_check(&cli),
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
    match vrrpd::daemon::run(cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}
