//! From the validated configuration to the core's types. The core knows no configuration crate;
//! this is the one place the two meet.

use std::net::IpAddr;

use ha_common::config::{Authentication, GarpConfig as GarpSettings, InitialState as StartState, VrrpInstance, VrrpVersion};
use vrrp_core::instance::{GarpConfig, InitialState, InstanceConfig, Version};
use vrrp_core::packet::AuthData;
use vrrp_core::track::Tracker;

/// What the core runs for `config`, advertising from `primary_ip`, with `trackers`.
pub fn instance_config(config: &VrrpInstance, primary_ip: IpAddr, trackers: Vec<Tracker>) -> InstanceConfig {
    InstanceConfig {
        name: config.name.clone(),
        vrid: config.vrid,
        priority: config.priority,
        version: version(config.version),
        // Validation keeps advert_int to whole seconds (1..=255) with VRRPv2, whole
        // centiseconds (10 ms to 40.95 s) with VRRPv3.
        advert_interval: config.advert_int,
        preempt: config.preempt,
        preempt_delay: config.preempt_delay,
        auth: auth_data(config.authentication),
        // keepalived's virtual_ipaddress_excluded: the addresses, never the adverts.
        vips: config.advertised_vips().map(|p| p.addr()).collect(),
        primary_ip,
        initial_state: initial_state(config.initial_state),
        garp: garp(config.garp),
        trackers,
    }
}

fn version(version: VrrpVersion) -> Version {
    match version {
        VrrpVersion::V2 => Version::V2,
        VrrpVersion::V3 => Version::V3,
    }
}

fn auth_data(auth: Authentication) -> AuthData {
    match auth {
        Authentication::None => AuthData::None,
        Authentication::Pass(password) => AuthData::Pass(password),
    }
}

fn initial_state(state: StartState) -> InitialState {
    match state {
        StartState::Master => InitialState::Master,
        StartState::Backup => InitialState::Backup,
    }
}

fn garp(settings: GarpSettings) -> GarpConfig {
    GarpConfig {
        master_delay: settings.master_delay,
        master_repeat: settings.master_repeat,
        master_refresh: settings.master_refresh,
        master_refresh_repeat: settings.master_refresh_repeat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_defaults_survive_the_conversion() {
        let garp = garp(GarpSettings::default());
        assert_eq!(garp, GarpConfig::default());
        assert_eq!(initial_state(StartState::Master), InitialState::Master);
        assert_eq!(auth_data(Authentication::Pass(*b"s3cret\0\0")), AuthData::Pass(*b"s3cret\0\0"));
    }

    /// keepalived lists only `virtual_ipaddress` in its adverts, and drops an advert whose list
    /// differs from its own: vrrpd's adverts must leave the excluded VIPs out the same way.
    #[test]
    fn excluded_vips_are_not_in_the_core_s_adverts() {
        let text = "[global]\nrouter_id = \"a\"\n[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\n\
                    virtual_router_id = 51\nvirtual_ipaddress = [\"192.0.2.100/24\"]\n\
                    virtual_ipaddress_excluded = [\"192.0.2.101/24\", \"2001:db8::100/64\"]\n";
        let config = ha_common::Config::parse(text, std::path::Path::new("a.toml")).unwrap_or_else(|e| panic!("{e}")).config;
        let core = instance_config(&config.instances[0], "192.0.2.11".parse().unwrap_or(IpAddr::from([0; 4])), Vec::new());
        assert_eq!(core.vips, ["192.0.2.100".parse::<IpAddr>().unwrap_or(IpAddr::from([0; 4]))]);
    }
}
