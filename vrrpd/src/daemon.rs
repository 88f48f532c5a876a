//! The daemon: turns the configuration into interface drivers, track script runners and a link
//! monitor on a runtime of their own, and handles signals (TERM/INT: resign and exit; HUP:
//! reload).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;
use ha_common::config::{Config, VrrpScript};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::cli::Cli;
use crate::control::{self, ControlRequest};
use crate::driver::{Driver, DriverCommand, DriverSpec, InstanceSpec, TrackerStatus};
use crate::net::link::{self, Netlink};
use crate::notify::{Notifier, NotifyScripts};
use crate::render;
use crate::scripts::{Script, ScriptError};
use crate::stats_http;
use crate::status::StatusBoard;
use crate::systemd;
use crate::track::TrackerKind;
use ha_common::rise_fall::RiseFall;
use proxy::server::Admin;
use proxy::Balancer;

/// How long a stopping daemon waits for pending notify scripts.
const NOTIFY_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ha_common::ConfigError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Scripts(Vec<ScriptError>),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error("cannot start the VRRP runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("stats page: cannot listen on {listen}: {source}")]
    Stats { listen: std::net::SocketAddr, source: std::io::Error },
    #[error("control socket {}: {source}", path.display())]
    Control { path: PathBuf, source: std::io::Error },
}

/// A status change of a tracked object, from a script runner or the link monitor.
#[derive(Debug)]
struct TrackerEvent {
    kind: TrackerKind,
    name: String,
    up: bool,
}

/// Everything a configuration asks to run, parsed and checked before anything changes.
struct Plan {
    drivers: BTreeMap<String, DriverSpec>,
    scripts: Vec<(VrrpScript, Script)>,
}

struct DriverHandle {
    commands: mpsc::Sender<DriverCommand>,
    task: JoinHandle<()>,
}

struct ScriptRunner {
    config: VrrpScript,
    task: JoinHandle<()>,
}

pub struct Daemon {
    config_path: PathBuf,
    overrides: Cli,
    netlink: Netlink,
    notifier: Notifier,
    balancer: Option<Arc<Balancer>>,
    board: StatusBoard,
    /// The configuration running now (overrides applied).
    config: Config,
    drivers: HashMap<String, DriverHandle>,
    scripts: HashMap<String, ScriptRunner>,
    status: TrackerStatus,
    events: mpsc::UnboundedSender<TrackerEvent>,
    /// The proxies the balancer runs now.
    proxies: Vec<ha_common::config::Proxy>,
    watched_proxies: HashSet<String>,
    proxy_runtime: Option<tokio::runtime::Handle>,
}

/// Runs the daemon until SIGTERM or SIGINT. VRRP has this thread and its runtime to itself;
/// the balancer runs on a multi-thread runtime of its own, so a busy proxy cannot delay an
/// advert.
pub fn run(cli: Cli, config: Config) -> Result<(), StartError> {
    let vrrp = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(StartError::Runtime)?;
    let proxies = tokio::runtime::Builder::new_multi_thread()
        .thread_name("vrrpd-proxy")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let balancer = (!config.proxies.is_empty())
        .then(|| Balancer::start(&config.proxies, config.global.maxconn, config.global.hard_stop_after, proxies.handle()));
    let board = StatusBoard::new(&config.global.router_id);
    if let Some(stats) = &config.stats {
        stats_http::start(stats, board.clone(), balancer.clone(), proxies.handle())
            .map_err(|source| StartError::Stats { listen: stats.listen, source })?;
    }
    let result = vrrp.block_on(run_async(cli, config, balancer.clone(), board, proxies.handle().clone()));
    if let Some(balancer) = balancer {
        // Sessions on VIPs closed when the instances resigned; the rest get hard_stop_after.
        proxies.block_on(balancer.shutdown());
    }
    proxies.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

async fn run_async(
    cli: Cli,
    config: Config,
    balancer: Option<Arc<Balancer>>,
    board: StatusBoard,
    proxies: tokio::runtime::Handle,
) -> Result<(), StartError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(StartError::Signals)?;

    let plan = plan(&config)?;
    let netlink = Netlink::new()?;
    let (notifier, notify_task) = Notifier::spawn();
    let (events, mut event_queue) = mpsc::unbounded_channel();
    let socket_path = config.global.control_socket.clone();
    let control_listener =
        control::bind(&socket_path).map_err(|source| StartError::Control { path: socket_path.clone(), source })?;
    let (control_requests, mut control_queue) = mpsc::channel::<ControlRequest>(16);
    tokio::spawn(control::serve(control_listener, socket_path.clone(), control_requests));
    let mut daemon = Daemon {
        config_path: cli.config.clone(),
        overrides: cli,
        netlink,
        notifier,
        balancer: balancer.clone(),
        board,
        config: config.clone(),
        drivers: HashMap::new(),
        scripts: HashMap::new(),
        status: TrackerStatus::new(),
        events,
        proxies: config.proxies.clone(),
        watched_proxies: HashSet::new(),
        proxy_runtime: Some(proxies.clone()),
    };
    if let Some(balancer) = &balancer {
        daemon.watch_proxies(balancer, &proxies);
    }
    daemon.learn_interfaces(&plan).await;
    if let Err(e) = daemon.apply(plan).await {
        daemon.shutdown().await;
        return Err(e);
    }
    spawn_link_monitor(daemon.events.clone())?;
    info!(router_id = %config.global.router_id, "vrrpd running");
    systemd::ready(&systemd::status_line(&daemon.board, daemon.balancer.as_deref()));
    tokio::spawn(systemd::keep_informed(daemon.board.clone(), daemon.balancer.clone()));

    loop {
        tokio::select! {
            _ = terminate.recv() => { info!("SIGTERM: resigning and exiting"); break; }
            _ = interrupt.recv() => { info!("SIGINT: resigning and exiting"); break; }
            _ = hangup.recv() => {
                let _ = daemon.reload().await;
            }
            Some(event) = event_queue.recv() => daemon.tracker_changed(event).await,
            Some(request) = control_queue.recv() => {
                let answer = daemon.control(&request.words).await;
                if let Err(why) = &answer {
                    control::log_refused(&request.words, why);
                }
                let _ = request.reply.send(answer);
            }
        }
    }
    systemd::stopping();
    daemon.shutdown().await;
    let _ = std::fs::remove_file(&socket_path);
    drop(daemon);
    if tokio::time::timeout(NOTIFY_DRAIN, notify_task).await.is_err() {
        warn!("notify scripts still pending at exit");
    }
    info!("vrrpd stopped");
    Ok(())
}

/// Parses every script and groups the instances by interface. Nothing is started here, so a
/// bad reload changes nothing.
fn plan(config: &Config) -> Result<Plan, StartError> {
    let mut problems = Vec::new();
    let security = config.global.enable_script_security;
    let mut parse = |text: &str, user: Option<&str>| match Script::parse(text, user) {
        Ok(script) => match script.check_security() {
            Ok(()) => Some(script),
            Err(e @ ScriptError::Unsafe { .. }) if !security => {
                warn!(error = %e, "running it anyway: enable_script_security = false");
                Some(script)
            }
            Err(e) => {
                problems.push(e);
                None
            }
        },
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let default_user = config.global.script_user.as_deref();
    let mut scripts = Vec::new();
    for s in &config.scripts {
        if let Some(script) = parse(&s.script, s.user.as_deref().or(default_user)) {
            scripts.push((s.clone(), script));
        }
    }
    let mut drivers: BTreeMap<String, DriverSpec> = BTreeMap::new();
    for instance in &config.instances {
        let n = &instance.notify;
        let mut notify_script = |text: &Option<String>| text.as_deref().and_then(|t| parse(t, default_user));
        let notify = NotifyScripts {
            any: notify_script(&n.any),
            master: notify_script(&n.master),
            backup: notify_script(&n.backup),
            fault: notify_script(&n.fault),
            stop: notify_script(&n.stop),
        };
        drivers
            .entry(instance.interface.clone())
            .or_insert_with(|| DriverSpec { interface: instance.interface.clone(), instances: Vec::new() })
            .instances
            .push(Arc::new(InstanceSpec { config: instance.clone(), notify: Arc::new(notify) }));
    }
    if problems.is_empty() {
        Ok(Plan { drivers, scripts })
    } else {
        Err(StartError::Scripts(problems))
    }
}

impl Daemon {
    /// Watches the availability of proxies a reload added.
    fn watch_new_proxies(&mut self) {
        if let (Some(balancer), Some(runtime)) = (self.balancer.clone(), self.proxy_runtime.clone()) {
            self.watch_proxies(&balancer, &runtime);
        }
    }

    /// Feeds each proxy's availability (listener bound, a server usable) to track_proxy, and
    /// records the current one so instances start with it. Proxies already watched are skipped.
    fn watch_proxies(&mut self, balancer: &Balancer, proxies: &tokio::runtime::Handle) {
        for state in balancer.proxies() {
            let name = state.config.name.clone();
            if !self.watched_proxies.insert(name.clone()) {
                continue;
            }
            let Some(mut availability) = balancer.availability(&name) else { continue };
            self.status.insert((TrackerKind::Proxy, name.clone()), *availability.borrow_and_update());
            let events = self.events.clone();
            // The watch lives on the balancer's runtime; the event crosses to VRRP's.
            proxies.spawn(async move {
                while availability.changed().await.is_ok() {
                    let up = *availability.borrow_and_update();
                    info!(proxy = %name, available = up, "proxy availability changed");
                    if events.send(TrackerEvent { kind: TrackerKind::Proxy, name: name.clone(), up }).is_err() {
                        return;
                    }
                }
            });
        }
    }

    /// Records the link state of every tracked interface, so instances start with it.
    async fn learn_interfaces(&mut self, plan: &Plan) {
        let tracked: HashSet<&str> = plan
            .drivers
            .values()
            .flat_map(|d| d.instances.iter())
            .flat_map(|i| i.config.track_interface.iter().map(|t| t.name.as_str()))
            .collect();
        for name in tracked {
            let up = match self.netlink.interface(name).await {
                Ok(interface) => interface.up,
                Err(e) => {
                    warn!(interface = name, error = %e, "tracked interface is down until it appears");
                    false
                }
            };
            self.status.insert((TrackerKind::Interface, name.to_owned()), up);
        }
    }

    /// Starts, keeps or replaces script runners and drivers to match `plan`.
    async fn apply(&mut self, plan: Plan) -> Result<(), StartError> {
        let wanted: HashSet<String> = plan.scripts.iter().map(|(c, _)| c.name.clone()).collect();
        self.scripts.retain(|name, runner| {
            let keep = wanted.contains(name) && plan.scripts.iter().any(|(c, _)| c == &runner.config);
            if !keep {
                runner.task.abort();
            }
            keep
        });
        for (config, script) in plan.scripts {
            if !self.scripts.contains_key(&config.name) {
                self.status.remove(&(TrackerKind::Script, config.name.clone()));
                let task = tokio::spawn(run_track_script(config.clone(), script, self.events.clone()));
                self.scripts.insert(config.name.clone(), ScriptRunner { config, task });
            }
        }

        let removed: Vec<String> = self.drivers.keys().filter(|i| !plan.drivers.contains_key(*i)).cloned().collect();
        for interface in removed {
            if let Some(handle) = self.drivers.remove(&interface) {
                stop_driver(handle).await;
            }
        }
        for (interface, spec) in plan.drivers {
            if let Some(handle) = self.drivers.get(&interface) {
                let _ = handle.commands.send(DriverCommand::Reload { spec, status: self.status.clone() }).await;
                continue;
            }
            let driver = Driver::start(
                spec,
                self.netlink.clone(),
                self.notifier.clone(),
                self.balancer.clone(),
                self.board.clone(),
                &self.status,
            )
            .await?;
            let (commands, queue) = mpsc::channel(64);
            let task = tokio::spawn(driver.run(queue));
            self.drivers.insert(interface, DriverHandle { commands, task });
        }
        Ok(())
    }

    /// SIGHUP or `vrrpd ctl reload`: a file that does not load, or whose scripts are refused,
    /// changes nothing.
    async fn reload(&mut self) -> Result<String, String> {
        systemd::reloading();
        let result = self.reload_inner().await;
        systemd::ready(&systemd::status_line(&self.board, self.balancer.as_deref()));
        result
    }

    async fn reload_inner(&mut self) -> Result<String, String> {
        info!(config = %self.config_path.display(), "reloading the configuration");
        let config = match Config::load(&self.config_path) {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    warn!("{warning}");
                }
                let mut config = loaded.config;
                self.overrides.apply_overrides(&mut config);
                config
            }
            Err(e) => {
                error!("reload rejected, the running configuration stays:\n{e}");
                return Err(format!("reload rejected, the running configuration stays:\n{e}"));
            }
        };
        let plan = match plan(&config) {
            Ok(plan) => plan,
            Err(e) => {
                error!("reload rejected, the running configuration stays:\n{e}");
                return Err(format!("reload rejected, the running configuration stays:\n{e}"));
            }
        };
        if config.proxies != self.proxies {
            match &self.balancer {
                Some(balancer) => {
                    balancer.reload(&config.proxies);
                    self.watch_new_proxies();
                }
                None => warn!("the first [[proxy]] sections take effect at the next restart"),
            }
            self.proxies = config.proxies.clone();
        }
        self.learn_interfaces(&plan).await;
        let names: Vec<String> = config.instances.iter().map(|i| i.name.clone()).collect();
        let result = self.apply(plan).await;
        self.board.retain(&names);
        self.config = config;
        match result {
            Ok(()) => {
                info!("configuration reloaded");
                Ok("configuration reloaded".to_owned())
            }
            Err(e) => {
                error!(error = %e, "reload partly applied");
                Err(format!("reload partly applied: {e}"))
            }
        }
    }

    /// One control command (see [`control::USAGE`]); the answer says what changed.
    async fn control(&mut self, words: &[String]) -> Result<String, String> {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let balancer = || self.balancer.as_deref().ok_or_else(|| "no [[proxy]] is configured".to_owned());
        match words.as_slice() {
            ["status"] => Ok(render::text(&self.board.snapshot(self.balancer.as_deref()))),
            ["status", "--json"] => {
                serde_json::to_string_pretty(&self.board.snapshot(self.balancer.as_deref())).map_err(|e| e.to_string())
            }
            ["server", action @ ("drain" | "disable" | "enable"), target] => {
                let (proxy, server) = control::proxy_server(target)?;
                let admin = match *action {
                    "drain" => Admin::Drain,
                    "disable" => Admin::Maint,
                    _ => Admin::Ready,
                };
                balancer()?.set_admin(proxy, server, admin).map_err(|e| e.to_string())
            }
            ["server", "weight", target, weight] => {
                let (proxy, server) = control::proxy_server(target)?;
                let weight: u32 = weight.parse().map_err(|_| format!("{weight:?} is not a weight (0..=256)"))?;
                balancer()?.set_weight(proxy, server, weight).map_err(|e| e.to_string())
            }
            ["shutdown-sessions", target] => {
                let (proxy, server) = control::proxy_server(target)?;
                balancer()?.shutdown_sessions(proxy, server).map_err(|e| e.to_string())
            }
            [verb @ ("resign" | "resume"), instance] => {
                let interface = self
                    .config
                    .instance(instance)
                    .map(|i| i.interface.clone())
                    .ok_or_else(|| format!("no instance named {instance:?}"))?;
                let handle = self.drivers.get(&interface).ok_or_else(|| format!("{instance} is not running"))?;
                let (reply, answer) = oneshot::channel();
                let command = DriverCommand::Resign { instance: (*instance).to_owned(), resign: *verb == "resign", reply };
                handle.commands.send(command).await.map_err(|_| "the instance's driver stopped".to_owned())?;
                answer.await.map_err(|_| "the instance's driver stopped".to_owned())?
            }
            ["reload"] => self.reload().await,
            [] | ["help"] => Ok(control::USAGE.to_owned()),
            _ => Err(format!("unknown command {:?}\n{}", words.join(" "), control::USAGE)),
        }
    }

    async fn tracker_changed(&mut self, event: TrackerEvent) {
        let key = (event.kind, event.name.clone());
        if self.status.insert(key, event.up) == Some(event.up) {
            return;
        }
        for handle in self.drivers.values() {
            let command = DriverCommand::Tracker { kind: event.kind, name: event.name.clone(), up: event.up };
            let _ = handle.commands.send(command).await;
        }
    }

    async fn shutdown(&mut self) {
        for (_, runner) in self.scripts.drain() {
            runner.task.abort();
        }
        for (_, handle) in self.drivers.drain() {
            stop_driver(handle).await;
        }
    }
}

async fn stop_driver(handle: DriverHandle) {
    let (done, finished) = oneshot::channel();
    if handle.commands.send(DriverCommand::Shutdown { done }).await.is_ok() {
        let _ = finished.await;
    }
    let _ = handle.task.await;
}

/// Runs a track script every `interval`, debounced by rise/fall; reports changes only. The
/// first run is immediate, so a failing check is known before the first election ends.
async fn run_track_script(config: VrrpScript, script: Script, events: mpsc::UnboundedSender<TrackerEvent>) {
    let mut health = RiseFall::new(config.rise, config.fall, true);
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let outcome = script.run(&[], config.timeout).await;
        if let Some(up) = health.record(outcome.is_success()) {
            info!(script = %config.name, up, ?outcome, "track script changed state");
            if events.send(TrackerEvent { kind: TrackerKind::Script, name: config.name.clone(), up }).is_err() {
                return;
            }
        }
    }
}

fn spawn_link_monitor(events: mpsc::UnboundedSender<TrackerEvent>) -> Result<(), StartError> {
    let mut stream = Box::pin(link::link_events()?);
    tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            if events.send(TrackerEvent { kind: TrackerKind::Interface, name: event.name, up: event.up }).is_err() {
                return;
            }
        }
        error!("link monitor stopped: link changes are no longer seen");
    });
    Ok(())
}
