//! Giving up a VIP never holds up VRRP: while a thousand sessions accepted on a VIP that is
//! being released close (broker side included), the other instance on the same interface keeps
//! its advert interval, as tcpdump sees it on the wire. Needs root.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use integration::lab::{wait_until, Daemon, Greeters, Lab, VIP, VIP2};
use integration::netns::{raise_nofile, spawn_in};
use integration::netns_available;
use integration::scenario::{HostConfig, Instance, Proxy, TAKEOVER};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SESSIONS: usize = 1000;

/// Timestamps (seconds) of the adverts tcpdump printed, one per line (`-tt`).
fn advert_times(capture: &str) -> Vec<f64> {
    capture.lines().filter_map(|line| line.split_whitespace().next()?.parse().ok()).collect()
}

#[test]
fn adverts_keep_their_interval_while_a_thousand_sessions_close_on_a_released_vip() {
    if !netns_available("adverts_keep_their_interval_while_a_thousand_sessions_close_on_a_released_vip", &["ip", "tcpdump"]) {
        return;
    }
    let limit = raise_nofile(16_384) as usize;
    assert!(limit >= 3 * SESSIONS + 200, "open-file limit {limit} is too low for this test");
    let lab = Lab::up("release");
    let _brokers = Greeters::start(&lab);
    let a = HostConfig::vi1("a", 101)
        .instance(Instance::vi2(101))
        .proxy(Proxy::amqp(r#"kind = "tcp", interval = "1s""#, 2))
        .start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    lab.expect_holder(VIP2, "a", TAKEOVER, &[&a]);

    // A thousand sessions through VI_1's VIP, each greeted by its broker, then held open.
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let clients = spawn_in(&lab.ns("client"), move || async move {
        let mut streams = Vec::with_capacity(SESSIONS);
        for _ in 0..SESSIONS {
            let mut stream = TcpStream::connect((VIP, 5672)).await.unwrap();
            let mut greeting = [0u8; 8];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut greeting)).await.unwrap().unwrap();
            assert!(n > 0, "greeted by a broker");
            streams.push(stream);
        }
        held_tx.send(streams.len()).unwrap();
        let _ = release_rx.recv();
        // Every session ends: the proxy closed it when the VIP went. One deadline for all of
        // them: sessions left open must fail the test in seconds, not wait 10 s each.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut ended = 0;
        for mut stream in streams {
            let mut rest = Vec::new();
            if tokio::time::timeout_at(deadline, stream.read_to_end(&mut rest)).await.is_ok() {
                ended += 1;
            }
        }
        ended
    });
    assert_eq!(held_rx.recv_timeout(Duration::from_secs(60)).unwrap(), SESSIONS);

    // VI_2's adverts on the wire, from a few intervals before the release to three after.
    let capture = lab.file("vi2-adverts.txt");
    let mut tcpdump = Command::new("ip")
        .args(["netns", "exec", &lab.ns("a"), "tcpdump", "-i", "eth0", "-n", "-tt", "-l", "--immediate-mode"])
        .args(["ip proto 112 and ip[21] = 52"])
        .stdout(std::fs::File::create(&capture).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Release VI_1's VIP just before VI_2's next advert is due: a loop that waits on the
    // sessions would send it late.
    let adverts = || advert_times(&std::fs::read_to_string(&capture).unwrap_or_default());
    assert!(wait_until(Duration::from_secs(5), || adverts().len() >= 3), "VI_2 adverts on the wire");
    let due = adverts().last().copied().unwrap() + 1.0;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    std::thread::sleep(Duration::from_secs_f64((due - now - 0.040).max(0.0)));
    let out = Daemon::ctl(&lab, "a", &["resign", "VI_1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    release_tx.send(()).unwrap();
    assert!(wait_until(Duration::from_secs(3), || !lab.addresses("a").contains(&VIP)), "VI_1's VIP goes:\n{}", a.log());
    std::thread::sleep(Duration::from_millis(3000));
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(tcpdump.id() as i32), nix::sys::signal::Signal::SIGINT);
    let _ = tcpdump.wait();

    assert_eq!(clients.join().unwrap().unwrap(), SESSIONS, "every session on the released VIP was closed");
    assert!(lab.addresses("a").contains(&VIP2), "VI_2 keeps its VIP");
    let times = advert_times(&std::fs::read_to_string(&capture).unwrap());
    assert!(times.len() >= 5, "VI_2's adverts were captured: {times:?}");
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let longest = gaps.iter().copied().fold(0.0, f64::max);
    eprintln!("VI_2 advert gaps around the release of {SESSIONS} sessions: {gaps:.3?}");
    assert!(longest <= 1.050, "an advert was late by {:.0} ms while sessions closed: {gaps:.3?}", (longest - 1.0) * 1000.0);
}
