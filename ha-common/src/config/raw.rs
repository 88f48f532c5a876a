//! The configuration file as written: serde structs that mirror the TOML one to one, unknown keys
//! refused, with source spans kept on every value that validation may complain about.
//! Nothing here decides what a value means; `validate.rs` does.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::duration::ConfigDuration;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub global: RawGlobal,
    #[serde(default)]
    pub vrrp_script: Vec<S<RawScript>>,
    #[serde(default)]
    pub vrrp_track_process: Vec<S<RawTrackProcess>>,
    #[serde(default)]
    pub vrrp_track_file: Vec<S<RawTrackFile>>,
    #[serde(default)]
    pub vrrp_instance: Vec<S<RawInstance>>,
    #[serde(default)]
    pub vrrp_sync_group: Vec<S<RawSyncGroup>>,
    #[serde(default)]
    pub proxy: Vec<S<RawProxy>>,
    pub stats: Option<S<RawStats>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    pub router_id: Option<S<String>>,
    pub script_user: Option<S<String>>,
    pub enable_script_security: Option<bool>,
    pub control_socket: Option<S<String>>,
    pub maxconn: Option<S<i64>>,
    pub hard_stop_after: Option<S<ConfigDuration>>,
    pub user: Option<S<String>>,
    /// The default of every instance's `version` (keepalived's `vrrp_version`).
    pub vrrp_version: Option<S<i64>>,
    pub garp_interval: Option<S<ConfigDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScript {
    pub name: S<String>,
    pub script: S<String>,
    pub interval: Option<S<ConfigDuration>>,
    pub timeout: Option<S<ConfigDuration>>,
    pub weight: Option<S<i64>>,
    pub rise: Option<S<i64>>,
    pub fall: Option<S<i64>>,
    pub user: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrackProcess {
    pub name: S<String>,
    pub process: S<String>,
    pub params: Option<S<Vec<S<String>>>>,
    pub param_match: Option<S<String>>,
    pub full_command: Option<bool>,
    pub weight: Option<S<i64>>,
    pub reverse: Option<bool>,
    pub quorum: Option<S<i64>>,
    pub quorum_max: Option<S<i64>>,
    pub delay: Option<S<ConfigDuration>>,
    pub fork_delay: Option<S<ConfigDuration>>,
    pub terminate_delay: Option<S<ConfigDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrackFile {
    pub name: S<String>,
    pub file: S<String>,
    pub weight: Option<S<i64>>,
    pub reverse: Option<bool>,
    pub init_file: Option<S<i64>>,
    pub init_file_overwrite: Option<bool>,
    pub allow_unsafe: Option<bool>,
}

/// One `virtual_ipaddress` entry: `"192.0.2.100/24"`, or keepalived's placement words as a
/// table, `{ address = "192.0.2.101/24", dev = "eth1", label = "eth1:amqp", scope = "global",
/// brd = "+" }`.
#[derive(Debug)]
pub enum RawVip {
    Text(String),
    Table(RawVipTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVipTable {
    pub address: S<String>,
    pub dev: Option<S<String>>,
    pub label: Option<S<String>>,
    pub scope: Option<S<RawScope>>,
    /// An IPv4 broadcast address, `"+"` (the prefix's host bits set) or `"-"` (cleared), as
    /// `ip address add ... brd` takes it.
    pub brd: Option<S<String>>,
    /// keepalived's `no_track`.
    pub no_track: Option<bool>,
}

/// A scope by name (`"host"`) or by number (`254`), as `ip address` takes it.
#[derive(Debug)]
pub enum RawScope {
    Name(String),
    Number(i64),
}

impl<'de> Deserialize<'de> for RawScope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScopeVisitor;
        impl Visitor<'_> for ScopeVisitor {
            type Value = RawScope;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scope name (\"global\", \"site\", \"link\", \"host\", \"nowhere\") or a number 0..=255")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<RawScope, E> {
                Ok(RawScope::Name(name.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RawScope, E> {
                Ok(RawScope::Number(n))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RawScope, E> {
                Ok(RawScope::Number(i64::try_from(n).unwrap_or(i64::MAX)))
            }
        }
        deserializer.deserialize_any(ScopeVisitor)
    }
}

/// By hand rather than `untagged`: serde's untagged enums buffer the value, which loses the
/// spans of the table's fields (and its `deny_unknown_fields` message).
impl<'de> Deserialize<'de> for RawVip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VipVisitor;
        impl<'de> Visitor<'de> for VipVisitor {
            type Value = RawVip;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address (\"192.0.2.100/24\") or a table { address = \"192.0.2.101/24\", dev = \"eth1\", label = \"eth1:amqp\", scope = \"global\" }")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawVip, E> {
                Ok(RawVip::Text(text.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawVip, A::Error> {
                RawVipTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawVip::Table)
            }
        }
        deserializer.deserialize_any(VipVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstance {
    pub name: S<String>,
    pub interface: S<String>,
    pub state: Option<S<String>>,
    pub virtual_router_id: S<i64>,
    pub priority: Option<S<i64>>,
    pub version: Option<S<i64>>,
    pub advert_int: Option<S<RawAdvertInt>>,
    pub accept_mode: Option<S<bool>>,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<S<ConfigDuration>>,
    pub authentication: Option<S<RawAuthentication>>,
    pub virtual_ipaddress: S<Vec<S<RawVip>>>,
    pub virtual_ipaddress_excluded: Option<S<Vec<S<RawVip>>>>,
    #[serde(default)]
    pub track_script: Vec<S<RawTrack>>,
    #[serde(default)]
    pub track_proxy: Vec<S<RawTrack>>,
    #[serde(default)]
    pub track_interface: Vec<S<RawTrack>>,
    #[serde(default)]
    pub track_process: Vec<S<RawTrack>>,
    #[serde(default)]
    pub track_file: Vec<S<RawTrack>>,
    pub notify: Option<S<String>>,
    pub notify_master: Option<S<String>>,
    pub notify_backup: Option<S<String>>,
    pub notify_fault: Option<S<String>>,
    pub notify_stop: Option<S<String>>,
    pub unicast_src_ip: Option<S<String>>,
    #[serde(default)]
    pub unicast_peer: Vec<S<String>>,
    pub garp_master_delay: Option<S<ConfigDuration>>,
    pub garp_master_repeat: Option<S<i64>>,
    pub garp_master_refresh: Option<S<ConfigDuration>>,
    pub garp_master_refresh_repeat: Option<S<i64>>,
    pub garp_interval: Option<S<ConfigDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyncGroup {
    pub name: S<String>,
    pub group: S<Vec<S<String>>>,
    #[serde(default)]
    pub track_script: Vec<S<RawTrack>>,
    #[serde(default)]
    pub track_interface: Vec<S<RawTrack>>,
    #[serde(default)]
    pub track_process: Vec<S<RawTrack>>,
    #[serde(default)]
    pub track_file: Vec<S<RawTrack>>,
    pub sync_group_tracking_weight: Option<bool>,
    /// The group's own notify scripts: run when the group as a whole changes state.
    pub notify: Option<S<String>>,
    pub notify_master: Option<S<String>>,
    pub notify_backup: Option<S<String>>,
    pub notify_fault: Option<S<String>>,
    pub notify_stop: Option<S<String>>,
}

/// `advert_int` as written: seconds as a number (`1`, `0.1` as keepalived writes it), or a
/// duration (`"100ms"`, `"0.5s"`, `"1s"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawAdvertInt {
    Seconds(f64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthentication {
    pub auth_type: S<String>,
    pub auth_pass: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrack {
    pub name: S<String>,
    pub weight: Option<S<i64>>,
    pub reverse: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub name: S<String>,
    pub bind: S<RawBinds>,
    /// Expect a PROXY protocol header (v1 or v2) from every client on every bind (a bind's
    /// own `accept_proxy` decides for that bind).
    pub accept_proxy: Option<bool>,
    /// With every primary DOWN, use all the backups at once, not only the first.
    pub allbackups: Option<bool>,
    /// The servers' default `slowstart`.
    pub slowstart: Option<S<ConfigDuration>>,
    /// Automatic rebalancing (off without it).
    pub rebalance: Option<S<RawRebalance>>,
    pub balance: Option<S<String>>,
    pub check: Option<S<RawCheck>>,
    pub timeout_connect: Option<S<ConfigDuration>>,
    pub timeout_idle: Option<S<ConfigDuration>>,
    pub timeout_queue: Option<S<ConfigDuration>>,
    pub retries: Option<S<i64>>,
    pub redispatch: Option<bool>,
    pub maxconn: Option<S<i64>>,
    pub send_proxy: Option<S<String>>,
    pub on_marked_down: Option<S<String>>,
    pub rabbitmq_api: Option<S<RawRabbitmqApi>>,
    #[serde(default)]
    pub server: Vec<S<RawServer>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRabbitmqApi {
    pub urls: S<Vec<S<String>>>,
    pub user: S<String>,
    pub password: S<String>,
    pub ca_file: Option<S<String>>,
    /// Advert source address of a peer -> the addresses it connects to the brokers from.
    #[serde(default)]
    pub fence_addresses: std::collections::BTreeMap<String, S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRebalance {
    pub threshold: Option<S<f64>>,
    pub rate: Option<S<i64>>,
}

/// `bind = "0.0.0.0:5672"` or `bind = ["0.0.0.0:5672", "[::]:5672"]` (HAProxy's several
/// `bind` lines of one proxy); an entry of a list may be a table with its own options,
/// `{ address = "0.0.0.0:5673", accept_proxy = true }`. Each address keeps its own span.
#[derive(Debug)]
pub enum RawBinds {
    One(String),
    Many(Vec<S<RawBind>>),
}

/// One entry of a `bind` list: an address, or a table with the bind's own options.
#[derive(Debug)]
pub enum RawBind {
    /// Spanned by the list entry that holds it.
    Address(String),
    Table {
        address: S<String>,
        /// This bind's clients open with a PROXY header (HAProxy's `accept-proxy` on a `bind`).
        accept_proxy: Option<bool>,
    },
}

impl<'de> Deserialize<'de> for RawBind {
    // By hand: an untagged enum would buffer the value and lose the address's span.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawBind;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an address and port, or a table { address = ..., accept_proxy = ... }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawBind, E> {
                Ok(RawBind::Address(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawBind, A::Error> {
                let mut address: Option<S<String>> = None;
                let mut accept_proxy = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "address" if address.is_none() => address = Some(map.next_value()?),
                        "accept_proxy" if accept_proxy.is_none() => accept_proxy = Some(map.next_value()?),
                        "address" => return Err(serde::de::Error::duplicate_field("address")),
                        "accept_proxy" => return Err(serde::de::Error::duplicate_field("accept_proxy")),
                        other => return Err(serde::de::Error::unknown_field(other, &["address", "accept_proxy"])),
                    }
                }
                let address = address.ok_or_else(|| serde::de::Error::missing_field("address"))?;
                Ok(RawBind::Table { address, accept_proxy })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl<'de> Deserialize<'de> for RawBinds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawBinds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an address and port, a table { address = ..., accept_proxy = ... }, or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawBinds, E> {
                Ok(RawBinds::One(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawBinds, A::Error> {
                // One table alone: a list of one (its address carries its own span).
                let bind = RawBind::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                let span = match &bind {
                    RawBind::Table { address, .. } => address.span(),
                    RawBind::Address(_) => 0..0,
                };
                Ok(RawBinds::Many(vec![S::new(span, bind)]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawBinds, A::Error> {
                let mut binds = Vec::new();
                while let Some(bind) = seq.next_element()? {
                    binds.push(bind);
                }
                Ok(RawBinds::Many(binds))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub kind: Option<S<String>>,
    pub interval: Option<S<ConfigDuration>>,
    pub fastinter: Option<S<ConfigDuration>>,
    pub downinter: Option<S<ConfigDuration>>,
    pub timeout: Option<S<ConfigDuration>>,
    pub rise: Option<S<i64>>,
    pub fall: Option<S<i64>>,
    pub port: Option<S<i64>>,
    pub path: Option<S<String>>,
    pub expect_status: Option<S<i64>>,
    pub user: Option<S<String>>,
    pub password: Option<S<String>>,
    pub password_file: Option<S<String>>,
    pub ca_file: Option<S<String>>,
    pub sni: Option<S<String>>,
}

/// A server's `check`: `true`/`false`, or a table of its own settings (which means checked).
#[derive(Debug)]
pub enum RawServerCheck {
    Flag(bool),
    Settings(Box<RawServerCheckSettings>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerCheckSettings {
    pub interval: Option<S<ConfigDuration>>,
    pub fastinter: Option<S<ConfigDuration>>,
    pub downinter: Option<S<ConfigDuration>>,
    pub timeout: Option<S<ConfigDuration>>,
    pub rise: Option<S<i64>>,
    pub fall: Option<S<i64>>,
    pub port: Option<S<i64>>,
    pub addr: Option<S<String>>,
}

impl<'de> Deserialize<'de> for RawServerCheck {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawServerCheck;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a table of check settings ({ interval = \"5s\", port = 15672, ... })")
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawServerCheck, E> {
                Ok(RawServerCheck::Flag(v))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawServerCheck, A::Error> {
                RawServerCheckSettings::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|settings| RawServerCheck::Settings(Box::new(settings)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub name: S<String>,
    pub address: S<String>,
    pub weight: Option<S<i64>>,
    pub backup: Option<bool>,
    pub maxconn: Option<S<i64>>,
    pub check: Option<RawServerCheck>,
    pub slowstart: Option<S<ConfigDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStats {
    pub listen: S<String>,
    pub refresh: Option<S<ConfigDuration>>,
    pub auth: Option<S<RawStatsAuth>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatsAuth {
    pub user: S<String>,
    pub password: S<String>,
}
