//! The container rootfs: what an overlay may be built from. Every lower layer must be the
//! mount point of a verified volume this manager mounted (unless the policy allows unverified
//! volumes, when any directory under the mount root will do); the rootfs and its upper and
//! work directories lie under the mount root. Pure: what is mounted where is given.

use std::path::{Path, PathBuf};

use super::{Policy, PolicyError};
use crate::request::OverlayRequest;
use crate::system::{DevNum, MountFlags, MountSpec};
use crate::volume::shown;

/// What the manager knows of a lower layer's mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// One of its volumes, verified by dm-verity, mounted on this device.
    Verified(Option<DevNum>),
    /// One of its volumes, not verified, mounted on this device.
    Unverified(Option<DevNum>),
    /// Not one of its volumes.
    Unknown,
}

/// An overlay the policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedOverlay {
    /// Lower layers, top first.
    pub lowers: Vec<PathBuf>,
    /// The device each lower's mount must be on (its volume's), when it is one of ours:
    /// `resolve` checks the kernel shows just that there, nothing mounted over it.
    pub lower_devices: Vec<Option<DevNum>>,
    /// Upper and work directories.
    pub upper: Option<(PathBuf, PathBuf)>,
    /// Directories to create (upper, work).
    pub create: Vec<PathBuf>,
    /// The rootfs.
    pub mount_point: PathBuf,
    /// The mount root all of them lie in.
    pub mount_root: PathBuf,
    /// The overlay mount: `overlay` with its `lowerdir`/`upperdir`/`workdir`.
    pub mount: MountSpec,
}

impl Policy {
    /// Checks an overlay: every directory inside the mount root, every lower a verified
    /// volume of ours (`layer_of` says what each is) unless unverified volumes are allowed.
    pub fn authorize_overlay(
        &self,
        req: &OverlayRequest,
        layer_of: &dyn Fn(&Path) -> Layer,
    ) -> Result<AuthorizedOverlay, PolicyError> {
        self.check_mount_point(&req.mount_point)?;
        let dirs = req
            .lowers
            .iter()
            .chain(req.upper.iter().flat_map(|(u, w)| [u, w]));
        for d in dirs {
            self.check_mount_point(d)?;
            // However the request was built (a multi-layer rootfs names its own layers), no
            // path reaches the kernel's option parser with a separator or escape in it.
            if d.to_string_lossy().contains([':', ',', '\\']) {
                return Err(PolicyError::OverlayPath(shown(d)));
            }
        }
        let mut lower_devices = Vec::new();
        for lower in &req.lowers {
            lower_devices.push(match layer_of(lower) {
                Layer::Verified(dev) => dev,
                Layer::Unverified(dev) if self.allow_unverified => dev,
                Layer::Unknown if self.allow_unverified => None,
                Layer::Unverified(_) => return Err(PolicyError::UnverifiedLayer(shown(lower))),
                Layer::Unknown => return Err(PolicyError::UnknownLayer(shown(lower))),
            });
        }
        let lowers = req
            .lowers
            .iter()
            .map(|l| l.to_string_lossy())
            .collect::<Vec<_>>()
            .join(":");
        let data = match &req.upper {
            Some((u, w)) => format!(
                "lowerdir={lowers},upperdir={},workdir={}",
                u.display(),
                w.display()
            ),
            None => format!("lowerdir={lowers}"),
        };
        let flags = MountFlags {
            // Without an upper directory the rootfs is read-only.
            read_only: req.upper.is_none(),
            ..MountFlags::default()
        };
        Ok(AuthorizedOverlay {
            lowers: req.lowers.clone(),
            lower_devices,
            upper: req.upper.clone(),
            create: req.create.clone(),
            mount_point: req.mount_point.clone(),
            mount_root: self.mount_root.clone(),
            mount: MountSpec {
                fs_type: "overlay".into(),
                flags,
                data,
            },
        })
    }
}
