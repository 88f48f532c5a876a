//! Least privilege. Under systemd the unit starts vrrpd as its own user with exactly the
//! capabilities it needs. Started as root by hand, vrrpd drops to `[global] user` itself,
//! keeping only CAP_NET_ADMIN (addresses), CAP_NET_RAW (VRRP and ARP sockets) and
//! CAP_NET_BIND_SERVICE (listeners below 1024). Scripts it runs get no capability.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{chown, setgid, setgroups, setuid, Gid, Uid, User};

pub const KEPT: [Capability; 3] = [Capability::CAP_NET_ADMIN, Capability::CAP_NET_RAW, Capability::CAP_NET_BIND_SERVICE];

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("user {0:?} does not exist")]
    NoUser(String),
    #[error("cannot prepare {path} for user {user}: {source}")]
    Directory { path: String, user: String, source: std::io::Error },
    #[error("cannot drop to user {user}: {what}: {reason}")]
    Drop { user: String, what: &'static str, reason: String },
}

/// Drops from root to `user`, keeping [`KEPT`] and `also` (CAP_SETUID and CAP_SETGID when a
/// script launcher must split off next). Must run before any thread starts. The control
/// socket's directory is created for the user when it does not exist yet.
pub fn drop_to(user: &str, control_socket: &Path, also: &[Capability]) -> Result<(), PrivilegeError> {
    let account = User::from_name(user).ok().flatten().ok_or_else(|| PrivilegeError::NoUser(user.to_owned()))?;
    if let Some(dir) = control_socket.parent() {
        if !dir.exists() {
            let error = |source| PrivilegeError::Directory { path: dir.display().to_string(), user: user.to_owned(), source };
            std::fs::create_dir_all(dir).map_err(error)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).map_err(error)?;
            chown(dir, Some(account.uid), Some(account.gid)).map_err(|e| error(e.into()))?;
        }
    }
    let fail = |what: &'static str| move |reason: String| PrivilegeError::Drop { user: user.to_owned(), what, reason };
    // While still root: nothing outside KEPT can ever come back, whatever runs later.
    let keep = |c: &Capability| KEPT.contains(c) || also.contains(c);
    // Only what the bounding set holds: older kernels do not know the newest capabilities.
    let bounding = caps::read(None, CapSet::Bounding).map_err(|e| fail("read the bounding set")(e.to_string()))?;
    for capability in bounding.into_iter().filter(|c| !keep(c)) {
        caps::drop(None, CapSet::Bounding, capability).map_err(|e| fail("trim the bounding set")(e.to_string()))?;
    }
    // Keep the permitted set across setuid; it is trimmed to KEPT right after.
    nix::sys::prctl::set_keepcaps(true).map_err(|e| fail("keep capabilities")(e.to_string()))?;
    setgroups(&[account.gid]).map_err(|e| fail("set groups")(e.to_string()))?;
    setgid(Gid::from_raw(account.gid.as_raw())).map_err(|e| fail("set group")(e.to_string()))?;
    setuid(Uid::from_raw(account.uid.as_raw())).map_err(|e| fail("set user")(e.to_string()))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| fail("keep capabilities")(e.to_string()))?;
    let kept: CapsHashSet = KEPT.into_iter().chain(also.iter().copied()).collect();
    caps::set(None, CapSet::Permitted, &kept).map_err(|e| fail("limit permitted capabilities")(e.to_string()))?;
    caps::set(None, CapSet::Effective, &kept).map_err(|e| fail("raise kept capabilities")(e.to_string()))?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
        .map_err(|e| fail("clear inheritable capabilities")(e.to_string()))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("clear ambient capabilities")(e.to_string()))?;
    // No setuid program or file capability can raise vrrpd, or anything it runs, above this.
    nix::sys::prctl::set_no_new_privs().map_err(|e| fail("set no_new_privs")(e.to_string()))?;
    Ok(())
}

/// What an operator should hear when root starts vrrpd without `[global] user`: everything,
/// the HTTP parser and the AMQP relay included, then runs as root.
pub const ROOT_WITHOUT_USER: &str = "running as root: no [global] user is set, so the stats server, the AMQP \
     relay and every script run with root's privileges; set user = \"vrrpd\" (scripts/install.sh creates it)";
