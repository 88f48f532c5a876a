//! Carrying out control commands: each answers with a sentence saying what changed, or a typed
//! error.

use proxy::Balancer;
use tokio::sync::oneshot;

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
        }
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
