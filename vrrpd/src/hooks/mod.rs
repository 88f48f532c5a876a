//! The operator's programs vrrpd runs on the host: [`script`] parses, checks and runs a command
//! line (track scripts and notify scripts alike); [`notify`] is the queue that runs notify
//! scripts in order, off the protocol's path.

pub mod notify;
pub mod script;
