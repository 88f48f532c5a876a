//! The control commands, parsed from words in one place, and the errors they answer with.

use proxy::balancer::AdminError;
use proxy::server::Admin;

/// The commands, as `vrrpd ctl --help` and an unknown command show them.
pub const USAGE: &str = "commands:
  status [--json]                              instances, proxies and servers
  server drain PROXY/SERVER                    no new sessions; existing ones stay
  server disable PROXY/SERVER                  maintenance: no new sessions, existing ones closed
  server enable PROXY/SERVER                   back in service
  server weight PROXY/SERVER N                 set the weight (0..=256)
  shutdown-sessions PROXY/SERVER               close the server's sessions now
  rebalance PROXY [--rate N]                   close sessions above each server's fair share,
                                               N per second (default 5): clients reconnect to
                                               the least loaded servers; replaces a running one
  resign INSTANCE                              hand the VIPs to the peer and stay BACKUP
  resume INSTANCE                              take part in elections again
  reload                                       re-read the configuration (as SIGHUP)
  events                                       the timeline: state changes, trackers, servers, reloads
  fence ADDRESS                                close the broker connections whose peer is ADDRESS
                                               (a silent master), through each proxy's rabbitmq_api";

/// `PROXY/SERVER`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerName {
    pub proxy: String,
    pub server: String,
}

impl ServerName {
    fn parse(word: &str) -> Result<Self, ControlError> {
        word.split_once('/')
            .filter(|(p, s)| !p.is_empty() && !s.is_empty())
            .map(|(proxy, server)| ServerName { proxy: proxy.to_owned(), server: server.to_owned() })
            .ok_or_else(|| ControlError::NotAServer(word.to_owned()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Status {
        json: bool,
    },
    /// `server drain|disable|enable PROXY/SERVER`.
    SetAdmin {
        target: ServerName,
        admin: Admin,
    },
    SetWeight {
        target: ServerName,
        weight: u32,
    },
    ShutdownSessions {
        target: ServerName,
    },
    Rebalance {
        proxy: String,
        rate: Option<u32>,
    },
    /// `resign` (`true`) or `resume` (`false`) an instance.
    Resign {
        instance: String,
        resign: bool,
    },
    Reload,
    Events,
    /// Close the broker connections of a host that fell silent.
    Fence {
        address: std::net::IpAddr,
    },
    Help,
}

/// Why a command was refused; the message is what `vrrpd ctl` prints.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("malformed request ({0}); send a JSON array of words")]
    Malformed(String),
    #[error("unknown command {0:?}\n{USAGE}")]
    Unknown(String),
    #[error("{0:?} is not PROXY/SERVER (for example amqp/rabbit1)")]
    NotAServer(String),
    #[error("{0:?} is not a weight (0..=256)")]
    NotAWeight(String),
    #[error("{0:?} is not a rate (sessions closed per second, 1..=1000)")]
    NotARate(String),
    #[error("no [[proxy]] is configured")]
    NoBalancer,
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("no instance named {0:?}")]
    NoInstance(String),
    #[error("the instance's driver stopped")]
    DriverStopped,
    #[error("reload rejected, the running configuration stays:\n{0}")]
    ReloadRejected(String),
    #[error("status could not be rendered: {0}")]
    Render(String),
    #[error("no request received")]
    NoRequest,
    #[error("uid {0} may not use the control socket: only root and vrrpd's own user may")]
    NotAllowed(u32),
    #[error("vrrpd is stopping")]
    Stopping,
    #[error("{0:?} is not an IP address")]
    NotAnAddress(String),
    #[error("{0}")]
    Fence(String),
}

impl Command {
    pub fn parse(words: &[String]) -> Result<Command, ControlError> {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        Ok(match words.as_slice() {
            ["status"] => Command::Status { json: false },
            ["status", "--json"] => Command::Status { json: true },
            ["server", action @ ("drain" | "disable" | "enable"), target] => {
                let admin = match *action {
                    "drain" => Admin::Drain,
                    "disable" => Admin::Maint,
                    _ => Admin::Ready,
                };
                Command::SetAdmin { target: ServerName::parse(target)?, admin }
            }
            ["server", "weight", target, weight] => Command::SetWeight {
                target: ServerName::parse(target)?,
                weight: weight.parse().map_err(|_| ControlError::NotAWeight((*weight).to_owned()))?,
            },
            ["rebalance", proxy] => Command::Rebalance { proxy: (*proxy).to_owned(), rate: None },
            ["rebalance", proxy, "--rate", rate] => Command::Rebalance {
                proxy: (*proxy).to_owned(),
                rate: Some(rate.parse().map_err(|_| ControlError::NotARate((*rate).to_owned()))?),
            },
            ["shutdown-sessions", target] => Command::ShutdownSessions { target: ServerName::parse(target)? },
            [verb @ ("resign" | "resume"), instance] => {
                Command::Resign { instance: (*instance).to_owned(), resign: *verb == "resign" }
            }
            ["reload"] => Command::Reload,
            ["events"] => Command::Events,
            ["fence", address] => {
                Command::Fence { address: address.parse().map_err(|_| ControlError::NotAnAddress((*address).to_owned()))? }
            }
            [] | ["help"] => Command::Help,
            _ => return Err(ControlError::Unknown(words.join(" "))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, ControlError> {
        Command::parse(&line.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    }

    #[test]
    fn every_command_parses_to_its_variant() {
        assert_eq!(parse("status --json"), Ok(Command::Status { json: true }));
        let target = ServerName { proxy: "amqp".into(), server: "rabbit2".into() };
        assert_eq!(parse("server disable amqp/rabbit2"), Ok(Command::SetAdmin { target: target.clone(), admin: Admin::Maint }));
        assert_eq!(parse("server weight amqp/rabbit2 3"), Ok(Command::SetWeight { target: target.clone(), weight: 3 }));
        assert_eq!(parse("shutdown-sessions amqp/rabbit2"), Ok(Command::ShutdownSessions { target }));
        assert_eq!(parse("resume VI_1"), Ok(Command::Resign { instance: "VI_1".into(), resign: false }));
        assert_eq!(parse(""), Ok(Command::Help));
        assert_eq!(parse("fence 192.0.2.11"), Ok(Command::Fence { address: "192.0.2.11".parse().unwrap() }));
        assert_eq!(parse("fence proxy-a"), Err(ControlError::NotAnAddress("proxy-a".into())));
        assert_eq!(parse("rebalance amqp"), Ok(Command::Rebalance { proxy: "amqp".into(), rate: None }));
        assert_eq!(parse("rebalance amqp --rate 20"), Ok(Command::Rebalance { proxy: "amqp".into(), rate: Some(20) }));
    }

    #[test]
    fn bad_words_are_named_in_the_error() {
        assert_eq!(parse("server drain rabbit2"), Err(ControlError::NotAServer("rabbit2".into())));
        assert_eq!(parse("server weight amqp/r x"), Err(ControlError::NotAWeight("x".into())));
        assert_eq!(parse("rebalance amqp --rate -1"), Err(ControlError::NotARate("-1".into())));
        assert!(parse("frobnicate now").unwrap_err().to_string().starts_with("unknown command \"frobnicate now\""));
    }
}
