//! The configuration as users write it, and each bad input with the line it is reported at.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use super::*;

/// The example from the issue that introduced the configuration format.
const EXAMPLE: &str = r#"
[global]
router_id = "proxy-a"

[[vrrp_script]]
name = "chk_extra"
script = "/usr/local/bin/check.sh"
interval = "2s"
timeout = "1s"
weight = -20
rise = 2
fall = 2

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
state = "BACKUP"                 # initial state; `--state` on the command line overrides it
virtual_router_id = 51
priority = 101
advert_int = 1                   # whole seconds (VRRPv2)
preempt = true
authentication = { auth_type = "PASS", auth_pass = "s3cret" }
virtual_ipaddress = ["192.0.2.100/24"]
track_script = [{ name = "chk_extra" }]        # weight from the script unless given here
track_proxy = [{ name = "amqp", weight = 0 }]  # 0 = FAULT when the proxy has no server UP
notify = "/usr/local/bin/notify.sh"

[[proxy]]
name = "amqp"
bind = "0.0.0.0:5670"
balance = "leastconn"            # leastconn | roundrobin | first
check = { kind = "amqp", interval = "2s", rise = 2, fall = 3, timeout = "1s" }   # kind: tcp | amqp
timeout_connect = "2s"
timeout_idle = "3h"
retries = 3
redispatch = true

[[proxy.server]]
name = "rabbit1"
address = "192.0.2.21:5672"

[[proxy.server]]
name = "rabbit3"
address = "192.0.2.23:5672"
backup = true

[stats]
listen = "0.0.0.0:8100"
"#;

fn parse(text: &str) -> Result<Loaded, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

/// Parses `text`, expecting exactly one problem; returns it.
fn single_problem(text: &str) -> Diagnostic {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            let problems = e.problems();
            assert_eq!(problems.len(), 1, "expected one problem, got:\n{e}");
            problems[0].clone()
        }
    }
}

/// The example with `from` replaced by `to` (which must occur once).
fn example_with(from: &str, to: &str) -> String {
    assert_eq!(EXAMPLE.matches(from).count(), 1, "{from:?} must occur once in the example");
    EXAMPLE.replace(from, to)
}

fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).expect("needle in text")].matches('\n').count() + 1
}

#[test]
fn the_documented_example_means_what_it_says() {
    let Loaded { config, warnings } = parse(EXAMPLE).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.global.router_id, "proxy-a");

    let script = config.script("chk_extra").unwrap();
    assert_eq!(script.script, "/usr/local/bin/check.sh");
    assert_eq!((script.interval, script.timeout), (Duration::from_secs(2), Duration::from_secs(1)));
    assert_eq!((script.weight, script.rise, script.fall), (-20, 2, 2));

    let vi = config.instance("VI_1").unwrap();
    assert_eq!(vi.interface, "eth0");
    assert_eq!(vi.initial_state, InitialState::Backup);
    assert_eq!((vi.vrid, vi.priority), (51, 101));
    assert_eq!(vi.advert_int, Duration::from_secs(1));
    assert!(vi.preempt);
    assert_eq!(vi.authentication, Authentication::Pass(*b"s3cret\0\0"));
    assert_eq!(vi.virtual_ipaddress, vec![Vip::plain(IpPrefix { addr: Ipv4Addr::new(192, 0, 2, 100).into(), len: 24 })]);
    assert_eq!(
        vi.track_script,
        vec![Track { name: "chk_extra".into(), weight: -20, reverse: false }],
        "weight comes from the script"
    );
    assert_eq!(vi.track_proxy, vec![Track { name: "amqp".into(), weight: 0, reverse: false }]);
    assert_eq!(vi.notify.any.as_deref(), Some("/usr/local/bin/notify.sh"));
    assert_eq!(vi.garp, GarpConfig::default());

    let amqp = config.proxy("amqp").unwrap();
    assert_eq!(amqp.binds, vec!["0.0.0.0:5670".parse().unwrap()]);
    assert_eq!(amqp.balance, Balance::LeastConn);
    assert_eq!(amqp.check.kind, CheckKind::Amqp);
    assert_eq!((amqp.check.interval, amqp.check.timeout), (Duration::from_secs(2), Duration::from_secs(1)));
    assert_eq!((amqp.check.rise, amqp.check.fall), (2, 3));
    assert_eq!(amqp.timeout_connect, Duration::from_secs(2));
    assert_eq!(amqp.timeout_idle, Duration::from_secs(3 * 3600));
    assert_eq!((amqp.retries, amqp.redispatch), (3, true));
    assert_eq!(amqp.servers.len(), 2);
    assert!(!amqp.servers[0].backup && amqp.servers[1].backup);
    assert_eq!(amqp.servers[1].address, "192.0.2.23:5672".parse().unwrap());

    assert_eq!(config.stats.unwrap().listen, "0.0.0.0:8100".parse().unwrap());
}

#[test]
fn defaults_follow_keepalived_and_haproxy() {
    let text = r#"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 7
virtual_ipaddress = ["192.0.2.100"]

[[proxy]]
name = "amqp"
bind = "0.0.0.0:5672"
[[proxy.server]]
name = "r1"
address = "192.0.2.21:5672"
"#;
    let config = parse(text).unwrap().config;
    let vi = &config.instances[0];
    assert_eq!(vi.priority, 100);
    assert_eq!(vi.advert_int, Duration::from_secs(1));
    assert_eq!(vi.initial_state, InitialState::Backup);
    assert!(vi.preempt);
    assert_eq!(vi.authentication, Authentication::None);
    assert_eq!(vi.virtual_ipaddress[0].prefix.len, 32, "a bare address is a /32, as in keepalived");
    let p = &config.proxies[0];
    assert_eq!(p.balance, Balance::LeastConn);
    assert_eq!(p.check.kind, CheckKind::Tcp);
    assert_eq!((p.check.interval, p.check.rise, p.check.fall), (Duration::from_secs(2), 2, 3));
    assert!(p.timeout_idle >= Duration::from_secs(3600), "the idle default must never cut an AMQP client");
    assert!(p.shutdown_sessions_on_down);
    assert_eq!(p.servers[0].weight, 1);
    assert!(!config.global.router_id.is_empty());
}

#[test]
fn the_password_is_never_printed() {
    let config = parse(EXAMPLE).unwrap().config;
    assert!(!format!("{config:?}").contains("s3cret"));
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let text = example_with("preempt = true", "preempt = true\nadvert_intt = 2");
    let p = single_problem(&text);
    assert_eq!(p.line, line_of(&text, "advert_intt"));
    assert!(p.message.contains("unknown field `advert_intt`"), "{p}");
    assert!(p.key.starts_with("vrrp_instance[0]"), "{p}");
}

#[test]
fn unknown_section_is_refused() {
    let p = single_problem(&format!("{EXAMPLE}\n[global_defs]\nrouter_id = \"x\"\n"));
    assert!(p.message.contains("unknown field `global_defs`"), "{p}");
}

#[test]
fn vrid_outside_1_to_255() {
    for bad in ["0", "256", "-1"] {
        let text = example_with("virtual_router_id = 51", &format!("virtual_router_id = {bad}"));
        let p = single_problem(&text);
        assert_eq!(p.line, line_of(&text, "virtual_router_id"));
        assert_eq!(p.key, "vrrp_instance[0].virtual_router_id");
        assert!(p.message.contains("outside 1..=255"), "{p}");
    }
}

#[test]
fn priority_outside_1_to_255() {
    for bad in ["0", "256"] {
        let text = example_with("priority = 101", &format!("priority = {bad}"));
        let p = single_problem(&text);
        assert_eq!((p.line, p.key.as_str()), (line_of(&text, "priority = "), "vrrp_instance[0].priority"));
    }
}

#[test]
fn pass_password_longer_than_8_bytes() {
    let text = example_with("auth_pass = \"s3cret\"", "auth_pass = \"123456789\"");
    let p = single_problem(&text);
    assert_eq!(p.line, line_of(&text, "auth_pass"));
    assert_eq!(p.key, "vrrp_instance[0].authentication.auth_pass");
    assert!(p.message.contains("is 9 bytes"), "{p}");
    // Exactly 8 bytes is the maximum and fine.
    let ok = example_with("auth_pass = \"s3cret\"", "auth_pass = \"12345678\"");
    assert_eq!(parse(&ok).unwrap().config.instances[0].authentication, Authentication::Pass(*b"12345678"));
}

#[test]
fn vip_that_is_not_ipv4() {
    for bad in ["2001:db8::1/64", "192.0.2.300/24", "vip", "192.0.2.100/33", "224.0.0.18"] {
        let text = example_with("\"192.0.2.100/24\"", &format!("{bad:?}"));
        let p = single_problem(&text);
        assert_eq!(
            (p.line, p.key.as_str()),
            (line_of(&text, "virtual_ipaddress"), "vrrp_instance[0].virtual_ipaddress[0]"),
            "{p}"
        );
    }
    let p = single_problem(&example_with("\"192.0.2.100/24\"", "\"2001:db8::1\""));
    assert!(p.message.contains("VRRPv2 carries IPv4 addresses only"), "{p}");
}

#[test]
fn version_3_carries_ipv6_vips_one_family_per_instance() {
    let v6 = v3_example("\"100ms\"").replace("\"192.0.2.100/24\"", "\"2001:db8::100/64\"");
    let config = parse(&v6).unwrap_or_else(|e| panic!("{e}")).config;
    assert_eq!(
        config.instances[0].virtual_ipaddress,
        vec![Vip::plain(IpPrefix { addr: "2001:db8::100".parse().unwrap(), len: 64 })]
    );
    let mixed = v3_example("\"100ms\"").replace("\"192.0.2.100/24\"", "\"192.0.2.100/24\", \"2001:db8::100/64\"");
    let p = single_problem(&mixed);
    assert_eq!(p.key, "vrrp_instance[0].virtual_ipaddress[1]");
    assert!(p.message.contains("IPv4 or IPv6 addresses, not both"), "{p}");
    for bad in ["fe80::100/64", "ff02::12", "::1"] {
        let p = single_problem(&v3_example("\"100ms\"").replace("\"192.0.2.100/24\"", &format!("{bad:?}")));
        assert!(p.message.contains("cannot be a virtual address") || p.message.contains("prefix"), "{bad}: {p}");
    }
    let unicast = v6.replace("preempt = true", "preempt = true\nunicast_peer = [\"192.0.2.12\"]");
    assert_eq!(single_problem(&unicast).key, "vrrp_instance[0].unicast_peer");
}

/// keepalived's `virtual_ipaddress_excluded`: addresses the instance adds but its adverts do
/// not list, so an IPv6 address beside a VRRPv2 instance's IPv4 ones is allowed there.
#[test]
fn excluded_vips_are_carried_of_either_family_and_left_out_of_the_adverts() {
    let text = example_with(
        "virtual_ipaddress = [\"192.0.2.100/24\"]",
        "virtual_ipaddress = [\"192.0.2.100/24\"]\nvirtual_ipaddress_excluded = [\"2001:db8::100/64\", \
         { address = \"192.0.2.101/24\", dev = \"eth1\", label = \"eth1:x\" }]",
    );
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}")).config;
    let instance = &config.instances[0];
    let vips: Vec<(String, bool)> = instance.virtual_ipaddress.iter().map(|v| (v.to_string(), v.excluded)).collect();
    assert_eq!(
        vips,
        [
            ("192.0.2.100/24".to_owned(), false),
            ("2001:db8::100/64".to_owned(), true),
            ("192.0.2.101/24 dev eth1 label eth1:x".to_owned(), true)
        ]
    );
    let advertised: Vec<String> = instance.advertised_vips().map(ToString::to_string).collect();
    assert_eq!(advertised, ["192.0.2.100/24"]);
    assert!(!instance.is_ipv6(), "a VRRPv2 instance stays IPv4 with an IPv6 VIP excluded");

    // The same address in both lists, or in another instance, is still refused, at its place.
    let twice = example_with(
        "virtual_ipaddress = [\"192.0.2.100/24\"]",
        "virtual_ipaddress = [\"192.0.2.100/24\"]\nvirtual_ipaddress_excluded = [\"192.0.2.100/32\"]",
    );
    let p = single_problem(&twice);
    assert_eq!(p.key, "vrrp_instance[0].virtual_ipaddress_excluded[0]");
    assert!(p.message.contains("already a VIP of this instance"), "{p}");
    // The advertised list still needs an address; IPv6 there still needs version 3.
    let v6 = example_with("virtual_ipaddress = [\"192.0.2.100/24\"]", "virtual_ipaddress = [\"2001:db8::1/64\"]");
    assert!(single_problem(&v6).message.contains("virtual_ipaddress_excluded"), "the message names the way out");
}

#[test]
fn duplicate_names() {
    let dup_instance = format!("{EXAMPLE}\n[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth1\"\nvirtual_router_id = 52\nvirtual_ipaddress = [\"192.0.2.200/24\"]\n");
    let p = single_problem(&dup_instance);
    assert!(p.message.contains("vrrp_instance \"VI_1\" is defined twice"), "{p}");
    assert_eq!(p.line, dup_instance.rfind("name = \"VI_1\"").map(|i| dup_instance[..i].matches('\n').count() + 1).unwrap());

    let dup_server = example_with("name = \"rabbit3\"", "name = \"rabbit1\"");
    let p = single_problem(&dup_server);
    assert!(p.message.contains("server \"rabbit1\" is defined twice"), "{p}");
    assert_eq!(p.key, "proxy[0].server[1].name");

    let dup_script =
        example_with("[[vrrp_instance]]", "[[vrrp_script]]\nname = \"chk_extra\"\nscript = \"/bin/true\"\n\n[[vrrp_instance]]");
    assert!(single_problem(&dup_script).message.contains("vrrp_script \"chk_extra\" is defined twice"));

    let dup_proxy = format!("{EXAMPLE}\n[[proxy]]\nname = \"amqp\"\nbind = \"0.0.0.0:5671\"\n[[proxy.server]]\nname = \"r\"\naddress = \"192.0.2.21:5672\"\n");
    assert!(single_problem(&dup_proxy).message.contains("proxy \"amqp\" is defined twice"));
}

#[test]
fn same_vrid_twice_on_one_interface() {
    let text = format!("{EXAMPLE}\n[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_ipaddress = [\"192.0.2.200/24\"]\n");
    let p = single_problem(&text);
    assert!(p.message.contains("VRID 51 on eth0 is already used"), "{p}");
}

#[test]
fn same_vip_in_two_instances() {
    let text = format!("{EXAMPLE}\n[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 52\nvirtual_ipaddress = [\"192.0.2.100/24\"]\n");
    assert!(single_problem(&text).message.contains("192.0.2.100 is already a VIP of vrrp_instance[0]"));
}

/// keepalived's `192.0.2.101/24 dev eth1 label eth1:amqp scope global` as a table, beside the
/// string form in one list.
#[test]
fn vip_tables_carry_dev_label_and_scope_beside_strings() {
    let text = example_with(
        "virtual_ipaddress = [\"192.0.2.100/24\"]",
        "virtual_ipaddress = [\n  \"192.0.2.100/24\",\n  { address = \"192.0.2.101/24\", dev = \"eth1\", label = \"eth1:amqp\", scope = \"global\" },\n  \
         { address = \"192.0.2.102/32\", dev = \"lo\", scope = \"host\" },\n  { address = \"192.0.2.103\", scope = 200 },\n]",
    );
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}")).config;
    let vips = &config.instances[0].virtual_ipaddress;
    let prefix = |last, len| IpPrefix { addr: Ipv4Addr::new(192, 0, 2, last).into(), len };
    assert_eq!(vips[0], Vip::plain(prefix(100, 24)));
    assert_eq!(
        vips[1],
        Vip {
            prefix: prefix(101, 24),
            dev: Some("eth1".into()),
            label: Some("eth1:amqp".into()),
            scope: 0,
            broadcast: None,
            excluded: false,
            no_track: false
        }
    );
    assert_eq!(
        vips[2],
        Vip {
            prefix: prefix(102, 32),
            dev: Some("lo".into()),
            label: None,
            scope: 254,
            broadcast: None,
            excluded: false,
            no_track: false
        }
    );
    assert_eq!(
        vips[3],
        Vip { prefix: prefix(103, 32), dev: None, label: None, scope: 200, broadcast: None, excluded: false, no_track: false }
    );
    assert_eq!(vips[1].to_string(), "192.0.2.101/24 dev eth1 label eth1:amqp");
    assert_eq!(vips[2].to_string(), "192.0.2.102/32 dev lo scope host");
    assert_eq!(vips[3].to_string(), "192.0.2.103/32 scope site");
}

/// keepalived and `ip address add` add no broadcast address unless told; `brd` takes an
/// address, `+` or `-`, as both do.
#[test]
fn a_vip_has_a_broadcast_address_only_when_brd_says_so() {
    let text = example_with(
        "virtual_ipaddress = [\"192.0.2.100/24\"]",
        "virtual_ipaddress = [\n  \"192.0.2.100/24\",\n  { address = \"192.0.2.101/24\", brd = \"192.0.2.255\" },\n  \
         { address = \"192.0.2.102/25\", brd = \"+\" },\n  { address = \"192.0.2.203/25\", brd = \"-\" },\n  \
         { address = \"192.0.2.104/32\", brd = \"+\" },\n]",
    );
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}")).config;
    let loaded = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let broadcasts: Vec<_> = config.instances[0].virtual_ipaddress.iter().map(|v| v.broadcast).collect();
    let ip = |last| Some(Ipv4Addr::new(192, 0, 2, last));
    // A /32 has none (keepalived's rule too), with a warning at its line.
    assert_eq!(broadcasts, [None, ip(255), ip(127), ip(128), None]);
    let warning = loaded.warnings.iter().find(|w| w.key.ends_with("virtual_ipaddress[4].brd")).expect("a warning for the /32");
    assert!(warning.message.contains("no broadcast address"), "{warning}");
    assert_eq!(config.instances[0].virtual_ipaddress[1].to_string(), "192.0.2.101/24 brd 192.0.2.255");
}

/// keepalived's `no_track` on a VIP: carried, and written back in keepalived's order.
#[test]
fn a_vip_may_say_no_track() {
    let text = example_with(
        "virtual_ipaddress = [\"192.0.2.100/24\"]",
        "virtual_ipaddress = [\"192.0.2.100/24\", { address = \"192.0.2.101/24\", dev = \"eth1\", no_track = true }]",
    );
    let config = parse(&text).unwrap_or_else(|e| panic!("{e}")).config;
    let vips = &config.instances[0].virtual_ipaddress;
    assert_eq!((vips[0].no_track, vips[1].no_track), (false, true));
    assert_eq!(vips[1].to_string(), "192.0.2.101/24 dev eth1 no_track");
}

#[test]
fn bad_vip_placements_are_refused_at_their_line() {
    let cases = [
        (
            "{ address = \"192.0.2.101/24\", dev = \"eth1\", label = \"eth0:amqp\" }",
            "virtual_ipaddress[0].label",
            "must be the interface name",
        ),
        ("{ address = \"192.0.2.101/24\", label = \"amqp\" }", "virtual_ipaddress[0].label", "as eth0:amqp"),
        ("{ address = \"192.0.2.101/24\", label = \"eth0:\" }", "virtual_ipaddress[0].label", "must be the interface name"),
        ("{ address = \"192.0.2.101/24\", label = \"eth0:a-long-label\" }", "virtual_ipaddress[0].label", "IFNAMSIZ"),
        ("{ address = \"192.0.2.101/24\", label = \"eth0:a b\" }", "virtual_ipaddress[0].label", "without spaces"),
        ("{ address = \"192.0.2.101/24\", scope = \"planet\" }", "virtual_ipaddress[0].scope", "\"host\""),
        ("{ address = \"192.0.2.101/24\", scope = 256 }", "virtual_ipaddress[0].scope", "0..=255"),
        ("{ address = \"192.0.2.101/24\", dev = \"eth 1\" }", "virtual_ipaddress[0].dev", "interface name"),
        ("{ address = \"192.0.2.300/24\", dev = \"eth1\" }", "virtual_ipaddress[0].address", "not an IP address"),
        ("\"192.0.2.101/24 dev eth1\"", "virtual_ipaddress[0]", "written as a table"),
        ("{ address = \"192.0.2.101/24\", brd = \"192.0.2\" }", "virtual_ipaddress[0].brd", "IPv4 address, \"+\" or \"-\""),
        ("{ address = \"192.0.2.101/24\", brd = \"2001:db8::ff\" }", "virtual_ipaddress[0].brd", "IPv4 address"),
    ];
    for (entry, key, says) in cases {
        let text = example_with("virtual_ipaddress = [\"192.0.2.100/24\"]", &format!("virtual_ipaddress = [\n  {entry},\n]"));
        let p = single_problem(&text);
        assert_eq!((p.line, p.key.as_str()), (line_of(&text, entry), format!("vrrp_instance[0].{key}").as_str()), "{entry}: {p}");
        assert!(p.message.contains(says), "{entry}: {p}");
    }
    // A word keepalived has and vrrpd does not (or a typo) is an unknown field, at its line.
    let text = example_with(
        "virtual_ipaddress = [\"192.0.2.100/24\"]",
        "virtual_ipaddress = [\n  { address = \"192.0.2.101/24\", preferred_lft = 0 },\n]",
    );
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains(&format!(":{}:", line_of(&text, "preferred_lft"))) && e.contains("preferred_lft"), "{e}");
    // A scope of another type says what a scope is, at its line.
    let text = example_with(
        "virtual_ipaddress = [\"192.0.2.100/24\"]",
        "virtual_ipaddress = [\n  { address = \"192.0.2.101/24\", scope = true },\n]",
    );
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains(&format!(":{}:", line_of(&text, "scope = true"))) && e.contains("a scope name"), "{e}");
    // No address: the table must say which.
    let text = example_with("virtual_ipaddress = [\"192.0.2.100/24\"]", "virtual_ipaddress = [\n  { dev = \"eth1\" },\n]");
    assert!(parse(&text).unwrap_err().to_string().contains("address"));
}

#[test]
fn ipv6_vips_take_dev_and_scope_but_no_label() {
    let v6 = v3_example("\"100ms\"")
        .replace("\"192.0.2.100/24\"", "{ address = \"2001:db8::100/64\", dev = \"eth1\", label = \"eth1:x\" }");
    let p = single_problem(&v6);
    assert_eq!(p.key, "vrrp_instance[0].virtual_ipaddress[0].label");
    assert!(p.message.contains("IPv6 addresses have no label"), "{p}");
    let v6 = v3_example("\"100ms\"")
        .replace("\"192.0.2.100/24\"", "{ address = \"2001:db8::100/64\", dev = \"eth1\", scope = \"site\" }");
    let vip = &parse(&v6).unwrap_or_else(|e| panic!("{e}")).config.instances[0].virtual_ipaddress[0];
    assert_eq!((vip.dev.as_deref(), vip.scope), (Some("eth1"), 200));
}

#[test]
fn same_vip_on_another_dev_is_still_the_same_address() {
    let text = format!(
        "{EXAMPLE}\n[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 52\n\
         virtual_ipaddress = [{{ address = \"192.0.2.100/24\", dev = \"eth1\" }}]\n"
    );
    assert!(single_problem(&text).message.contains("192.0.2.100 is already a VIP of vrrp_instance[0]"));
}

#[test]
fn track_script_naming_no_script() {
    let text = example_with("track_script = [{ name = \"chk_extra\" }]", "track_script = [{ name = \"chk_missing\" }]");
    let p = single_problem(&text);
    assert_eq!((p.line, p.key.as_str()), (line_of(&text, "chk_missing"), "vrrp_instance[0].track_script[0].name"));
    assert!(p.message.contains("names no vrrp_script \"chk_missing\""), "{p}");
}

#[test]
fn track_proxy_naming_no_proxy() {
    let text =
        example_with("track_proxy = [{ name = \"amqp\", weight = 0 }]", "track_proxy = [{ name = \"amqps\", weight = 0 }]");
    let p = single_problem(&text);
    assert_eq!(p.line, line_of(&text, "amqps"));
    assert!(p.message.contains("names no proxy \"amqps\""), "{p}");
}

#[test]
fn server_address_that_does_not_parse() {
    for bad in ["rabbit1:5672", "192.0.2.21", "192.0.2.21:99999", "192.0.2.21:0"] {
        let text = example_with("address = \"192.0.2.21:5672\"", &format!("address = {bad:?}"));
        let p = single_problem(&text);
        assert_eq!((p.line, p.key.as_str()), (line_of(&text, bad), "proxy[0].server[0].address"), "{p}");
    }
}

/// The example as a VRRPv3 instance (no authentication), with `advert_int` as given.
fn v3_example(advert_int: &str) -> String {
    example_with("advert_int = 1 ", &format!("version = 3\nadvert_int = {advert_int} "))
        .replace("authentication = { auth_type = \"PASS\", auth_pass = \"s3cret\" }\n", "")
}

#[test]
fn version_3_takes_centisecond_intervals_in_every_spelling() {
    for (written, ms) in
        [("\"100ms\"", 100), ("\"0.5s\"", 500), ("\"1s\"", 1000), ("0.1", 100), ("2", 2000), ("\"10ms\"", 10), ("40.95", 40950)]
    {
        let config = parse(&v3_example(written)).unwrap_or_else(|e| panic!("{written}: {e}")).config;
        let vi = &config.instances[0];
        assert_eq!((vi.version, vi.advert_int), (VrrpVersion::V3, Duration::from_millis(ms)), "{written}");
    }
    for (written, says) in [
        ("\"105ms\"", "not whole centiseconds"),
        ("\"5ms\"", "outside 10ms..=40.95s"),
        ("41", "outside 10ms..=40.95s"),
        ("\"soon\"", "is not an interval"),
        ("-1", "is not an interval"),
    ] {
        let text = v3_example(written);
        let p = single_problem(&text);
        assert_eq!((p.line, p.key.as_str()), (line_of(&text, &format!("advert_int = {written}")), "vrrp_instance[0].advert_int"));
        assert!(p.message.contains(says), "{written}: {p}");
    }
}

#[test]
fn the_global_vrrp_version_is_the_default_of_every_instance() {
    let text = v3_example("\"100ms\"")
        .replace("version = 3\n", "")
        .replace("router_id = \"proxy-a\"", "router_id = \"proxy-a\"\nvrrp_version = 3");
    assert_eq!(parse(&text).unwrap().config.instances[0].version, VrrpVersion::V3);
    let v2 = text.replace("advert_int = \"100ms\"", "version = 2\nadvert_int = \"100ms\"");
    assert!(single_problem(&v2).message.contains("sub-second adverts need version = 3"));
    assert_eq!(parse(EXAMPLE).unwrap().config.instances[0].version, VrrpVersion::V2, "keepalived's default");
    let p = single_problem(&example_with("router_id = \"proxy-a\"", "router_id = \"proxy-a\"\nvrrp_version = 4"));
    assert_eq!(p.key, "global.vrrp_version");
}

#[test]
fn version_3_refuses_authentication_and_accept_mode_false() {
    let p = single_problem(&example_with("advert_int = 1 ", "version = 3\nadvert_int = 1 "));
    assert_eq!(p.key, "vrrp_instance[0].authentication");
    assert!(p.message.contains("VRRPv3 has no authentication"), "{p}");
    let p = single_problem(&v3_example("1").replace("preempt = true", "preempt = true\naccept_mode = false"));
    assert_eq!(p.key, "vrrp_instance[0].accept_mode");
    assert!(parse(&v3_example("1").replace("preempt = true", "preempt = true\naccept_mode = true")).is_ok());
}

#[test]
fn advert_int_must_be_whole_seconds() {
    let p = single_problem(&example_with("advert_int = 1 ", "advert_int = 0.5 "));
    assert!(p.message.contains("whole seconds"), "{p}");
    assert!(single_problem(&example_with("advert_int = 1 ", "advert_int = 0 ")).message.contains("outside 1..=255"));
}

#[test]
fn wrong_types_and_bad_durations_are_located() {
    let text = example_with("interval = \"2s\"\ntimeout = \"1s\"", "interval = \"soon\"\ntimeout = \"1s\"");
    let p = single_problem(&text);
    assert_eq!(p.line, line_of(&text, "\"soon\""));
    assert!(p.message.contains("\"soon\" is not a duration"), "{p}");
    let p = single_problem(&example_with("virtual_router_id = 51", "virtual_router_id = \"51\""));
    assert!(p.message.contains("expected i64"), "{p}");
}

#[test]
fn missing_required_key() {
    let text = example_with("interface = \"eth0\"\n", "");
    let p = single_problem(&text);
    assert!(p.message.contains("missing field `interface`"), "{p}");
}

#[test]
fn syntax_error_is_located() {
    let p = single_problem("[global\nrouter_id = 1\n");
    assert_eq!(p.line, 1);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = example_with("virtual_router_id = 51", "virtual_router_id = 300").replace("priority = 101", "priority = 0");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.problems().len(), 2, "{err}");
}

#[test]
fn unsupported_auth_type() {
    let p = single_problem(&example_with("auth_type = \"PASS\"", "auth_type = \"AH\""));
    assert!(p.message.contains("AH is not supported"), "{p}");
}

#[test]
fn idle_timeout_below_the_amqp_heartbeat_is_a_warning() {
    let loaded = parse(&example_with("timeout_idle = \"3h\"", "timeout_idle = \"5s\"")).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].message.contains("below the AMQP heartbeat"), "{}", loaded.warnings[0]);
}

#[test]
fn names_that_could_inject_into_an_output_format_are_refused_where_written() {
    // A comma breaks the CSV, a quote or newline the metrics labels and systemd's STATUS.
    for (from, to, key) in [
        ("name = \"VI_1\"", "name = \"VI_1,evil\"", "vrrp_instance[0].name"),
        ("name = \"amqp\"\nbind", "name = \"amqp\\\"} 1\\nfake_metric{a=\\\"\"\nbind", "proxy[0].name"),
        ("name = \"rabbit1\"", "name = \"rabbit 1\"", "proxy[0].server[0].name"),
        ("router_id = \"proxy-a\"", "router_id = \"proxy-a\\nSTATUS=pwned\"", "global.router_id"),
        ("interface = \"eth0\"", "interface = \"eth0,x\"", "vrrp_instance[0].interface"),
    ] {
        let text = example_with(from, to);
        let error = parse(&text).expect_err(to);
        let p = error.problems().iter().find(|p| p.key == key).unwrap_or_else(|| panic!("{key}: {error}"));
        assert_eq!(p.line, line_of(&text, to), "{p}");
    }
    assert!(parse(&example_with("name = \"VI_1\"", "name = \"VI-1.a:b_c\"")).is_ok());
}

/// The one problem of `text`: `key`, on the line of `value`, said to be longer than `bound`.
fn too_long(text: &str, key: &str, value: &str, bound: &str) {
    let p = single_problem(text);
    assert_eq!((p.key.as_str(), p.line), (key, line_of(text, value)), "{p}");
    assert!(p.message.contains(&format!("is longer than {bound}")), "{p}");
}

#[test]
fn proxy_timeouts_have_an_upper_bound() {
    // The value from the report: it passed, and every session then panicked on `Instant + Duration`.
    let text = example_with("timeout_idle = \"3h\"", "timeout_idle = \"500000000000y\"");
    too_long(&text, "proxy[0].timeout_idle", "500000000000y", "30 days");
    let text = example_with("timeout_idle = \"3h\"", "timeout_idle = \"31days\"");
    too_long(&text, "proxy[0].timeout_idle", "31days", "30 days");
    let text = example_with("timeout_connect = \"2s\"", "timeout_connect = \"25h\"");
    too_long(&text, "proxy[0].timeout_connect", "25h", "24h");
    let text = example_with("timeout_connect = \"2s\"", "timeout_connect = \"2s\"\ntimeout_queue = \"400days\"");
    too_long(&text, "proxy[0].timeout_queue", "400days", "24h");
}

#[test]
fn health_check_durations_have_an_upper_bound() {
    let line = "check = { kind = \"amqp\", interval = \"2s\", rise = 2, fall = 3, timeout = \"1s\" }";
    for (from, to, field) in [
        ("interval = \"2s\"", "interval = \"25h\"", "interval"),
        ("timeout = \"1s\"", "timeout = \"25h\"", "timeout"),
        ("rise = 2", "rise = 2, fastinter = \"25h\"", "fastinter"),
        ("rise = 2", "rise = 2, downinter = \"25h\"", "downinter"),
    ] {
        let text = example_with(line, &line.replace(from, to));
        too_long(&text, &format!("proxy[0].check.{field}"), "\"25h\"", "24h");
    }
}

#[test]
fn hard_stop_after_has_an_upper_bound() {
    let text = example_with("router_id = \"proxy-a\"", "router_id = \"proxy-a\"\nhard_stop_after = \"2days\"");
    too_long(&text, "global.hard_stop_after", "2days", "24h");
}

#[test]
fn vrrp_instance_delays_have_an_upper_bound() {
    for (key, value, bound) in
        [("garp_master_delay", "25h", "24h"), ("garp_master_refresh", "25h", "24h"), ("preempt_delay", "1001s", "1000s")]
    {
        let text = example_with("preempt = true", &format!("preempt = true\n{key} = \"{value}\""));
        too_long(&text, &format!("vrrp_instance[0].{key}"), value, bound);
    }
}

#[test]
fn vrrp_script_durations_have_an_upper_bound() {
    let written = "interval = \"2s\"\ntimeout = \"1s\"";
    let text = example_with(written, "interval = \"25h\"\ntimeout = \"1s\"");
    too_long(&text, "vrrp_script[0].interval", "25h", "24h");
    let text = example_with(written, "interval = \"2s\"\ntimeout = \"25h\"");
    too_long(&text, "vrrp_script[0].timeout", "25h", "24h");
}

#[test]
fn stats_refresh_has_an_upper_bound() {
    let text = example_with("listen = \"0.0.0.0:8100\"", "listen = \"0.0.0.0:8100\"\nrefresh = \"2days\"");
    too_long(&text, "stats.refresh", "2days", "24h");
}

#[test]
fn durations_at_their_bound_are_accepted_and_zero_where_it_means_off() {
    let text = example_with("timeout_idle = \"3h\"", "timeout_idle = \"30days\"\ntimeout_queue = \"24h\"")
        .replace("timeout_connect = \"2s\"", "timeout_connect = \"24h\"")
        .replace("interval = \"2s\", rise = 2", "interval = \"24h\", fastinter = \"24h\", downinter = \"24h\", rise = 2")
        .replace("fall = 3, timeout = \"1s\"", "fall = 3, timeout = \"24h\"")
        .replace("interval = \"2s\"\ntimeout = \"1s\"", "interval = \"24h\"\ntimeout = \"24h\"")
        .replace("router_id = \"proxy-a\"", "router_id = \"proxy-a\"\nhard_stop_after = \"0s\"")
        .replace(
            "preempt = true",
            "preempt = true\npreempt_delay = \"1000s\"\ngarp_master_delay = \"24h\"\ngarp_master_refresh = \"0s\"",
        )
        .replace("listen = \"0.0.0.0:8100\"", "listen = \"0.0.0.0:8100\"\nrefresh = \"24h\"");
    let config = parse(&text).unwrap().config;
    let day = Duration::from_secs(24 * 3600);
    let proxy = &config.proxies[0];
    assert_eq!(proxy.timeout_idle, 30 * day);
    assert_eq!((proxy.timeout_connect, proxy.timeout_queue), (day, day));
    assert_eq!([proxy.check.interval, proxy.check.fastinter, proxy.check.downinter, proxy.check.timeout], [day; 4]);
    assert_eq!((config.scripts[0].interval, config.scripts[0].timeout), (day, day));
    assert_eq!(config.global.hard_stop_after, Duration::ZERO);
    let garp = config.instances[0].garp;
    assert_eq!((garp.master_delay, garp.master_refresh), (day, Duration::ZERO));
    assert_eq!(config.instances[0].preempt_delay, Duration::from_secs(1000));
    assert_eq!(config.stats.unwrap().refresh, day);
}

const API: &str = r#"rabbitmq_api = { urls = ["http://192.0.2.21:15672", "https://[2001:db8::22]:15671/mgmt/"], user = "fence", password = "hunter2", fence_addresses = { "192.0.2.12" = ["198.51.100.12"] } }"#;

#[test]
fn a_proxy_may_name_its_clusters_management_api() {
    let text = example_with("redispatch = true", &format!("redispatch = true\n{API}"));
    let Loaded { config, warnings } = parse(&text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let api = config.proxies[0].rabbitmq_api.as_ref().unwrap();
    assert_eq!(api.urls, ["http://192.0.2.21:15672", "https://[2001:db8::22]:15671/mgmt"]);
    assert_eq!((api.user.as_str(), api.password.expose()), ("fence", "hunter2"));
    let peer: std::net::IpAddr = "192.0.2.12".parse().unwrap();
    assert_eq!(api.fence_addresses[&peer], ["198.51.100.12".parse::<std::net::IpAddr>().unwrap()]);
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "the password is hidden from Debug: {debug}");
    assert!(config.proxies.iter().all(|p| p.rabbitmq_api.is_some()));
}

#[test]
fn bad_api_settings_are_located() {
    for (url, says) in [
        ("ftp://192.0.2.21", "is not an http:// or https:// URL"),
        ("http://guest:guest@192.0.2.21:15672", "credentials go in user and password"),
        ("http://:15672", "has no host"),
        ("http://192.0.2.21:99999", "is not a port"),
        ("http://192.0.2.21:15672/?x=1", "nothing else"),
    ] {
        let text =
            example_with("redispatch = true", &format!("redispatch = true\n{}", API.replace("http://192.0.2.21:15672", url)));
        let problem = single_problem(&text);
        assert_eq!(problem.key, "proxy[0].rabbitmq_api.urls[0]", "{url}");
        assert!(problem.message.contains(says), "{url}: {problem}");
        assert_eq!(problem.line, line_of(&text, "rabbitmq_api"));
        assert!(!problem.to_string().contains("guest:guest") || problem.message.contains("credentials"), "{problem}");
    }
    let empty = API.replace(r#"urls = ["http://192.0.2.21:15672", "https://[2001:db8::22]:15671/mgmt/"]"#, "urls = []");
    let problem = single_problem(&example_with("redispatch = true", &format!("redispatch = true\n{empty}")));
    assert_eq!(problem.key, "proxy[0].rabbitmq_api.urls");
    let bad_peer = API.replace(r#""192.0.2.12" = ["198.51.100.12"]"#, r#""b-host" = ["0.0.0.0"]"#);
    let problem = single_problem(&example_with("redispatch = true", &format!("redispatch = true\n{bad_peer}")));
    assert!(problem.message.contains("not a peer's IP address"), "{problem}");
}

#[test]
fn https_with_an_unreadable_ca_file_is_refused() {
    let api = API.replace("password = \"hunter2\"", "password = \"hunter2\", ca_file = \"/nonexistent/ca.pem\"");
    let text = example_with("redispatch = true", &format!("redispatch = true\n{api}"));
    let problem = single_problem(&text);
    assert_eq!(problem.key, "proxy[0].rabbitmq_api.ca_file");
    assert!(problem.message.contains("cannot read /nonexistent/ca.pem"), "{problem}");
    // Without an https URL the file is not used: a warning, not an error.
    let plain = api.replace(r#", "https://[2001:db8::22]:15671/mgmt/""#, "");
    let Loaded { warnings, .. } = parse(&example_with("redispatch = true", &format!("redispatch = true\n{plain}"))).unwrap();
    assert!(warnings.iter().any(|w| w.message.contains("https only")), "{warnings:?}");
}

#[test]
fn fencing_with_a_proxy_protocol_header_is_refused() {
    let text = example_with("redispatch = true", &format!("redispatch = true\nsend_proxy = \"v2\"\n{API}"));
    let problem = single_problem(&text);
    assert_eq!(problem.key, "proxy[0].rabbitmq_api");
    assert!(problem.message.contains("cannot fence with send_proxy"), "{problem}");
    assert_eq!(problem.line, line_of(&text, "rabbitmq_api"));
}

const BROKER_HEALTH: &str = r#"
[[proxy]]
name = "amqp"
bind = "0.0.0.0:5672"
check = { kind = "http", path = "/api/health/checks/alarms", port = 15672, expect_status = 200, user = "monitor", password = "pa55-w0rd" }

[[proxy.server]]
name = "rabbit1"
address = "192.0.2.21:5672"
check = { interval = "5s", rise = 1, fall = 4, port = 15673, addr = "192.0.2.31" }

[[proxy.server]]
name = "rabbit2"
address = "192.0.2.22:5672"

[[proxy.server]]
name = "rabbit3"
address = "192.0.2.23:5672"
check = false
"#;

#[test]
fn an_http_check_on_the_management_port_with_per_server_settings() {
    let config = parse(BROKER_HEALTH).unwrap().config;
    let p = &config.proxies[0];
    assert_eq!(p.check.kind, CheckKind::Http);
    assert_eq!(p.check.port, Some(15672));
    let http = p.check.http.as_ref().unwrap();
    assert_eq!((http.path.as_str(), http.expect_status), ("/api/health/checks/alarms", Some(200)));
    assert_eq!((http.user.as_deref(), http.password.as_ref().map(Secret::expose)), (Some("monitor"), Some("pa55-w0rd")));
    assert!(!format!("{config:?}").contains("pa55-w0rd"), "Debug hides the password");

    let r1 = p.check.for_server(&p.servers[0]);
    assert_eq!(
        (r1.interval, r1.fastinter, r1.downinter),
        (Duration::from_secs(5), Duration::from_secs(5), Duration::from_secs(5))
    );
    assert_eq!((r1.rise, r1.fall), (1, 4));
    assert_eq!(r1.target(p.servers[0].address), "192.0.2.31:15673".parse().unwrap());
    assert!(p.servers[0].check);
    let r2 = p.check.for_server(&p.servers[1]);
    assert_eq!(r2, p.check, "no settings of its own: the proxy's");
    assert_eq!(r2.target(p.servers[1].address), "192.0.2.22:15672".parse().unwrap(), "the check's port, the server's address");
    assert!(!p.servers[2].check);
}

#[test]
fn a_proxy_fastinter_of_its_own_is_kept_when_a_server_sets_its_interval() {
    let text = BROKER_HEALTH.replace("check = { kind = \"http\",", "check = { kind = \"http\", fastinter = \"500ms\",");
    let p = &parse(&text).unwrap().config.proxies[0];
    let r1 = p.check.for_server(&p.servers[0]);
    assert_eq!(
        (r1.interval, r1.fastinter, r1.downinter),
        (Duration::from_secs(5), Duration::from_millis(500), Duration::from_secs(5))
    );
}

#[test]
fn an_amqps_check_with_its_ca_file_and_name() {
    let text = BROKER_HEALTH.replace(
        r#"{ kind = "http", path = "/api/health/checks/alarms", port = 15672, expect_status = 200, user = "monitor", password = "pa55-w0rd" }"#,
        r#"{ kind = "amqps", ca_file = "/etc/vrrpd/ca.pem", sni = "rabbit.example" }"#,
    );
    let p = &parse(&text).unwrap().config.proxies[0];
    assert_eq!(p.check.kind, CheckKind::Amqps);
    assert_eq!(p.check.tls, CheckTls { ca_file: Some("/etc/vrrpd/ca.pem".into()), sni: Some("rabbit.example".into()) });
    assert_eq!(p.check.http, None);
}

#[test]
fn check_settings_that_the_kind_does_not_read_are_refused_where_written() {
    let cases = [
        (r#"kind = "amqp", path = "/x""#, "path", "only a check of kind http or https"),
        (r#"kind = "tcp", user = "u""#, "user", "only a check of kind http or https"),
        (r#"kind = "http", ca_file = "/ca.pem""#, "ca_file", "only a check of kind amqps or https"),
        (r#"kind = "amqp", sni = "x""#, "sni", "only a check of kind amqps or https"),
        (r#"kind = "https", ca_file = "ca.pem""#, "ca_file", "absolute path"),
        (r#"kind = "http", path = "no-slash""#, "path", "starting with /"),
        (r#"kind = "http", path = "/a b""#, "path", "without spaces"),
        (r#"kind = "http", expect_status = 700"#, "expect_status", "outside 100..=599"),
        (r#"kind = "http", user = "monitor""#, "user", "needs a password"),
        (r#"kind = "http", password = "hunter2""#, "password", "needs a user"),
        (r#"kind = "http", port = 0"#, "port", "outside 1..=65535"),
        (r#"kind = "smtp""#, "kind", "tcp, amqp, amqps, http or https"),
    ];
    for (fields, key, message) in cases {
        let text = example_with(
            r#"check = { kind = "amqp", interval = "2s", rise = 2, fall = 3, timeout = "1s" }"#,
            &format!("check = {{ {fields} }}"),
        );
        let p = single_problem(&text);
        assert_eq!((p.line, p.key.as_str()), (line_of(&text, "check = {"), format!("proxy[0].check.{key}").as_str()), "{p}");
        assert!(p.message.contains(message), "{fields}: {p}");
    }
}

#[test]
fn a_server_check_table_is_validated_where_written() {
    let cases = [
        (r#"check = { port = 70000 }"#, "check.port", "outside 1..=65535"),
        (r#"check = { addr = "rabbit1" }"#, "check.addr", "not a unicast IP address"),
        (r#"check = { addr = "0.0.0.0" }"#, "check.addr", "not a unicast IP address"),
        (r#"check = { fall = 0 }"#, "check.fall", "outside 1..=1000"),
        (r#"check = { interval = "25h" }"#, "check.interval", "longer than 24h"),
        (r#"check = { inter = "5s" }"#, "check", "unknown field `inter`"),
        (r#"check = "yes""#, "check", "true, false or a table"),
    ];
    for (written, key, message) in cases {
        let text = example_with("address = \"192.0.2.21:5672\"", &format!("address = \"192.0.2.21:5672\"\n{written}"));
        let p = single_problem(&text);
        assert_eq!(p.line, line_of(&text, written), "{p}");
        assert!(p.key.starts_with(&format!("proxy[0].server[0].{key}")), "{key}: {p}");
        assert!(p.message.contains(message), "{written}: {p}");
    }
}

#[test]
fn a_problem_on_a_line_with_a_password_does_not_show_the_password() {
    let text = BROKER_HEALTH.replace("path = \"/api/health/checks/alarms\"", "path = \"api\"");
    let p = single_problem(&text);
    let shown = p.to_string();
    assert!(shown.contains("proxy[0].check.path"), "{shown}");
    assert!(!shown.contains("pa55-w0rd"), "{shown}");
    assert!(shown.contains("password = \"*********\""), "{shown}");
    // The caret still points at the value at fault.
    let lines: Vec<&str> = shown.lines().collect();
    let caret = lines[2].find('^').unwrap();
    assert_eq!(&lines[1][caret..caret + 5], "\"api\"", "{shown}");
    let password = single_problem(&EXAMPLE.replace("auth_pass = \"s3cret\"", "auth_pass = \"s3cret-but-too-long\""));
    assert!(!password.to_string().contains("s3cret"), "{password}");
}

/// BROKER_HEALTH with its inline password replaced by `password_file = PATH`.
fn with_password_file(path: &Path) -> String {
    BROKER_HEALTH.replace("password = \"pa55-w0rd\"", &format!("password_file = {:?}", path.display().to_string()))
}

#[test]
fn a_password_file_is_read_when_only_root_can_change_it_and_others_cannot_read_it() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // A directory only root can change, wherever the tests run as root (as the suite does).
    let dir = std::env::temp_dir().join(format!("vrrpd-password-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = dir.join("monitor.pw");
    std::fs::write(&file, "fr0m-a-f1le\n").unwrap();
    let as_root = std::fs::metadata(&dir).unwrap().uid() == 0 && std::fs::metadata("/").unwrap().uid() == 0;

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let text = with_password_file(&file);
    let result = parse(&text);
    if as_root {
        let config = result.unwrap().config;
        let http = config.proxies[0].check.http.clone().unwrap();
        assert_eq!(http.password.as_ref().map(Secret::expose), Some("fr0m-a-f1le"), "the first line, without its newline");
    } else {
        assert!(result.is_err(), "not root's: refused");
    }

    // Readable by every user: refused, the password never in the message.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = single_problem(&text);
    assert_eq!(p.key, "proxy[0].check.password_file");
    if as_root {
        assert!(p.message.contains("every user can read it"), "{p}");
    }
    assert!(!p.to_string().contains("fr0m-a-f1le"), "{p}");

    // Writable by others: refused, naming the path.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o622)).unwrap();
    let p = single_problem(&text);
    assert!(p.message.contains("can be changed by a user other than root"), "{p}");

    // Both, a relative path, a missing file: each a located problem.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let both = text.replace("password_file =", "password = \"x\", password_file =");
    assert!(single_problem(&both).message.contains("not both"));
    assert!(single_problem(&with_password_file(Path::new("monitor.pw"))).message.contains("absolute path"));
    let missing = single_problem(&with_password_file(&dir.join("missing")));
    assert_eq!(missing.line, line_of(&text, "password_file"), "{missing}");
    std::fs::write(&file, "\n").unwrap();
    assert!(single_problem(&text).message.contains("first line must be the password"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_proxy_listens_on_one_address_or_a_list_each_located() {
    let text = example_with("bind = \"0.0.0.0:5670\"", "bind = [\"0.0.0.0:5670\", \"[::]:5670\"]");
    let amqp = parse(&text).unwrap().config.proxies.remove(0);
    assert_eq!(amqp.binds, vec!["0.0.0.0:5670".parse().unwrap(), "[::]:5670".parse().unwrap()]);
    let text = example_with("bind = \"0.0.0.0:5670\"", "bind = [\"0.0.0.0:5670\",\n  \"0.0.0.0:0\"]");
    let p = single_problem(&text);
    assert_eq!((p.line, p.key.as_str()), (line_of(&text, "\"0.0.0.0:0\""), "proxy[0].bind[1]"), "{p}");
    let text = example_with("bind = \"0.0.0.0:5670\"", "bind = [\"0.0.0.0:5670\", \"0.0.0.0:5670\"]");
    assert!(single_problem(&text).message.contains("listed twice"));
    let p = single_problem(&example_with("bind = \"0.0.0.0:5670\"", "bind = []"));
    assert!(p.message.contains("at least one address"), "{p}");
}

#[test]
fn accept_proxy_is_set_per_bind_as_haproxy_does() {
    // HAProxy: `bind :5670` for the clients, `bind :5671 accept-proxy` behind another balancer.
    let text =
        example_with("bind = \"0.0.0.0:5670\"", "bind = [\"0.0.0.0:5670\", { address = \"0.0.0.0:5671\", accept_proxy = true }]");
    let amqp = parse(&text).unwrap().config.proxies.remove(0);
    assert_eq!(amqp.binds, vec!["0.0.0.0:5670".parse().unwrap(), "0.0.0.0:5671".parse().unwrap()]);
    assert_eq!(amqp.accept_proxy, vec!["0.0.0.0:5671".parse().unwrap()]);
    // The proxy-wide setting is every bind's default; a bind's own wins.
    let text = example_with(
        "bind = \"0.0.0.0:5670\"",
        "accept_proxy = true\nbind = [\"0.0.0.0:5670\", { address = \"0.0.0.0:5671\", accept_proxy = false }]",
    );
    assert_eq!(parse(&text).unwrap().config.proxies[0].accept_proxy, vec!["0.0.0.0:5670".parse().unwrap()]);
    // A bad address in a table is located on its line; an unknown option is refused.
    let text = example_with("bind = \"0.0.0.0:5670\"", "bind = [\"0.0.0.0:5670\",\n  { address = \"0.0.0.0:0\" }]");
    let p = single_problem(&text);
    assert_eq!((p.line, p.key.as_str()), (line_of(&text, "\"0.0.0.0:0\""), "proxy[0].bind[1].address"), "{p}");
    let text = example_with("bind = \"0.0.0.0:5670\"", "bind = { address = \"0.0.0.0:5671\", accept_proxy = true }");
    assert_eq!(parse(&text).unwrap().config.proxies[0].accept_proxy, vec!["0.0.0.0:5671".parse().unwrap()], "a table alone");
    let text = example_with("bind = \"0.0.0.0:5670\"", "bind = [{ address = \"0.0.0.0:5670\", ssl = true }]");
    let error = parse(&text).unwrap_err().to_string();
    assert!(error.contains("ssl") && error.contains(&format!(":{}", line_of(&text, "ssl = true"))), "{error}");
}

#[test]
fn slowstart_is_set_per_proxy_and_per_server_and_allbackups_is_off_by_default() {
    let amqp = parse(EXAMPLE).unwrap().config.proxies.remove(0);
    assert!(!amqp.allbackups && amqp.accept_proxy.is_empty());
    assert!(amqp.servers.iter().all(|s| s.slowstart.is_zero()), "no slowstart unless asked");
    let text =
        example_with("redispatch = true", "redispatch = true\nslowstart = \"60s\"\nallbackups = true\naccept_proxy = true")
            .replace("backup = true", "backup = true\nslowstart = \"5s\"");
    let amqp = parse(&text).unwrap().config.proxies.remove(0);
    assert!(amqp.allbackups && amqp.accept_proxy == amqp.binds, "accept_proxy on the proxy: every bind");
    assert_eq!(amqp.servers[0].slowstart, Duration::from_secs(60), "the proxy's value is the servers' default");
    assert_eq!(amqp.servers[1].slowstart, Duration::from_secs(5), "a server's own value wins");
    let text = example_with("redispatch = true", "redispatch = true\nslowstart = \"2d\"");
    assert_eq!(single_problem(&text).key, "proxy[0].slowstart");
}

#[test]
fn automatic_rebalancing_is_off_unless_configured_and_bounded() {
    assert_eq!(parse(EXAMPLE).unwrap().config.proxies[0].rebalance, None);
    let text = example_with("redispatch = true", "redispatch = true\nrebalance = {}");
    assert_eq!(parse(&text).unwrap().config.proxies[0].rebalance, Some(AutoRebalance { threshold: 1.5, rate: 5 }));
    let text = example_with("redispatch = true", "redispatch = true\nrebalance = { threshold = 2.0, rate = 20 }");
    assert_eq!(parse(&text).unwrap().config.proxies[0].rebalance, Some(AutoRebalance { threshold: 2.0, rate: 20 }));
    let text = example_with("redispatch = true", "redispatch = true\nrebalance = { threshold = 1.0 }");
    let p = single_problem(&text);
    assert_eq!((p.key.as_str(), p.line), ("proxy[0].rebalance.threshold", line_of(&text, "rebalance")), "{p}");
    let text = example_with("redispatch = true", "redispatch = true\nrebalance = { rate = 0 }");
    assert_eq!(single_problem(&text).key, "proxy[0].rebalance.rate");
}

const TRACKERS: &str = r#"
[[vrrp_track_process]]
name = "haproxy"
process = "/usr/sbin/haproxy"
params = ["-f", "/etc/haproxy"]
param_match = "initial"
weight = -30
quorum = 1
quorum_max = 4
delay = "1.5s"
terminate_delay = "3s"

[[vrrp_track_process]]
name = "sshd"
process = "sshd"

[[vrrp_track_file]]
name = "prio"
file = "/var/lib/vrrpd/prio"
weight = 0
reverse = true
init_file = 0

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.0.2.100/24"]
track_process = [{ name = "haproxy" }, { name = "sshd", weight = 0, reverse = true }]
track_file = [{ name = "prio" }]
"#;

#[test]
fn process_and_file_trackers_follow_keepalived() {
    let config = parse(TRACKERS).unwrap().config;
    let haproxy = &config.track_processes[0];
    assert_eq!(haproxy.param_match, Some(ParamMatch::Initial));
    assert_eq!((haproxy.quorum, haproxy.quorum_max), (1, Some(4)));
    assert_eq!((haproxy.fork_delay, haproxy.terminate_delay), (Duration::from_millis(1500), Duration::from_secs(3)));
    let sshd = &config.track_processes[1];
    assert_eq!((sshd.weight, sshd.param_match, sshd.quorum, sshd.quorum_max), (1, None, 1, None), "keepalived's defaults");
    assert_eq!(config.track_files[0].init, Some((0, false)));
    let vi = &config.instances[0];
    assert_eq!(
        vi.track_process,
        vec![
            Track { name: "haproxy".into(), weight: -30, reverse: false },
            Track { name: "sshd".into(), weight: 0, reverse: true }
        ]
    );
    assert_eq!(vi.track_file, vec![Track { name: "prio".into(), weight: 0, reverse: true }], "weight and reverse from the file");
}

#[test]
fn tracker_mistakes_are_located() {
    let text = TRACKERS.replace("quorum_max = 4", "quorum_max = 0");
    let p = single_problem(&text);
    assert_eq!((p.line, p.key.as_str()), (line_of(&text, "quorum_max = 0"), "vrrp_track_process[0].quorum_max"));
    let text = TRACKERS.replace("param_match = \"initial\"", "param_match = \"regex\"");
    assert_eq!(single_problem(&text).key, "vrrp_track_process[0].param_match");
    let text = TRACKERS.replace("track_file = [{ name = \"prio\" }]", "track_file = [{ name = \"nope\" }]");
    let p = single_problem(&text);
    assert!(p.message.contains("names no vrrp_track_file \"nope\""), "{p}");
    let text = TRACKERS.replace("/var/lib/vrrpd/prio", "prio");
    assert!(single_problem(&text).message.contains("not an absolute path"));
}

#[test]
fn a_sync_group_links_its_members_and_zeroes_their_weights_as_keepalived() {
    let text = format!(
        "{EXAMPLE}\n[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 52\n\
         virtual_ipaddress = [\"192.0.2.101/24\"]\n\n[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\", \"VI_2\"]\n\
         track_interface = [{{ name = \"eth1\" }}]\n"
    );
    let Loaded { config, warnings } = parse(&text).unwrap();
    assert_eq!(
        config.sync_groups,
        vec![SyncGroup { name: "G1".into(), members: vec!["VI_1".into(), "VI_2".into()], notify: Notify::default() }]
    );
    let (vi1, vi2) = (&config.instances[0], &config.instances[1]);
    assert_eq!((vi1.sync_peers.as_slice(), vi2.sync_peers.as_slice()), (&["VI_2".to_owned()][..], &["VI_1".to_owned()][..]));
    assert_eq!(vi1.track_script[0].weight, 0, "the script's -20 becomes 0 in a group");
    assert_eq!(vi2.track_interface, vec![Track { name: "eth1".into(), weight: 0, reverse: false }], "the group's tracker");
    assert!(warnings.iter().any(|w| w.message.contains("sync_group_tracking_weight")), "{warnings:?}");
    let kept = text.replace("name = \"G1\"\n", "name = \"G1\"\nsync_group_tracking_weight = true\n");
    assert_eq!(parse(&kept).unwrap().config.instances[0].track_script[0].weight, -20);
}

#[test]
fn a_sync_group_has_its_own_notify_scripts() {
    let base = format!(
        "{EXAMPLE}\n[[vrrp_instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvirtual_router_id = 52\n\
         virtual_ipaddress = [\"192.0.2.101/24\"]\n\n[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\", \"VI_2\"]\n"
    );
    let text = format!("{base}notify = \"/usr/local/bin/group.sh\"\nnotify_master = \"/usr/local/bin/up.sh arg\"\n");
    let notify = &parse(&text).unwrap().config.sync_groups[0].notify;
    assert_eq!(
        (notify.any.as_deref(), notify.master.as_deref()),
        (Some("/usr/local/bin/group.sh"), Some("/usr/local/bin/up.sh arg"))
    );
    let text = format!("{base}notify_fault = \" \"\n");
    let p = single_problem(&text);
    assert_eq!((p.line, p.key.as_str()), (line_of(&text, "notify_fault"), "vrrp_sync_group[0].notify_fault"));
}

#[test]
fn sync_group_members_must_exist_and_belong_to_one_group() {
    let text = format!("{EXAMPLE}\n[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\", \"VI_9\"]\n");
    let p = single_problem(&text);
    assert_eq!((p.key.as_str(), p.line), ("vrrp_sync_group[0].group[1]", line_of(&text, "\"VI_9\"")));
    assert!(p.message.contains("names no vrrp_instance \"VI_9\""), "{p}");
    let text = format!(
        "{EXAMPLE}\n[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\"]\n[[vrrp_sync_group]]\nname = \"G2\"\ngroup = [\"VI_1\"]\n"
    );
    assert!(single_problem(&text).message.contains("already a member of vrrp_sync_group[0]"));
}

#[test]
fn garp_interval_is_global_unless_an_instance_sets_its_own() {
    let text = example_with("[global]\n", "[global]\ngarp_interval = \"20ms\"\n");
    assert_eq!(parse(&text).unwrap().config.instances[0].garp.interval, Duration::from_millis(20));
    let own = text.replace("notify = ", "garp_interval = \"5ms\"\nnotify = ");
    assert_eq!(parse(&own).unwrap().config.instances[0].garp.interval, Duration::from_millis(5));
    assert_eq!(parse(EXAMPLE).unwrap().config.instances[0].garp.interval, Duration::ZERO, "keepalived's default: none");
    let long = example_with("[global]\n", "[global]\ngarp_interval = \"2s\"\n");
    assert_eq!(single_problem(&long).key, "global.garp_interval");
}
