//! Carrying out control commands: each answers with a sentence saying what changed, or a typed
//! error.

use std::net::IpAddr;
use std::sync::Arc;

use proxy::balancer::FenceTarget;
use proxy::Balancer;
use tokio::sync::oneshot;

use super::seams::fence_run;
use super::Daemon;
use crate::control::command::{Command, ControlError, USAGE};
use crate::stats::render;
use crate::vrrp::driver::DriverCommand;

impl Daemon {
    pub(super) async fn execute(&mut self, command: Command) -> Result<String, ControlError> {
        match command {
            Command::Status { json: false } => Ok(render::text(&self.context.board.snapshot(self.balancer.as_deref()))),
            Command::Status { json: true } => {
                serde_json::to_string_pretty(&self.context.board.snapshot(self.balancer.as_deref()))
                    .map_err(|e| ControlError::Render(e.to_string()))
            }
            Command::SetAdmin { target, admin } => Ok(self.balancer()?.set_admin(&target.proxy, &target.server, admin)?),
            Command::SetWeight { target, weight } => Ok(self.balancer()?.set_weight(&target.proxy, &target.server, weight)?),
            Command::Rebalance { proxy, rate } => Ok(self.balancer()?.rebalance(&proxy, rate)?),
            Command::ShutdownSessions { target } => Ok(self.balancer()?.shutdown_sessions(&target.proxy, &target.server)?),
            Command::Resign { instance, resign } => self.resign(instance, resign).await,
            Command::Reload => self.reload().await,
            Command::Events => Ok(render::events_text(&self.context.board.events(usize::MAX))),
            Command::Help => Ok(USAGE.to_owned()),
            // Served by `fence_by_hand`, off this loop.
            Command::Fence { address } => Err(ControlError::Fence(format!("{address}: not served here"))),
        }
    }

    /// `vrrpd ctl fence ADDRESS`: what a takeover from a silent master does, by hand, through
    /// every proxy with a `rabbitmq_api`. Runs on the balancer's runtime and answers from there.
    pub(super) fn fence_by_hand(&self, address: IpAddr, reply: oneshot::Sender<Result<String, ControlError>>) {
        let Some(balancer) = self.balancer.clone() else {
            let _ = reply.send(Err(ControlError::NoBalancer));
            return;
        };
        let proxies = balancer.fencing_proxies(None);
        if proxies.is_empty() {
            let _ = reply.send(Err(ControlError::Fence("no [[proxy]] has a rabbitmq_api".into())));
            return;
        }
        let fencing = self.fencing.clone();
        self.tasks.spawn_on(
            async move {
                // All proxies at once: the answer comes within one run's deadline (15 s), well
                // inside the 30 s `vrrpd ctl` waits.
                let mut runs = tokio::task::JoinSet::new();
                for proxy in proxies {
                    let target = FenceTarget::SilentPeer(address);
                    runs.spawn(fence_run(Arc::clone(&balancer), proxy, target, "ctl".into(), fencing.clone()));
                }
                let mut lines = Vec::new();
                let mut ok = true;
                while let Some(joined) = runs.join_next().await {
                    match joined {
                        Ok(Ok(line)) => lines.push(line),
                        Ok(Err(line)) => {
                            ok = false;
                            lines.push(line);
                        }
                        Err(e) => {
                            ok = false;
                            lines.push(format!("a fencing run ended: {e}"));
                        }
                    }
                }
                lines.sort();
                let text = lines.join("\n");
                let _ = reply.send(if ok { Ok(text) } else { Err(ControlError::Fence(text)) });
            },
            &self.proxies,
        );
    }

    fn balancer(&self) -> Result<&Balancer, ControlError> {
        self.balancer.as_deref().ok_or(ControlError::NoBalancer)
    }

    /// The operator's `resign` or `resume`, carried out by the instance's driver.
    async fn resign(&self, instance: String, resign: bool) -> Result<String, ControlError> {
        let interface = self.config.instance(&instance).map(|i| &i.interface);
        let handle = interface.and_then(|i| self.drivers.get(i)).ok_or_else(|| ControlError::NoInstance(instance.clone()))?;
        let (reply, answer) = oneshot::channel();
        let command = DriverCommand::Resign { instance: instance.clone(), resign, reply };
        handle.commands.send(command).await.map_err(|_| ControlError::DriverStopped)?;
        answer.await.map_err(|_| ControlError::DriverStopped)?.ok_or(ControlError::NoInstance(instance))
    }
}
