//! A mount point held open while it is mounted on, so that the mount lands on the directory
//! that was checked, whatever happens to its path meanwhile.
//!
//! The path is checked component by component before the mount (no symlinks, nothing the
//! host can change), but a guest process could still swap a component between that walk and
//! `mount(2)`. So the directory is opened (`O_PATH`, not following a final symlink), the
//! kernel is asked where the opened directory really is (`/proc/thread-self/fd/N`), and that must be
//! exactly the path asked for; the mount then goes through `/proc/thread-self/fd/N`, which names
//! the opened directory itself, not a path to look up again.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{SysError, SysResult};

/// An open mount point whose real path was checked.
#[derive(Debug)]
pub(super) struct PinnedDir {
    fd: OwnedFd,
}

impl PinnedDir {
    /// Opens the directory `path` and checks that it is really there: no symlink on the way,
    /// not moved. `path` must be absolute and normal (no `.`, `..` or repeated `/`).
    pub(super) fn open(path: &Path) -> SysResult<Self> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(path, flags, Mode::empty())
            .map_err(|e| SysError::new("open mount point", path.display(), io::Error::from(e)))?;
        let pinned = Self { fd };
        let real = std::fs::read_link(pinned.proc_path())
            .map_err(|e| SysError::new("resolve mount point", path.display(), e))?;
        if real != path {
            return Err(SysError::new(
                "open mount point",
                path.display(),
                io::Error::other(format!(
                    "it resolves to {}: a symlink on its path, or it was moved",
                    real.display()
                )),
            ));
        }
        Ok(pinned)
    }

    /// The path naming the opened directory itself, for `mount(2)`.
    pub(super) fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/thread-self/fd/{}", self.fd.as_raw_fd()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        // The temporary directory's own path may pass through a symlink (e.g. /tmp).
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("real/mp")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("real/mp"), root.join("real/mplink")).unwrap();
        std::fs::write(root.join("real/file"), b"x").unwrap();
        (dir, root)
    }

    #[test]
    fn a_real_directory_is_pinned_and_its_proc_path_names_it() {
        let (_dir, root) = setup();
        let mp = root.join("real/mp");
        let pinned = PinnedDir::open(&mp).unwrap();
        assert_eq!(std::fs::read_link(pinned.proc_path()).unwrap(), mp);
    }

    #[test]
    fn a_symlink_anywhere_on_the_path_is_refused() {
        let (_dir, root) = setup();
        let e = PinnedDir::open(&root.join("link/mp")).unwrap_err();
        assert!(
            e.source.to_string().contains("a symlink on its path"),
            "{e}: {}",
            e.source
        );
        assert!(PinnedDir::open(&root.join("real/mplink")).is_err());
    }

    #[test]
    fn files_and_missing_paths_are_refused() {
        let (_dir, root) = setup();
        assert!(PinnedDir::open(&root.join("real/file")).is_err());
        let e = PinnedDir::open(&root.join("real/missing")).unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }

    #[test]
    fn a_path_other_than_the_real_one_is_refused() {
        let (_dir, root) = setup();
        let e = PinnedDir::open(&root.join("real/mp/../mp")).unwrap_err();
        assert!(
            e.source.to_string().contains("resolves to"),
            "{e}: {}",
            e.source
        );
    }
}
