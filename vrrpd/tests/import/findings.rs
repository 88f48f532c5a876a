//! One test per way the import used to change meaning without saying so: each asserts the
//! TOML written and the note, with its line.

use super::*;

/// Every HAProxy example below starts with these five lines.
const DEFAULTS: &str = "defaults\n    mode tcp\n    timeout client 3h\n    timeout server 3h\n    option redispatch\n";

fn haproxy(sections: &str) -> String {
    format!("{DEFAULTS}{sections}")
}

#[test]
fn balance_algorithms_vrrpd_lacks_become_leastconn_with_a_note_saying_what_they_did() {
    let (toml, notes) = import_text(
        None,
        Some(&haproxy(
            "\
listen by-source
    bind 192.0.2.10:5672
    balance source
    server rabbit1 192.0.2.21:5672 check
listen by-url-param
    bind 192.0.2.10:5673
    balance url_param userid
    server rabbit1 192.0.2.21:5672 check
listen by-static-rr
    bind 192.0.2.10:5674
    balance static-rr
    server rabbit1 192.0.2.21:5672 check
listen by-first
    bind 192.0.2.10:5675
    balance first
    server rabbit1 192.0.2.21:5672 check
listen by-random
    bind 192.0.2.10:5676
    balance random(2)
    server rabbit1 192.0.2.21:5672 check
",
        )),
    );
    assert!(proxy_section(&toml, "by-source").contains("balance = \"leastconn\""), "{toml}");
    assert!(has_line(&notes, "haproxy.cfg", 8, "`balance source` (each client address stuck to one server)"), "{notes}");
    assert!(has_line(&notes, "haproxy.cfg", 8, "long-lived AMQP connections"), "{notes}");
    assert!(proxy_section(&toml, "by-url-param").contains("balance = \"leastconn\""), "{toml}");
    assert!(has_line(&notes, "haproxy.cfg", 12, "`balance url_param userid`"), "{notes}");
    assert!(proxy_section(&toml, "by-static-rr").contains("balance = \"roundrobin\""), "{toml}");
    assert!(!notes.contains("haproxy.cfg:16:"), "static-rr is roundrobin with fixed weights, as vrrpd's:\n{notes}");
    assert!(proxy_section(&toml, "by-first").contains("balance = \"first\""), "{toml}");
    assert!(proxy_section(&toml, "by-random").contains("balance = \"leastconn\""), "{toml}");
    assert!(has_line(&notes, "haproxy.cfg", 24, "`balance random(2)` (a random pick"), "{notes}");
}

#[test]
fn a_conditional_use_backend_is_noted_with_its_acl_and_never_becomes_the_backend() {
    let (toml, notes) = import_text(
        None,
        Some(&haproxy(
            "\
frontend amqp-in
    bind 192.0.2.100:5672
    acl is_tls req.ssl_ver gt 0
    default_backend rabbit
    use_backend rabbit-tls if is_tls
frontend routed-only
    bind 192.0.2.100:5680
    use_backend rabbit-tls if { src 192.0.2.0/25 }
backend rabbit
    server rabbit1 192.0.2.21:5672 check
backend rabbit-tls
    server rabbit9 192.0.2.29:5671 check
",
        )),
    );
    let amqp_in = proxy_section(&toml, "amqp-in");
    assert!(amqp_in.contains("name = \"rabbit1\"") && !amqp_in.contains("rabbit9"), "{toml}");
    assert!(!toml.contains("name = \"routed-only\""), "{toml}");
    assert!(has_line(&notes, "haproxy.cfg", 8, "acl is_tls"), "{notes}");
    assert!(has_line(&notes, "haproxy.cfg", 10, "routing on ACL is_tls cannot be carried over"), "{notes}");
    assert!(has_line(&notes, "haproxy.cfg", 10, "every connection goes to backend rabbit"), "{notes}");
    assert!(has_line(&notes, "haproxy.cfg", 13, "routing on ACL { src 192.0.2.0/25 }"), "{notes}");
    assert!(has_line(&notes, "haproxy.cfg", 13, "frontend routed-only has no default_backend and is not imported"), "{notes}");
    assert!(
        has_line(&notes, "haproxy.cfg", 16, "backend rabbit-tls is reached only by the conditional `use_backend` at line 10"),
        "{notes}"
    );
}

#[test]
fn a_track_script_naming_no_vrrp_script_is_noted() {
    let (toml, notes) = import_text(
        Some(
            "\
vrrp_script chk_rabbit {
    script \"rabbitmq-diagnostics -q ping\"
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.100/24
    }
    track_script {
        chk_rabbit
        chk_typo
    }
}
",
        ),
        None,
    );
    assert!(toml.contains("track_script = [{ name = \"chk_rabbit\" }]"), "{toml}");
    assert!(has_line(&notes, "keepalived.conf", 12, "track_script chk_typo names no vrrp_script"), "{notes}");
}

#[test]
fn check_settings_carry_the_most_common_value_and_each_server_that_differs_keeps_its_own() {
    let (toml, notes) = import_text(
        None,
        Some(&haproxy(
            "\
listen amqp
    bind 192.0.2.100:5672
    balance leastconn
    server rabbit1 192.0.2.21:5672 check inter 10s rise 2 fall 5
    server rabbit2 192.0.2.22:5672 check inter 5s rise 2 fall 3
    server rabbit3 192.0.2.23:5672 check inter 5s rise 2 fall 3
    server rabbit4 192.0.2.24:5672 inter 1s
    server rabbit5 192.0.2.25:5672 check inter 5s rise 2 fall 3 port 5673 addr 192.0.2.125
",
        )),
    );
    assert!(toml.contains("check = { kind = \"amqp\", interval = \"5s\", rise = 2, fall = 3 }"), "{toml}");
    // HAProxy's per-server settings stay per server, as written.
    assert!(
        toml.contains("name = \"rabbit1\"\naddress = \"192.0.2.21:5672\"\ncheck = { interval = \"10s\", fall = 5 }"),
        "{toml}"
    );
    assert!(
        toml.contains("name = \"rabbit5\"\naddress = \"192.0.2.25:5672\"\ncheck = { port = 5673, addr = \"192.0.2.125\" }"),
        "{toml}"
    );
    assert!(toml.contains("name = \"rabbit2\"\naddress = \"192.0.2.22:5672\"\n\n"), "no settings of its own:\n{toml}");
    // The `check` flag stays per server.
    assert!(toml.contains("name = \"rabbit4\"\naddress = \"192.0.2.24:5672\"\ncheck = false"), "{toml}");
    assert!(!notes.contains("haproxy.cfg:9:") && !notes.contains("haproxy.cfg:13:"), "carried as written:\n{notes}");
}

#[test]
fn httpchk_becomes_an_http_check_on_each_servers_check_port() {
    let (toml, notes) = import_text(
        None,
        Some(&haproxy(
            "\
listen amqp
    bind 192.0.2.100:5672
    option httpchk GET /api/health/checks/local-alarms
    http-check expect status 200
    server rabbit1 192.0.2.21:5672 check port 15672
    server rabbit2 192.0.2.22:5672 check port 15672
listen ui
    bind 192.0.2.100:15672
    option httpchk
    server rabbit1 192.0.2.21:15672 check
listen odd
    bind 192.0.2.100:8080
    option httpchk GET /health
    http-check expect rstatus ^2
    server web1 192.0.2.41:8080 check
",
        )),
    );
    let amqp = proxy_section(&toml, "amqp");
    assert!(
        amqp.contains("check = { kind = \"http\", path = \"/api/health/checks/local-alarms\", expect_status = 200 }"),
        "{toml}"
    );
    assert!(amqp.contains("address = \"192.0.2.21:5672\"\ncheck = { port = 15672 }"), "{toml}");
    assert!(proxy_section(&toml, "ui").contains("check = { kind = \"http\" }"), "{toml}");
    assert!(has_line(&notes, "haproxy.cfg", 14, "`option httpchk OPTIONS /`: vrrpd's HTTP check sends GET"), "{notes}");
    assert!(proxy_section(&toml, "odd").contains("check = { kind = \"http\", path = \"/health\" }"), "{toml}");
    assert!(has_line(&notes, "haproxy.cfg", 19, "any 2xx/3xx"), "{notes}");
}

#[test]
fn tls_checks_become_amqps_or_https_verified_with_the_ca_file() {
    let (toml, notes) = import_text(
        None,
        Some(&haproxy(
            "\
listen amqps
    bind 192.0.2.100:5671
    server rabbit1 192.0.2.21:5671 check check-ssl ca-file /etc/ssl/rabbit-ca.pem check-sni rabbit.example
    server rabbit2 192.0.2.22:5671 check check-ssl ca-file /etc/ssl/rabbit-ca.pem check-sni rabbit.example
listen unverified
    bind 192.0.2.100:5670
    server rabbit1 192.0.2.21:5671 check ssl verify none
listen ui-tls
    bind 192.0.2.100:15671
    option httpchk GET /api/health/checks/local-alarms
    server rabbit1 192.0.2.21:15671 check check-ssl ca-file /etc/ssl/rabbit-ca.pem
",
        )),
    );
    assert!(
        proxy_section(&toml, "amqps")
            .contains("check = { kind = \"amqps\", ca_file = \"/etc/ssl/rabbit-ca.pem\", sni = \"rabbit.example\" }"),
        "{toml}"
    );
    assert!(!notes.contains("haproxy.cfg:8:") && !notes.contains("haproxy.cfg:9:"), "carried as written:\n{notes}");
    assert!(proxy_section(&toml, "unverified").contains("check = { kind = \"amqps\" }"), "{toml}");
    assert!(has_line(&notes, "haproxy.cfg", 12, "HAProxy did not verify them: `verify none` on rabbit1"), "{notes}");
    assert!(has_line(&notes, "haproxy.cfg", 12, "set ca_file"), "{notes}");
    assert!(
        proxy_section(&toml, "ui-tls").contains(
            "check = { kind = \"https\", path = \"/api/health/checks/local-alarms\", ca_file = \"/etc/ssl/rabbit-ca.pem\" }"
        ),
        "{toml}"
    );
}

#[test]
fn send_proxy_is_what_most_servers_had_and_each_other_server_is_noted() {
    let (toml, notes) = import_text(
        None,
        Some(&haproxy(
            "\
listen proxied
    bind 192.0.2.100:5673
    balance leastconn
    server rabbit1 192.0.2.21:5672 check send-proxy-v2
    server rabbit2 192.0.2.22:5672 check
    server rabbit3 192.0.2.23:5672 check
",
        )),
    );
    assert!(!proxy_section(&toml, "proxied").contains("send_proxy"), "{toml}");
    assert!(
        has_line(
            &notes,
            "haproxy.cfg",
            9,
            "server rabbit1 had `send-proxy-v2`: vrrpd sends the PROXY protocol per proxy: no PROXY header"
        ),
        "{notes}"
    );
}

#[test]
fn every_imported_proxy_is_tracked_by_the_instances_that_front_it() {
    let keepalived = "\
vrrp_instance VI_A {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.101/24
    }
}
vrrp_instance VI_B {
    interface eth0
    virtual_router_id 52
    virtual_ipaddress {
        192.0.2.102/24
    }
}
";
    let balancer = haproxy(
        "\
listen amqp-a
    bind 192.0.2.101:5672
    server rabbit1 192.0.2.21:5672 check
listen amqp-b
    bind 192.0.2.102:5672
    server rabbit2 192.0.2.22:5672 check
listen mgmt
    bind :15672
    server rabbit1 192.0.2.21:15672 check
",
    );
    let (toml, notes) = import_text(Some(keepalived), Some(&balancer));
    let [a, b]: [&str; 2] = toml.split("[[vrrp_instance]]").skip(1).collect::<Vec<_>>().try_into().unwrap();
    assert!(a.contains("track_proxy = [{ name = \"amqp-a\", weight = 0 }, { name = \"mgmt\", weight = 0 }]"), "{toml}");
    assert!(b.contains("track_proxy = [{ name = \"amqp-b\", weight = 0 }, { name = \"mgmt\", weight = 0 }]"), "{toml}");
    assert!(has_line(&notes, "keepalived.conf", 1, "track_proxy amqp-a, mgmt with weight 0"), "{notes}");
    // One instance fronts every proxy bound to no VIP of another.
    let one = keepalived.split("vrrp_instance VI_B").next().unwrap();
    let (toml, _) = import_text(Some(one), Some(&balancer));
    assert!(
        toml.contains(
            "track_proxy = [{ name = \"amqp-a\", weight = 0 }, { name = \"amqp-b\", weight = 0 }, { name = \"mgmt\", weight = 0 }]"
        ),
        "{toml}"
    );
}

#[test]
fn a_fractional_advert_int_is_noted() {
    let (toml, notes) = import_text(
        Some(
            "\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    advert_int 0.5
    virtual_ipaddress {
        192.0.2.100/24
    }
}
",
        ),
        None,
    );
    assert!(toml.contains("advert_int = 1\n"), "{toml}");
    assert!(has_line(&notes, "keepalived.conf", 4, "advert_int 0.5: VRRPv2 advertises whole seconds"), "{notes}");
}

#[test]
fn vrrp_version_3_carries_fractional_advert_int_as_centiseconds() {
    // Before VRRPv3 the version was noted as unsupported and 0.1 became 1 s.
    let (toml, notes) = import_text(
        Some(
            "\
global_defs {
    vrrp_version 3
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    advert_int 0.1
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    virtual_ipaddress {
        192.0.2.100/24
    }
}
vrrp_instance VI_2 {
    version 2
    interface eth0
    virtual_router_id 52
    advert_int 2
    virtual_ipaddress {
        192.0.2.101/24
    }
}
vrrp_instance VI_3 {
    interface eth0
    virtual_router_id 53
    advert_int 0.125
    virtual_ipaddress {
        192.0.2.102/24
    }
}
",
        ),
        None,
    );
    assert!(toml.contains("version = 3\nadvert_int = \"100ms\"\n"), "{toml}");
    assert!(toml.contains("virtual_router_id = 52\nadvert_int = 2\n"), "VI_2 stays VRRPv2: {toml}");
    assert!(toml.contains("advert_int = \"130ms\""), "{toml}");
    assert!(has_line(&notes, "keepalived.conf", 28, "advert_int 0.125: VRRPv3 advertises whole centiseconds"), "{notes}");
    assert!(has_line(&notes, "keepalived.conf", 9, "authentication: VRRPv3 has none"), "{notes}");
    assert!(!toml.contains("auth_pass"), "{toml}");
    let config = ha_common::Config::parse(&toml, std::path::Path::new("imported.toml")).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert_eq!(config.config.instances[0].advert_int, std::time::Duration::from_millis(100));
}

#[test]
fn ipv6_vips_carry_over_with_vrrp_version_3_one_family_per_instance() {
    // Before IPv6 support every IPv6 VIP was dropped, and an IPv6-only instance left out.
    let (toml, notes) = import_text(
        Some(
            "\
global_defs {
    vrrp_version 3
}
vrrp_instance VI_6 {
    interface eth0
    virtual_router_id 61
    advert_int 0.25
    virtual_ipaddress {
        2001:db8::71/64
        192.0.2.71/24
    }
}
",
        ),
        None,
    );
    assert!(toml.contains("virtual_ipaddress = [\"2001:db8::71/64\"]"), "{toml}");
    assert!(toml.contains("version = 3\nadvert_int = \"250ms\""), "{toml}");
    assert!(has_line(&notes, "keepalived.conf", 10, "one address family"), "{notes}");
    let config = ha_common::Config::parse(&toml, std::path::Path::new("imported.toml")).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    assert!(config.config.instances[0].virtual_ipaddress[0].addr().is_ipv6());
}

#[test]
fn tls_servers_only_connected_to_get_a_tcp_check_and_a_note() {
    let (toml, notes) = import_text(
        None,
        Some(&haproxy(
            "\
listen amqps
    bind 192.0.2.100:5671
    server rabbit1 192.0.2.21:5671 check
    server rabbit2 192.0.2.22:5671 check
listen amqp-check-ssl
    bind 192.0.2.100:5672
    server rabbit1 192.0.2.21:5672 check check-ssl
listen amqp
    bind 192.0.2.100:5673
    server rabbit1 192.0.2.21:5672 check
",
        )),
    );
    assert!(proxy_section(&toml, "amqps").contains("check = { kind = \"tcp\" }"), "{toml}");
    assert!(has_line(&notes, "haproxy.cfg", 6, "proxy amqps: servers rabbit1, rabbit2 speak TLS"), "{notes}");
    assert!(has_line(&notes, "haproxy.cfg", 6, "`kind = \"amqps\"` with `ca_file`"), "{notes}");
    // HAProxy checked this one over TLS: so does vrrpd, verifying the certificate.
    assert!(proxy_section(&toml, "amqp-check-ssl").contains("check = { kind = \"amqps\" }"), "{toml}");
    assert!(has_line(&notes, "haproxy.cfg", 12, "set ca_file"), "{notes}");
    assert!(proxy_section(&toml, "amqp").contains("check = { kind = \"amqp\" }"), "{toml}");
}

#[test]
fn haproxy_watcher_scripts_are_replaced_by_track_proxy_and_noted() {
    // By name (seed000's chk_haproxy).
    let (toml, notes) = import(Some("seeds/seed000-keepalived-master.conf"), Some("seeds/seed000-haproxy.cfg"));
    assert!(!toml.contains("[[vrrp_script]]") && !toml.contains("track_script"), "{toml}");
    assert!(toml.contains("track_proxy = [{ name = \"haproxy\", weight = 0 }]"), "{toml}");
    assert!(
        has_line(&notes, "seed000-keepalived-master.conf", 7, "vrrp_script chk_haproxy watches HAProxy (its name"),
        "{notes}"
    );
    assert!(has_line(&notes, "seed000-keepalived-master.conf", 24, "track_script chk_haproxy: dropped"), "{notes}");
    // By path (seed001's /etc/keepalived/haproxy_check.sh).
    let (toml, notes) = import(Some("seeds/seed001-keepalived-master.conf"), Some("seeds/seed001-haproxy.cfg"));
    assert!(!toml.contains("[[vrrp_script]]"), "{toml}");
    assert!(has_line(&notes, "seed001-keepalived-master.conf", 5, "its command `/etc/keepalived/haproxy_check.sh`"), "{notes}");
    // By content: seed002's check-proxy.sh probes HAProxy's stats port and kills keepalived.
    let script = data("seeds/seed002-check-proxy.sh");
    let conf = std::fs::read_to_string(data("seeds/seed002-keepalived-master.conf"))
        .unwrap()
        .replace("/home/liam/rabbitmq/check-proxy.sh", script.to_str().unwrap());
    let stats_on_8100 = std::fs::read_to_string(data("seeds/seed004-haproxy.cfg")).unwrap();
    let (toml, notes) = import_text(Some(&conf), Some(&stats_on_8100));
    assert!(!toml.contains("[[vrrp_script]]") && !toml.contains("track_script"), "{toml}");
    assert!(toml.contains("track_proxy = [{ name = \"rabbitmq_cluster\", weight = 0 }]"), "{toml}");
    assert!(
        has_line(&notes, "keepalived.conf", 2, "runs `nc -zv localhost 8100`, a probe of port 8100 where HAProxy listens"),
        "{notes}"
    );
    assert!(has_line(&notes, "keepalived.conf", 2, "stops keepalived when HAProxy is down"), "{notes}");
    assert!(has_line(&notes, "keepalived.conf", 17, "track_script chk_proxy: dropped"), "{notes}");
    // By content under a name and path that say nothing: seed000's `ps -C haproxy` script.
    let dir = tempfile::tempdir().unwrap();
    let check = dir.path().join("check.sh");
    std::fs::copy(data("seeds/seed000-check_haproxy.sh"), &check).unwrap();
    let conf = std::fs::read_to_string(data("seeds/seed000-keepalived-master.conf"))
        .unwrap()
        .replace("chk_haproxy", "chk_lb")
        .replace("/etc/keepalived/check_haproxy.sh", check.to_str().unwrap());
    let (toml, notes) = import_text(Some(&conf), Some(&std::fs::read_to_string(data("seeds/seed000-haproxy.cfg")).unwrap()));
    assert!(!toml.contains("[[vrrp_script]]"), "{toml}");
    assert!(has_line(&notes, "keepalived.conf", 7, "runs `if [ $(ps -C haproxy --no-header | wc -l) -eq 0 ];then`"), "{notes}");
}

#[test]
fn scripts_that_watch_something_else_stay_tracked() {
    let (toml, notes) = import_text(
        Some(
            "\
vrrp_script chk_rabbit {
    script \"rabbitmq-diagnostics -q check_running\"
    weight -20
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.100/24
    }
    track_script {
        chk_rabbit
    }
}
",
        ),
        Some(&haproxy("listen amqp\n    bind :5672\n    server rabbit1 192.0.2.21:5672 check\n")),
    );
    assert!(
        toml.contains("[[vrrp_script]]\nname = \"chk_rabbit\"\nscript = \"rabbitmq-diagnostics -q check_running\""),
        "{toml}"
    );
    assert!(toml.contains("track_script = [{ name = \"chk_rabbit\" }]"), "{toml}");
    assert!(toml.contains("track_proxy = [{ name = \"amqp\", weight = 0 }]"), "{toml}");
    assert!(!notes.contains("watches HAProxy"), "{notes}");
}

#[test]
fn mcast_src_ip_is_carried_as_the_advert_source_address() {
    let (toml, notes) = import_text(
        Some(
            "\
vrrp_instance VI_1 {
    interface eth0
    mcast_src_ip 192.0.2.11
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.100/24
    }
}
",
        ),
        None,
    );
    assert!(toml.contains("unicast_src_ip = \"192.0.2.11\""), "{toml}");
    assert!(has_line(&notes, "keepalived.conf", 3, "`mcast_src_ip 192.0.2.11` is written as unicast_src_ip"), "{notes}");
}

#[test]
fn haproxy_durations_beyond_vrrpds_bounds_are_clamped_with_a_note() {
    let (toml, notes) = import_text(
        None,
        Some(
            "\
defaults
    mode tcp
    timeout connect 2d
    timeout client 40d
    timeout server 40d
    timeout check 25h
    option redispatch
listen amqp
    bind 192.0.2.100:5672
    server rabbit1 192.0.2.21:5672 check inter 2d
",
        ),
    );
    assert_contains(&toml, &["timeout_connect = \"24h\"", "timeout_idle = \"720h\"", "interval = \"24h\", timeout = \"24h\""]);
    assert!(has_line(&notes, "haproxy.cfg", 3, "timeout connect 48h is longer than vrrpd accepts: written 24h"), "{notes}");
    assert!(has_line(&notes, "haproxy.cfg", 4, "idle timeout 960h is longer than vrrpd accepts: written 720h"), "{notes}");
    assert!(has_line(&notes, "haproxy.cfg", 6, "timeout check 25h is longer"), "{notes}");
    assert!(has_line(&notes, "haproxy.cfg", 10, "check interval 48h is longer"), "{notes}");
}

#[test]
fn vip_dev_label_scope_and_brd_become_a_table_and_every_other_word_a_note() {
    // Before, every word after the address was dropped with one note: the VIP moved to the
    // instance's interface with vrrpd's label.
    let (toml, notes) = import_text(
        Some(
            "\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.100/24
        192.0.2.101/24 dev eth1 label eth1:amqp scope global
        192.0.2.102/32 dev lo scope host
        192.0.2.103/24 brd 192.0.2.255 dev eth1 label amqp no_track
        192.0.2.104/24 scope 200 home
        192.0.2.105/24 label eth0:a-label-too-long
        192.0.2.106/24 broadcast + label eth0:b
        192.0.2.107/24 brd 192.0.2.0.1
    }
}
",
        ),
        None,
    );
    let vips = toml.lines().find(|l| l.starts_with("virtual_ipaddress")).unwrap_or_else(|| panic!("{toml}"));
    for written in [
        "\"192.0.2.100/24\"",
        "{ address = \"192.0.2.101/24\", dev = \"eth1\", label = \"eth1:amqp\", scope = \"global\" }",
        "{ address = \"192.0.2.102/32\", dev = \"lo\", scope = \"host\" }",
        "{ address = \"192.0.2.103/24\", dev = \"eth1\", label = \"eth1:amqp\", brd = \"192.0.2.255\", no_track = true }",
        "{ address = \"192.0.2.104/24\", scope = 200 }",
        "\"192.0.2.105/24\"",
        "{ address = \"192.0.2.106/24\", label = \"eth0:b\", brd = \"+\" }",
        "\"192.0.2.107/24\"",
    ] {
        assert!(vips.contains(written), "{written} in:\n{toml}");
    }
    assert!(!notes.contains("keepalived.conf:6:") && !notes.contains("keepalived.conf:7:"), "carried as written:\n{notes}");
    assert!(!has_line(&notes, "keepalived.conf", 8, "brd"), "brd is carried:\n{notes}");
    assert!(has_line(&notes, "keepalived.conf", 12, "not an IPv4 address, + or -"), "{notes}");
    assert!(has_line(&notes, "keepalived.conf", 8, "label amqp: written eth1:amqp"), "{notes}");
    assert!(!has_line(&notes, "keepalived.conf", 8, "no_track"), "no_track is carried:\n{notes}");
    assert!(has_line(&notes, "keepalived.conf", 9, "`home`"), "{notes}");
    assert!(has_line(&notes, "keepalived.conf", 10, "IFNAMSIZ"), "{notes}");
    // And vrrpd takes it as written.
    let config = ha_common::Config::parse(&toml, std::path::Path::new("imported.toml")).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let vips = &config.config.instances[0].virtual_ipaddress;
    assert_eq!(vips[1].to_string(), "192.0.2.101/24 dev eth1 label eth1:amqp");
    assert_eq!(vips[2].to_string(), "192.0.2.102/32 dev lo scope host");
    assert_eq!(vips[3].to_string(), "192.0.2.103/24 brd 192.0.2.255 dev eth1 label eth1:amqp no_track");
    assert_eq!(vips[6].to_string(), "192.0.2.106/24 brd 192.0.2.255 label eth0:b");
    assert_eq!(vips[7].broadcast, None);
}

#[test]
fn an_ipv6_vip_label_is_noted_and_left_out() {
    let (toml, notes) = import_text(
        Some(
            "\
vrrp_instance VI_6 {
    version 3
    interface eth0
    virtual_router_id 61
    virtual_ipaddress {
        2001:db8::71/64 dev eth1 label eth1:v6 scope site
    }
}
",
        ),
        None,
    );
    assert!(toml.contains("{ address = \"2001:db8::71/64\", dev = \"eth1\", scope = \"site\" }"), "{toml}");
    assert!(has_line(&notes, "keepalived.conf", 6, "no label on IPv6"), "{notes}");
}

/// keepalived's `virtual_ipaddress_excluded` was dropped with a note: after a migration those
/// addresses never moved at a failover. Now it is carried, an IPv6 address beside a VRRPv2
/// instance's IPv4 ones included (the common dual-stack use).
#[test]
fn virtual_ipaddress_excluded_is_carried_with_its_ipv6_addresses() {
    let (toml, notes) = import_text(
        Some(
            "\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.100/24
    }
    virtual_ipaddress_excluded {
        2001:db8::100/64
        192.0.2.110/24 dev eth1 label eth1:x
        192.0.2.100/24
    }
}
",
        ),
        None,
    );
    let line = toml.lines().find(|l| l.starts_with("virtual_ipaddress_excluded")).unwrap_or_else(|| panic!("{toml}"));
    assert_eq!(
        line,
        "virtual_ipaddress_excluded = [\"2001:db8::100/64\", { address = \"192.0.2.110/24\", dev = \"eth1\", label = \"eth1:x\" }]"
    );
    assert!(!notes.contains("virtual_ipaddress_excluded"), "carried, not noted:\n{notes}");
    assert!(has_line(&notes, "keepalived.conf", 10, "already a VIP"), "{notes}");
    let config = ha_common::Config::parse(&toml, std::path::Path::new("imported.toml")).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    let instance = &config.config.instances[0];
    assert_eq!(instance.advertised_vips().count(), 1);
    assert_eq!(instance.virtual_ipaddress.iter().filter(|v| v.excluded).count(), 2);
}
