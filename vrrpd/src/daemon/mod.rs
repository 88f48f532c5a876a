//! The daemon: VRRP on a thread and runtime of its own, the balancer on a multi-thread runtime
//! of its own, wired through two seams (tracker status one way, VIP claims and releases the
//! other), signals (TERM/INT: resign and exit; HUP: reload) and the control socket.
//!
//! Every task is spawned on one [`TaskTracker`] under one [`CancellationToken`]: drivers are
//! stopped first (they resign and release their VIPs), then the token stops everything else,
//! and the tracker says when all of it has ended.

mod commands;
pub mod plan;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ha_common::config::{Config, ConfigError};
use proxy::Balancer;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use self::plan::{plan, Plan};
use crate::config::{self, Overrides};
use crate::control::command::ControlError;
use crate::control::{self, ControlRequest};
use crate::hooks::notify::Notifier;
use crate::hooks::script::ScriptError;
use crate::stats::{self, StatusBoard};
use crate::systemd;
use crate::trackers::Trackers;
use crate::vrrp::driver::{Driver, DriverCommand, DriverContext};
use crate::vrrp::net::link::Netlink;
use crate::vrrp::net::NetError;
use crate::vrrp::vip::VipEvent;

/// How long a stopping daemon waits for its tasks, pending notify scripts among them.
const TASK_DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Scripts(Vec<ScriptError>),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("cannot start the VRRP runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("stats page: cannot listen on {listen}: {source}")]
    Stats { listen: SocketAddr, source: std::io::Error },
    #[error("control socket {}: {source}", path.display())]
    Control { path: PathBuf, source: std::io::Error },
}

/// Where the configuration comes from, for the start and every reload.
#[derive(Clone, Debug)]
pub struct ConfigSource {
    pub path: PathBuf,
    pub overrides: Overrides,
}

impl ConfigSource {
    /// Loads the file, logging its warnings.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let loaded = config::load(&self.path, &self.overrides)?;
        for warning in &loaded.warnings {
            warn!("{warning}");
        }
        Ok(loaded.config)
    }
}

struct DriverHandle {
    commands: mpsc::Sender<DriverCommand>,
    task: JoinHandle<()>,
}

struct Daemon {
    source: ConfigSource,
    /// The configuration running now (overrides applied).
    config: Config,
    context: DriverContext,
    balancer: Option<Arc<Balancer>>,
    trackers: Trackers,
    drivers: HashMap<String, DriverHandle>,
    tasks: TaskTracker,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(source: ConfigSource, config: Config) -> Result<(), StartError> {
    let vrrp = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(StartError::Runtime)?;
    let proxies = tokio::runtime::Builder::new_multi_thread()
        .thread_name("vrrpd-proxy")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let tasks = TaskTracker::new();
    let cancel = CancellationToken::new();
    let balancer = (!config.proxies.is_empty())
        .then(|| Balancer::start(&config.proxies, config.global.maxconn, config.global.hard_stop_after, proxies.handle()));
    let board = StatusBoard::new(&config.global.router_id);
    if nix::unistd::geteuid().is_root() && config.global.user.is_none() {
        warn!("{}", crate::privileges::ROOT_WITHOUT_USER);
        board.warn(crate::privileges::ROOT_WITHOUT_USER);
    }
    if let Some(settings) = &config.stats {
        let serving = stats::http::start(settings, board.clone(), balancer.clone(), cancel.clone())
            .map_err(|source| StartError::Stats { listen: settings.listen, source })?;
        tasks.spawn_on(serving, proxies.handle());
    }
    let vip_events = balancer.as_ref().map(|balancer| {
        let (events, queue) = mpsc::unbounded_channel();
        tasks.spawn_on(serve_vip_events(Arc::clone(balancer), queue, cancel.clone()), proxies.handle());
        events
    });
    let result = vrrp.block_on(async {
        let trackers = Trackers::new(tasks.clone(), cancel.clone());
        let context = DriverContext {
            netlink: Netlink::new()?,
            notifier: Notifier::spawn(&tasks),
            board,
            vip_events,
            trackers: trackers.subscribe(),
        };
        let daemon = Daemon {
            source,
            config,
            context,
            balancer: balancer.clone(),
            trackers,
            drivers: HashMap::new(),
            tasks: tasks.clone(),
        };
        daemon.serve(cancel.clone()).await
    });
    // The drivers have resigned and released their VIPs; now everything else stops.
    cancel.cancel();
    tasks.close();
    if vrrp.block_on(async { tokio::time::timeout(TASK_DRAIN, tasks.wait()).await }).is_err() {
        warn!("tasks still running at exit (notify scripts?)");
    }
    if let Some(balancer) = balancer {
        // Sessions on VIPs closed when the instances resigned; the rest get hard_stop_after.
        proxies.block_on(balancer.shutdown());
    }
    proxies.shutdown_timeout(Duration::from_secs(1));
    info!("vrrpd stopped");
    result
}

/// The balancer's side of the VIP seam: serves claims, closes the sessions of released
/// addresses and answers once they are gone. Runs on the balancer's runtime.
async fn serve_vip_events(balancer: Arc<Balancer>, mut events: mpsc::UnboundedReceiver<VipEvent>, stop: CancellationToken) {
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Some(VipEvent::Claimed(addresses)) => balancer.claim_addresses(&addresses),
            Some(VipEvent::Releasing { addresses, drained }) => {
                let release = balancer.release_addresses(&addresses);
                let closed = release.closed;
                tokio::spawn(async move {
                    release.drained().await;
                    let _ = drained.send(closed);
                });
            }
            None => return,
        }
    }
}

impl Daemon {
    async fn serve(mut self, cancel: CancellationToken) -> Result<(), StartError> {
        let mut terminate = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
        let mut hangup = signal(SignalKind::hangup()).map_err(StartError::Signals)?;
        let plan = plan(&self.config).map_err(StartError::Scripts)?;
        let socket_path = self.config.global.control_socket.clone();
        let control_listener =
            control::bind(&socket_path).map_err(|source| StartError::Control { path: socket_path.clone(), source })?;
        let (control_requests, mut control_queue) = mpsc::channel::<ControlRequest>(16);
        self.tasks.spawn(control::serve(control_listener, socket_path.clone(), control_requests, cancel.clone()));
        if let Err(e) = self.apply(plan).await {
            self.stop_drivers().await;
            return Err(e);
        }
        self.trackers.start_link_monitor()?;
        info!(router_id = %self.config.global.router_id, "vrrpd running");
        systemd::ready(&systemd::status_line(&self.context.board, self.balancer.as_deref()));
        self.tasks.spawn(systemd::keep_informed(self.context.board.clone(), self.balancer.clone(), cancel));

        loop {
            tokio::select! {
                _ = terminate.recv() => { info!("SIGTERM: resigning and exiting"); break; }
                _ = interrupt.recv() => { info!("SIGINT: resigning and exiting"); break; }
                _ = hangup.recv() => {
                    let _ = self.reload().await;
                }
                Some(request) = control_queue.recv() => {
                    let answer = self.execute(request.command).await;
                    let _ = request.reply.send(answer);
                }
            }
        }
        systemd::stopping();
        self.stop_drivers().await;
        let _ = std::fs::remove_file(&socket_path);
        Ok(())
    }

    /// Brings trackers and drivers in line with `plan`: trackers first, so every instance
    /// starts from what is known.
    async fn apply(&mut self, plan: Plan) -> Result<(), StartError> {
        self.trackers.apply(plan.trackers, &self.context.netlink, self.balancer.as_deref()).await;
        let removed: Vec<String> = self.drivers.keys().filter(|i| !plan.drivers.contains_key(*i)).cloned().collect();
        for interface in removed {
            if let Some(handle) = self.drivers.remove(&interface) {
                stop_driver(handle).await;
            }
        }
        for (interface, spec) in plan.drivers {
            if let Some(handle) = self.drivers.get(&interface) {
                let _ = handle.commands.send(DriverCommand::Reload(spec)).await;
                continue;
            }
            let driver = Driver::start(spec, self.context.clone()).await?;
            let (commands, queue) = mpsc::channel(64);
            let task = self.tasks.spawn(driver.run(queue));
            self.drivers.insert(interface, DriverHandle { commands, task });
        }
        Ok(())
    }

    /// SIGHUP or `vrrpd ctl reload`: a file that does not load, or whose scripts are refused,
    /// changes nothing.
    async fn reload(&mut self) -> Result<String, ControlError> {
        systemd::reloading();
        let result = self.reload_inner().await;
        systemd::ready(&systemd::status_line(&self.context.board, self.balancer.as_deref()));
        result
    }

    async fn reload_inner(&mut self) -> Result<String, ControlError> {
        info!(config = %self.source.path.display(), "reloading the configuration");
        let rejected = |why: String| {
            error!("reload rejected, the running configuration stays:\n{why}");
            ControlError::ReloadRejected(why)
        };
        let config = self.source.load().map_err(|e| rejected(e.to_string()))?;
        let plan = plan(&config).map_err(|e| rejected(StartError::Scripts(e).to_string()))?;
        if config.proxies != self.config.proxies {
            match &self.balancer {
                Some(balancer) => {
                    balancer.reload(&config.proxies);
                }
                None => warn!("the first [[proxy]] sections take effect at the next restart"),
            }
        }
        let names: Vec<String> = config.instances.iter().map(|i| i.name.clone()).collect();
        let result = self.apply(plan).await;
        self.context.board.retain(&names);
        self.config = config;
        match result {
            Ok(()) => {
                info!("configuration reloaded");
                Ok("configuration reloaded".to_owned())
            }
            Err(e) => {
                error!(error = %e, "reload partly applied");
                Err(ControlError::ReloadPartial(e.to_string()))
            }
        }
    }

    async fn stop_drivers(&mut self) {
        for (_, handle) in self.drivers.drain() {
            stop_driver(handle).await;
        }
    }
}

/// Asks a driver to resign and release its VIPs, and waits until it has.
async fn stop_driver(handle: DriverHandle) {
    let (done, finished) = oneshot::channel();
    if handle.commands.send(DriverCommand::Shutdown { done }).await.is_ok() {
        let _ = finished.await;
    }
    let _ = handle.task.await;
}
