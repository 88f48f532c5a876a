//! A lab of network namespaces (`scripts/lab.sh`) with real programs running in it: vrrpd,
//! keepalived, a ping probe on the client. Used by the namespace tests and by the drill.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::repo_root;

pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
pub const VIP2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 101);
/// The IPv6 VIP of VRRPv3 tests (a /64 of the lab's 2001:db8::/64).
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

/// One lab; deleted (with everything running in it) when dropped.
pub struct Lab {
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// Creates a lab with a name unique to this process and `tag`.
    pub fn up(tag: &str) -> Lab {
        static SEQUENCE: AtomicU32 = AtomicU32::new(0);
        // Namespace names stay short: they become interface-independent but readable.
        let name = format!("v{}{}-{tag}", std::process::id() % 100_000, SEQUENCE.fetch_add(1, Ordering::Relaxed));
        run_lab_script(&name, "up");
        Lab { name, dir: tempfile::tempdir().expect("temporary directory") }
    }

    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.name)
    }

    /// Runs a command inside a host's namespace and waits for it.
    pub fn exec(&self, host: &str, command: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.ns(host)]).args(command).output().expect("run ip netns exec")
    }

    /// The IPv4 addresses on a host's eth0.
    pub fn addresses(&self, host: &str) -> Vec<Ipv4Addr> {
        let out = Command::new("ip")
            .args(["-n", &self.ns(host), "-br", "-4", "addr", "show", "dev", "eth0"])
            .output()
            .expect("ip addr");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .skip(2)
            .filter_map(|a| a.split('/').next()?.parse().ok())
            .collect()
    }

    /// The IPv6 addresses on a host's eth0.
    pub fn addresses6(&self, host: &str) -> Vec<Ipv6Addr> {
        let out = Command::new("ip")
            .args(["-n", &self.ns(host), "-br", "-6", "addr", "show", "dev", "eth0"])
            .output()
            .expect("ip addr");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .skip(2)
            .filter_map(|a| a.split('/').next()?.parse().ok())
            .collect()
    }

    /// Which of the proxy hosts hold the IPv6 `vip`.
    pub fn holders6(&self, vip: Ipv6Addr) -> Vec<&'static str> {
        ["a", "b"].into_iter().filter(|h| self.addresses6(h).contains(&vip)).collect()
    }

    /// Waits until exactly `host` holds the IPv6 `vip`; panics with the logs otherwise.
    pub fn expect_holder6(&self, vip: Ipv6Addr, host: &str, within: Duration, context: &[&Daemon]) {
        if !wait_until(within, || self.holders6(vip) == [host]) {
            let logs: Vec<String> = context.iter().map(|d| format!("--- {}:\n{}", d.name, d.log())).collect();
            panic!("{vip} should be on {host} alone, `ip -br -6 a` shows it on {:?}\n{}", self.holders6(vip), logs.join("\n"));
        }
    }

    /// Which of the proxy hosts hold `vip`, of either family.
    pub fn holders_of(&self, vip: IpAddr) -> Vec<&'static str> {
        match vip {
            IpAddr::V4(v4) => self.holders(v4),
            IpAddr::V6(v6) => self.holders6(v6),
        }
    }

    /// [`Lab::expect_holder`] for a VIP of either family.
    pub fn expect_holder_of(&self, vip: IpAddr, host: &str, within: Duration, context: &[&Daemon]) {
        match vip {
            IpAddr::V4(v4) => self.expect_holder(v4, host, within, context),
            IpAddr::V6(v6) => self.expect_holder6(v6, host, within, context),
        }
    }

    /// Which of the proxy hosts hold `vip`, as `ip -br a` shows it.
    pub fn holders(&self, vip: Ipv4Addr) -> Vec<&'static str> {
        ["a", "b"].into_iter().filter(|h| self.addresses(h).contains(&vip)).collect()
    }

    /// Waits until exactly `host` holds `vip`; panics with the logs otherwise.
    pub fn expect_holder(&self, vip: Ipv4Addr, host: &str, within: Duration, context: &[&Daemon]) {
        if !wait_until(within, || self.holders(vip) == [host]) {
            let logs: Vec<String> = context.iter().map(|d| format!("--- {}:\n{}", d.name, d.log())).collect();
            panic!("{vip} should be on {host} alone, `ip -br a` shows it on {:?}\n{}", self.holders(vip), logs.join("\n"));
        }
    }

    /// Unplugs a host's cable: its switch port goes down, so eth0 loses carrier.
    pub fn cut_link(&self, host: &str) {
        self.switch(&["link", "set", "dev", &format!("port-{host}"), "down"]);
    }

    pub fn heal_link(&self, host: &str) {
        self.switch(&["link", "set", "dev", &format!("port-{host}"), "up"]);
    }

    /// Separates a host from the others while its eth0 keeps carrier (a broken switch, a
    /// firewall): the port leaves the bridge.
    pub fn isolate(&self, host: &str) {
        self.switch(&["link", "set", "dev", &format!("port-{host}"), "nomaster"]);
    }

    pub fn rejoin(&self, host: &str) {
        self.switch(&["link", "set", "dev", &format!("port-{host}"), "master", "br0"]);
    }

    fn switch(&self, args: &[&str]) {
        let status = Command::new("ip").args(["-n", &self.ns("sw")]).args(args).status().expect("ip");
        assert!(status.success(), "ip -n {}-sw {args:?} failed", self.name);
    }

    /// The MAC address of a host's eth0 (fixed by lab.sh).
    pub fn mac(host: &str) -> &'static str {
        match host {
            "a" => "02:00:00:00:00:11",
            "b" => "02:00:00:00:00:12",
            "client" => "02:00:00:00:00:31",
            _ => "02:00:00:00:00:21",
        }
    }

    /// The MAC `host` has in its ARP cache for `ip`.
    pub fn neighbour(&self, host: &str, ip: Ipv4Addr) -> Option<String> {
        let out = Command::new("ip").args(["-n", &self.ns(host), "neigh", "show", &ip.to_string()]).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace();
        words.find(|w| *w == "lladdr")?;
        words.next().map(str::to_owned)
    }

    /// Waits for the next VRRP advert seen on `host`'s eth0 (to time an action right after one).
    pub fn wait_for_advert(&self, host: &str) {
        let out = self.exec(
            host,
            &["timeout", "5", "tcpdump", "--immediate-mode", "-c", "1", "-n", "-i", "eth0", "ip proto 112 or ip6 proto 112"],
        );
        assert!(out.status.success(), "no advert on {host} within 5 s");
    }

    /// `tcpdump -n -l --immediate-mode -i eth0 WORDS...` on `host` for at most `seconds`, its
    /// lines on the child's stdout.
    pub fn capture(&self, host: &str, seconds: u32, words: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(host), "timeout", &seconds.to_string()])
            .args(["tcpdump", "-n", "-l", "--immediate-mode", "-i", "eth0"])
            .args(words)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tcpdump")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        run_lab_script(&self.name, "down");
    }
}

fn run_lab_script(name: &str, verb: &str) {
    let status = Command::new("bash")
        .arg(repo_root().join("scripts/lab.sh"))
        .arg(verb)
        .env("LAB", name)
        .stdout(Stdio::null())
        .status()
        .expect("run scripts/lab.sh");
    assert!(status.success(), "scripts/lab.sh {verb} failed for lab {name}");
}

/// Polls `condition` every 20 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The vrrpd binary of this build: next to the test executable's `deps/` folder.
pub fn vrrpd_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current executable");
    let profile_dir = exe.parent().and_then(|d| if d.ends_with("deps") { d.parent() } else { Some(d) }).expect("target dir");
    let binary = profile_dir.join("vrrpd");
    assert!(binary.exists(), "{} is missing: build it first (cargo build --workspace --all-targets)", binary.display());
    binary
}

/// A daemon (vrrpd or keepalived) running inside a lab host.
pub struct Daemon {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `vrrpd --config <config> <args>` on `host` with this configuration text, written as
    /// it is: [`crate::scenario::HostConfig::start`] is the usual way, with the host's control
    /// socket filled in; this one is for a file the builder does not write.
    pub fn vrrpd(lab: &Lab, host: &str, config: &str, args: &[&str]) -> Daemon {
        Daemon::vrrpd_with_env(lab, host, config, args, &[])
    }

    /// [`Daemon::vrrpd`] with extra environment variables (NOTIFY_SOCKET, JOURNAL_STREAM...).
    pub fn vrrpd_with_env(lab: &Lab, host: &str, config: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::vrrpd_under(lab, host, &[], config, args, env)
    }

    /// [`Daemon::vrrpd`] started through `wrapper` (for example `setpriv` with a user and the
    /// shipped unit's capabilities).
    pub fn vrrpd_under(lab: &Lab, host: &str, wrapper: &[&str], config: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let path = vrrpd_config_path(lab, host);
        std::fs::write(&path, config).expect("write config");
        let binary = vrrpd_binary();
        let mut command = wrapper.to_vec();
        command.extend([binary.to_str().expect("utf-8 path"), "--config", path.to_str().expect("utf-8 path")]);
        command.extend_from_slice(args);
        Daemon::spawn(lab, host, &format!("vrrpd@{host}"), &command, env)
    }

    /// Starts keepalived 2.2.7 (Debian's) on `host` with the given keepalived.conf text.
    pub fn keepalived(lab: &Lab, host: &str, config: &str) -> Daemon {
        let conf = lab.file(&format!("keepalived-{host}.conf"));
        std::fs::write(&conf, config).expect("write keepalived.conf");
        let pid = lab.file(&format!("keepalived-{host}.pid"));
        let vrrp_pid = lab.file(&format!("keepalived-vrrp-{host}.pid"));
        let args = [
            "keepalived",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--vrrp",
            "--use-file",
            conf.to_str().expect("utf-8"),
            "--pid",
            pid.to_str().expect("utf-8"),
            "--vrrp_pid",
            vrrp_pid.to_str().expect("utf-8"),
        ];
        Daemon::spawn(lab, host, &format!("keepalived@{host}"), &args, &[])
    }

    /// Runs `vrrpd ctl` against this daemon's control socket.
    pub fn ctl(lab: &Lab, host: &str, words: &[&str]) -> Output {
        let socket = control_socket(lab, host);
        Command::new(vrrpd_binary())
            .args(["ctl", "--socket", socket.to_str().expect("utf-8")])
            .args(words)
            .output()
            .expect("run vrrpd ctl")
    }

    fn spawn(lab: &Lab, host: &str, name: &str, command: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = lab.file(&format!("{}.log", name.replace('@', "-")));
        let out = File::options().create(true).append(true).open(&log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.ns(host)])
            .args(command)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .env("VRRPD_LOG", "info")
            .envs(env.iter().copied())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Daemon { name: name.to_owned(), child: Some(child), log }
    }

    pub fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| Pid::from_raw(c.id() as i32))
    }

    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, signal);
        }
    }

    /// SIGTERM, then wait up to 10 s for the exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.signal(Signal::SIGTERM);
        self.wait(Duration::from_secs(10))
    }

    /// kill -9: no goodbye.
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        self.wait(Duration::from_secs(5));
    }

    fn wait(&mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> bool {
        wait_until(within, || self.log().contains(needle))
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Each lab daemon gets its own control socket: namespaces share the filesystem.
pub fn control_socket(lab: &Lab, host: &str) -> PathBuf {
    lab.file(&format!("vrrpd-{host}.sock"))
}

/// The configuration file [`Daemon::vrrpd`] writes for `host` (and a reload reads again).
pub fn vrrpd_config_path(lab: &Lab, host: &str) -> PathBuf {
    lab.file(&format!("vrrpd-{host}.toml"))
}

/// A client probing the VIP with ping every 10 ms (Debian's iputils ping).
pub struct Probe {
    child: Child,
    output: PathBuf,
}

/// What a probe saw.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    pub replies: usize,
    /// The longest time without a reply, between two replies.
    pub outage: Duration,
}

impl Probe {
    pub fn start(lab: &Lab, target: impl Into<IpAddr>) -> Probe {
        let target = target.into();
        let output = lab.file(&format!("probe-{}.log", Instant::now().elapsed().as_nanos()));
        let out = File::create(&output).expect("probe log");
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.ns("client"), "ping", "-D", "-n", "-i", "0.01", "-W", "0.2", &target.to_string()])
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("start ping");
        Probe { child, output }
    }

    /// Stops the probe and reports the longest gap between replies.
    pub fn stop(mut self) -> ProbeReport {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        let stamps: Vec<f64> = text
            .lines()
            .filter(|l| l.contains(" bytes from "))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
            .collect();
        let outage = stamps.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        ProbeReport { replies: stamps.len(), outage: Duration::from_secs_f64(outage) }
    }
}

/// The `greeter` backends in the lab's backend namespace: rabbit1 on 192.0.2.21:5672 and
/// rabbit2 on 192.0.2.22:5672, each greeting with its name and echoing lines.
pub struct Greeters {
    child: Child,
    output: PathBuf,
}

impl Greeters {
    pub fn start(lab: &Lab) -> Greeters {
        let output = lab.file("greeter.out");
        let greeter = vrrpd_binary().with_file_name("greeter");
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.ns("backend"), greeter.to_str().expect("utf-8 path")])
            .args(["rabbit1=192.0.2.21:5672", "rabbit2=192.0.2.22:5672"])
            .stdout(File::create(&output).expect("greeter output"))
            .spawn()
            .expect("start greeter");
        assert!(wait_until(Duration::from_secs(3), || std::fs::read_to_string(&output).unwrap_or_default().contains("ready")));
        Greeters { child, output }
    }

    /// What the backends printed: one `closed NAME PEER` line per connection that ended.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for Greeters {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A line-based client connected from the lab's client namespace, e.g. through the VIP.
pub struct LineClient {
    stream: std::net::TcpStream,
    reader: std::io::BufReader<std::net::TcpStream>,
    /// The first line the server sent (a greeter's name).
    pub greeting: String,
}

impl LineClient {
    pub fn connect(lab: &Lab, to: std::net::SocketAddr) -> LineClient {
        use std::io::BufRead;
        let stream = crate::netns::connect_from(&lab.ns("client"), to).unwrap_or_else(|e| panic!("connect to {to}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
        let mut greeting = String::new();
        let _ = reader.read_line(&mut greeting);
        LineClient { stream, reader, greeting: greeting.trim_end().to_owned() }
    }

    /// Sends a line and returns the echo; None once the connection is closed.
    pub fn echo(&mut self, text: &str) -> Option<String> {
        use std::io::{BufRead, Write};
        writeln!(self.stream, "{text}").ok()?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end().to_owned()),
        }
    }

    pub fn alive(&mut self) -> bool {
        self.echo("ping").is_some()
    }
}
