//! The daemon: VRRP on a thread and runtime of its own, the balancer on a multi-thread runtime
//! of its own, wired through two seams (tracker status one way, VIP claims and releases the
//! other), signals (TERM/INT: resign and exit; HUP: reload) and the control socket.
//!
//! Every task is spawned on one [`TaskTracker`] under one [`CancellationToken`]: drivers are
//! stopped first (they resign and release their VIPs), then the token stops everything else,
//! and the tracker says when all of it has ended.
//!
//! A VRRP driver that panics takes the daemon down: the other drivers resign, the panicked
//! driver's VIPs are removed, and vrrpd exits non-zero so systemd restarts it (the next start
//! removes whatever was left). Nothing is left holding a VIP that no advert defends.

mod commands;
pub mod plan;
mod seams;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use ha_common::config::{Config, ConfigError};
use proxy::Balancer;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use self::plan::{needs_restart, plan, Plan};
use self::seams::{fence_run, record_rebalance_events, record_server_events, serve_vip_events, Fencing};
use crate::config::{self, Overrides};
use crate::control::command::{Command, ControlError};
use crate::control::{self, ControlRequest};
use crate::hooks::notify::Notifier;
use crate::stats::events::EventKind;
use crate::stats::{self, StatusBoard};
use crate::systemd;
use crate::trackers::Trackers;
use crate::vrrp::driver::{Driver, DriverCommand, DriverContext};
use crate::vrrp::group::SyncGroups;
use crate::vrrp::net::link::Netlink;
use crate::vrrp::net::NetError;

/// How long a stopping daemon waits for its tasks, pending notify scripts among them.
const TASK_DRAIN: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Scripts(Vec<plan::PlanError>),
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
    #[error("the VRRP driver of {0} panicked; its VIPs were removed and the other instances resigned")]
    DriverPanicked(String),
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
    /// Interfaces whose driver panicked.
    panics: (mpsc::UnboundedSender<String>, mpsc::UnboundedReceiver<String>),
    source: ConfigSource,
    /// The configuration running now (overrides applied).
    config: Config,
    context: DriverContext,
    balancer: Option<Arc<Balancer>>,
    trackers: Trackers,
    drivers: HashMap<String, DriverHandle>,
    tasks: TaskTracker,
    /// The balancer's runtime: API calls (fencing) run there, never on the VRRP runtime.
    proxies: tokio::runtime::Handle,
    fencing: Fencing,
}

/// Tasks the balancer's runtime polls between two looks at its I/O driver (see `run`).
const PROXY_EVENT_INTERVAL: u32 = 1024;

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(source: ConfigSource, config: Config) -> Result<(), StartError> {
    let vrrp = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(StartError::Runtime)?;
    let proxies = tokio::runtime::Builder::new_multi_thread()
        // Serve one batch of ready connections in full before asking epoll for more: tokio's
        // default (61 tasks between polls) lets newly ready connections run ahead of those
        // already waiting, and with a thousand busy AMQP connections the ones left waiting
        // made vrrpd's p99 several times its p50 (HAProxy serves each batch in order). 1,024
        // is as many events as one poll of tokio's driver returns.
        .event_interval(PROXY_EVENT_INTERVAL)
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
    let fencing = Fencing { tasks: tasks.clone(), board: board.clone(), whoami: config.global.router_id.clone() };
    let vip_events = balancer.as_ref().map(|balancer| {
        let (events, queue) = mpsc::unbounded_channel();
        tasks.spawn_on(serve_vip_events(Arc::clone(balancer), queue, fencing.clone(), cancel.clone()), proxies.handle());
        events
    });
    if let Some(balancer) = &balancer {
        // Connections a previous run of this host left on the brokers (a crash, a kill -9)
        // hold their consumers' unacknowledged messages until the broker's heartbeat timeout.
        for proxy in balancer.fencing_proxies(None) {
            let run =
                fence_run(Arc::clone(balancer), proxy, proxy::balancer::FenceTarget::Leftovers, "start".into(), fencing.clone());
            let stop = cancel.clone();
            tasks.spawn_on(
                async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        _ = run => {}
                    }
                },
                proxies.handle(),
            );
        }
    }
    let result = vrrp.block_on(async {
        let trackers = Trackers::new(tasks.clone(), cancel.clone());
        let context = DriverContext {
            netlink: Netlink::new()?,
            notifier: Notifier::spawn(&tasks),
            board,
            vip_events,
            trackers: trackers.subscribe(),
            sync_reports: trackers.reporter(),
            groups: SyncGroups::default(),
        };
        let daemon = Daemon {
            panics: mpsc::unbounded_channel(),
            source,
            config,
            context,
            balancer: balancer.clone(),
            trackers,
            drivers: HashMap::new(),
            tasks: tasks.clone(),
            proxies: proxies.handle().clone(),
            fencing,
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
        // Link changes are followed from before the first read of the links, so none made
        // while the drivers start is missed (a flap at boot would otherwise leave an instance
        // in FAULT, or MASTER on a dead link, until the next change).
        self.trackers.start_link_monitor(self.context.netlink.clone())?;
        self.apply(plan).await;
        info!(router_id = %self.config.global.router_id, "vrrpd running");
        systemd::ready(&systemd::status_line(&self.context.board, self.balancer.as_deref()));
        if let Some(balancer) = &self.balancer {
            self.tasks.spawn(record_server_events(balancer.server_events(), self.context.board.clone(), cancel.clone()));
            self.tasks.spawn(record_rebalance_events(balancer.rebalance_events(), self.context.board.clone(), cancel.clone()));
        }
        self.tasks.spawn(systemd::keep_informed(self.context.board.clone(), self.balancer.clone(), cancel));

        loop {
            tokio::select! {
                _ = terminate.recv() => { info!("SIGTERM: resigning and exiting"); break; }
                _ = interrupt.recv() => { info!("SIGINT: resigning and exiting"); break; }
                _ = hangup.recv() => {
                    let _ = self.reload().await;
                }
                Some(request) = control_queue.recv() => {
                    if let Command::Fence { address } = request.command {
                        // API calls take seconds at worst: on the balancer's runtime, answered
                        // from there, while this loop goes on.
                        self.fence_by_hand(address, request.reply);
                        continue;
                    }
                    let answer = self.execute(request.command).await;
                    let _ = request.reply.send(answer);
                }
                Some(interface) = self.panics.1.recv() => {
                    error!(%interface, "a VRRP driver panicked: resigning everywhere, removing its VIPs, exiting for a restart");
                    systemd::stopping();
                    self.drivers.remove(&interface);
                    self.stop_drivers().await;
                    self.remove_vips_of(&interface).await;
                    let _ = std::fs::remove_file(&socket_path);
                    return Err(StartError::DriverPanicked(interface));
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
    async fn apply(&mut self, plan: Plan) {
        self.context.groups.configure(plan.groups);
        self.trackers.apply(plan.trackers, &self.context.netlink, self.balancer.as_deref()).await;
        self.context.board.retain_drivers(&plan.drivers.keys().cloned().collect::<Vec<_>>());
        let removed: Vec<String> = self.drivers.keys().filter(|i| !plan.drivers.contains_key(*i)).cloned().collect();
        let removed = removed.into_iter().filter_map(|interface| self.drivers.remove(&interface));
        futures_util::future::join_all(removed.map(stop_driver)).await;
        for (interface, spec) in plan.drivers {
            if let Some(handle) = self.drivers.get(&interface) {
                let _ = handle.commands.send(DriverCommand::Reload(spec)).await;
                continue;
            }
            let driver = Driver::start(spec, self.context.clone()).await;
            let (commands, queue) = mpsc::channel(64);
            let task = self.tasks.spawn(supervised(interface.clone(), driver.run(queue), self.panics.0.clone()));
            self.drivers.insert(interface, DriverHandle { commands, task });
        }
    }

    /// After a driver's panic: its VIPs go, so no host holds an address nobody defends.
    async fn remove_vips_of(&self, interface: &str) {
        let vips = self.config.instances.iter().filter(|i| i.interface == interface).flat_map(|i| i.virtual_ipaddress.iter());
        for vip in vips {
            let Ok(link) = self.context.netlink.interface(vip.dev_or(interface)).await else { continue };
            if let Err(e) = self.context.netlink.remove_vip(&link, vip.prefix).await {
                error!(%interface, %vip, error = %e, "removing the VIP after the panic failed");
            }
        }
    }

    /// SIGHUP or `vrrpd ctl reload`: a file that does not load, or whose scripts are refused,
    /// changes nothing.
    async fn reload(&mut self) -> Result<String, ControlError> {
        systemd::reloading();
        let result = self.reload_inner().await;
        let outcome = match &result {
            Ok(message) => message.clone(),
            Err(e) => e.to_string(),
        };
        self.context.board.record(EventKind::Reload, self.source.path.display().to_string(), outcome);
        systemd::ready(&systemd::status_line(&self.context.board, self.balancer.as_deref()));
        result
    }

    async fn reload_inner(&mut self) -> Result<String, ControlError> {
        info!(config = %self.source.path.display(), "reloading the configuration");
        let rejected = |why: String| {
            error!("reload rejected, the running configuration stays:\n{why}");
            ControlError::ReloadRejected(why)
        };
        // Off the VRRP thread: user look-ups (NSS, perhaps LDAP) and file checks may be slow,
        // and adverts must not wait for them.
        let source = self.source.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            let config = source.load().map_err(|e| e.to_string())?;
            let plan = plan(&config).map_err(|e| StartError::Scripts(e).to_string())?;
            Ok::<_, String>((config, plan))
        })
        .await
        .map_err(|e| rejected(format!("the reload's preparation failed: {e}")))?;
        let (config, plan) = prepared.map_err(rejected)?;
        if config.proxies != self.config.proxies {
            match &self.balancer {
                Some(balancer) => {
                    balancer.reload(&config.proxies);
                }
                None => warn!("the first [[proxy]] sections take effect at the next restart"),
            }
        }
        let names: Vec<String> = config.instances.iter().map(|i| i.name.clone()).collect();
        let later = needs_restart(&self.config, &config);
        self.apply(plan).await;
        self.context.board.retain(&names);
        self.config = config;
        if later.is_empty() {
            info!("configuration reloaded");
            return Ok("configuration reloaded".to_owned());
        }
        let later = later.join(", ");
        warn!(settings = %later, "configuration reloaded; these settings take effect at the next restart");
        Ok(format!("configuration reloaded; these take effect at the next restart (systemctl restart vrrpd): {later}"))
    }

    /// All at once: each resigns and waits (boundedly) for its releases, and those waits
    /// overlap rather than add up.
    async fn stop_drivers(&mut self) {
        futures_util::future::join_all(self.drivers.drain().map(|(_, handle)| stop_driver(handle))).await;
    }
}

/// Runs a driver; a panic is reported on `panics` (the daemon then stops) instead of leaving
/// VIPs on the interface with no adverts to defend them.
async fn supervised(interface: String, driver: impl Future<Output = ()>, panics: mpsc::UnboundedSender<String>) {
    if AssertUnwindSafe(driver).catch_unwind().await.is_err() {
        let _ = panics.send(interface);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_driver_that_panics_is_reported_not_lost() {
        let (panics, mut reported) = mpsc::unbounded_channel();
        supervised("eth0".into(), async { panic!("a bug in the driver") }, panics.clone()).await;
        assert_eq!(reported.recv().await.as_deref(), Some("eth0"));
        supervised("eth1".into(), async {}, panics).await;
        assert!(reported.try_recv().is_err(), "a driver that ends normally is not a panic");
    }
}
