//! The operator's programs vrrpd runs on the host: [`script`] parses and checks a command line
//! (track scripts and notify scripts alike), [`spawn`] starts it confined, [`launcher`] starts
//! it as another user without vrrpd holding that right, and [`notify`] is the queue that runs
//! notify scripts in order, off the protocol's path.

pub mod launcher;
pub mod notify;
pub mod script;
pub mod spawn;

use std::collections::BTreeMap;

use ha_common::config::Config;

/// The users scripts of `config` run as, where they exist (`script_user` and each script's
/// `user`): uid and primary gid.
pub fn script_users(config: &Config) -> BTreeMap<u32, u32> {
    config
        .global
        .script_user
        .iter()
        .chain(config.scripts.iter().filter_map(|s| s.user.as_ref()))
        .filter_map(|name| nix::unistd::User::from_name(name).ok().flatten())
        .map(|user| (user.uid.as_raw(), user.gid.as_raw()))
        .collect()
}
