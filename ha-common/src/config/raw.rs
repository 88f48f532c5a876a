//! The configuration file as written: serde structs that mirror the TOML one to one, unknown keys
//! refused, with source spans kept on every value that validation may complain about.
//! Nothing here decides what a value means; `validate.rs` does.

use serde::Deserialize;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstance {
    pub name: S<String>,
    pub interface: S<String>,
    pub state: Option<S<String>>,
    pub virtual_router_id: S<i64>,
    pub priority: Option<S<i64>>,
    pub advert_int: Option<S<f64>>,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<S<ConfigDuration>>,
    pub authentication: Option<S<RawAuthentication>>,
    pub virtual_ipaddress: S<Vec<S<String>>>,
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
    pub bind: S<String>,
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
    #[serde(default)]
    pub server: Vec<S<RawServer>>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub name: S<String>,
    pub address: S<String>,
    pub weight: Option<S<i64>>,
    pub backup: Option<bool>,
    pub maxconn: Option<S<i64>>,
    pub check: Option<bool>,
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
