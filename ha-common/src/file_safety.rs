//! Whether anyone but root could change a file vrrpd trusts: a script it runs as root
//! (keepalived's `enable_script_security`), or a file it reads a password from.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The first path on the way to `path` that someone other than root could modify: a file or
/// directory owned by another user, group-writable by a non-root group, or world-writable (a
/// sticky directory such as /tmp excepted: others cannot replace root's entries in it). Every
/// component is checked as written and every symlink's target after it, so what is checked is
/// what runs. A path that cannot be read counts as unsafe.
pub fn modifiable_by_others(path: &Path) -> Option<PathBuf> {
    modifiable_along(path, 0)
}

/// Symlink chains longer than this are refused, as the kernel refuses them (ELOOP).
const MAX_SYMLINKS: usize = 40;

fn modifiable_along(path: &Path, links: usize) -> Option<PathBuf> {
    if links > MAX_SYMLINKS {
        return Some(path.to_owned());
    }
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        match std::env::current_dir() {
            Ok(dir) => dir.join(path),
            Err(_) => return Some(path.to_owned()),
        }
    };
    let mut current = PathBuf::from("/");
    if unsafe_entry(&current) {
        return Some(current);
    }
    for component in absolute.components().skip(1) {
        current.push(component);
        let Ok(meta) = current.symlink_metadata() else { return Some(current) };
        if meta.file_type().is_symlink() {
            // Its directory was checked above; now the target, and whatever it resolves through.
            let Ok(target) = std::fs::read_link(&current) else { return Some(current) };
            let target = current.parent().map_or(target.clone(), |dir| dir.join(&target));
            if let Some(bad) = modifiable_along(&target, links + 1) {
                return Some(bad);
            }
            current = match current.canonicalize() {
                Ok(resolved) => resolved,
                Err(_) => return Some(current),
            };
        } else if unsafe_entry(&current) {
            return Some(current);
        }
    }
    None
}

fn unsafe_entry(path: &Path) -> bool {
    let Ok(meta) = path.metadata() else { return true };
    let mode = meta.mode();
    let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
    meta.uid() != 0 || (mode & 0o020 != 0 && meta.gid() != 0) || (mode & 0o002 != 0 && !sticky_dir)
}
