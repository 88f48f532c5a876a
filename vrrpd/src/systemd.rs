//! Talking to systemd (`Type=notify`): READY once VRRP runs and the listeners are bound, STATUS
//! with each instance's state and each proxy's servers, RELOADING/READY around a reload,
//! STOPPING, and watchdog pings from the VRRP runtime, so a stuck protocol loop gets the
//! service restarted. Outside systemd (no NOTIFY_SOCKET) every call does nothing.

use std::time::Duration;

use proxy::Balancer;
use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

use crate::stats::StatusBoard;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "systemd notification failed");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn reloading() {
    send(&[NotifyState::Reloading]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping: resigning and draining")]);
}

/// "VI_1 MASTER, VI_2 BACKUP; amqp 3/3 UP": what `systemctl status` shows.
pub fn status_line(board: &StatusBoard, balancer: Option<&Balancer>) -> String {
    let snapshot = board.snapshot(balancer);
    let instances: Vec<String> = snapshot
        .instances
        .iter()
        .map(|i| format!("{} {}{}", i.name, i.state, if i.resigned { " (resigned)" } else { "" }))
        .collect();
    let proxies: Vec<String> = snapshot
        .proxies
        .iter()
        .map(|p| {
            let up = p.servers.iter().filter(|s| s.status == "UP").count();
            let listening = if p.listening { "" } else { ", NOT LISTENING" };
            format!("{} {up}/{} UP, {} sessions{listening}", p.name, p.servers.len(), p.sessions.current)
        })
        .collect();
    if proxies.is_empty() {
        instances.join(", ")
    } else {
        format!("{}; {}", instances.join(", "), proxies.join(", "))
    }
}

/// Keeps STATUS current (when it changes) and pings the watchdog at half its timeout. Runs on
/// the VRRP runtime: if that loop stalls, the pings stop and systemd restarts the service.
pub async fn keep_informed(board: StatusBoard, balancer: Option<std::sync::Arc<Balancer>>, stop: CancellationToken) {
    // Not started by systemd: nobody to tell, nothing to compute.
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    let tick = watchdog.map_or(Duration::from_secs(1), |timeout| (timeout / 2).min(Duration::from_secs(1)));
    let mut last = String::new();
    let mut reported = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        let status = status_line(&board, balancer.as_deref());
        if status != last {
            send(&[NotifyState::Status(&status)]);
            last = status;
        }
        if watchdog.is_none() {
            continue;
        }
        // Pinged only while every VRRP driver's loop keeps running: a driver stuck anywhere
        // (not just the whole runtime) gets the service restarted.
        let stalled = board.stalled(STALLED_AFTER);
        if stalled.is_empty() {
            send(&[NotifyState::Watchdog]);
            reported = false;
        } else if !reported {
            error!(?stalled, "a VRRP driver stopped running: no more watchdog pings, systemd will restart vrrpd");
            reported = true;
        }
    }
}

/// A driver's loop runs at least every [`crate::vrrp::driver::TICK`]; this long without is a stall.
const STALLED_AFTER: Duration = Duration::from_secs(5);
