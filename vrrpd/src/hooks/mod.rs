//! The operator's programs vrrpd runs on the host: [`script`] parses and checks a command line
//! (track scripts and notify scripts alike), [`spawn`] starts it confined, [`launcher`] starts
//! it as another user without vrrpd holding that right, and [`notify`] is the queue that runs
//! notify scripts in order, off the protocol's path.

pub mod launcher;
pub mod notify;
pub mod script;
pub mod spawn;

use std::collections::BTreeSet;

use ha_common::config::Config;

/// The uids scripts of `config` run as, where their users exist (`script_user` and each
/// script's `user`).
pub fn script_uids(config: &Config) -> BTreeSet<u32> {
    config
        .global
        .script_user
        .iter()
        .chain(config.scripts.iter().filter_map(|s| s.user.as_ref()))
        .filter_map(|name| nix::unistd::User::from_name(name).ok().flatten())
        .map(|user| user.uid.as_raw())
        .collect()
}
