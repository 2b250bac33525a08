//! The host side: what a Kata runtime sends the guest for a container whose image comes
//! from nydus-snapshotter as Kata virtual volumes.
//!
//! nydus-snapshotter returns one containerd mount of type `fuse.nydus-overlayfs` whose
//! options carry one `io.katacontainers.volume=` option per image or layer, top layer first.
//! A runtime hot-plugs each volume's image as a disk and sends the agent one `Storage` per
//! volume, naming the disk by its guest address, then an overlay `Storage` that makes the
//! container's rootfs. [`storages`] does that translation, given where each image was
//! hot-plugged ([`SourceMap`]), the container id ([`ContainerId`]) and the [`Convention`]:
//!
//! - [`Convention::Ccv0`], what the CCv0 runtime sends: a `dmverity` Storage for a verified
//!   volume (shape 2 of `docs/kata-runtime.md`), a block-driver Storage (`blk`, `scsi`,
//!   `mmioblk`, `nvdimm`, `blk-ccw`) for an unverified one, as upstream does;
//! - [`Convention::VirtualVolume`], this project's: the volume option itself (shape 1);
//!
//! then, for both, the `overlayfs` Storage (shape 3). Mount points are upstream's:
//! `/run/kata-containers/virtual-volumes/verity/<root hash>` for a verified volume (so the
//! same layer in two containers is one mount), `/run/kata-containers/virtual-volumes/<source
//! in URL-safe base64>` for an unverified one, `/run/kata-containers/<id>/rootfs` for the
//! rootfs, with its upper and work directories in
//! `/run/kata-containers/virtual-volumes/containers/<id>/{fs,work}`.
//!
//! Pure: it reads no file, asks no hypervisor and contacts no guest. Volumes are decoded by
//! the crate's own [`Volume::parse`](crate::volume::Volume::parse), addresses checked by
//! [`GuestAddress::parse`](crate::address::GuestAddress::parse). It must not send anything
//! (that is the client's `add_storages`) nor decide what the guest accepts (its policy).

mod container_id;
mod error;
mod mount;
mod source_map;
mod storages;

use std::fmt;
use std::str::FromStr;

pub use container_id::ContainerId;
pub use error::HostError;
pub use mount::{ContainerdMount, NYDUS_MOUNT_TYPE};
pub use source_map::{SourceMap, SourceMapEntry};
pub use storages::{CREATE_DIRECTORY_OPTION, GUEST_ROOT, VIRTUAL_VOLUMES_DIR, storages};

/// Which Storage shapes to send for the volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Convention {
    /// `ccv0`: the CCv0 runtime's `dmverity` (or block driver) Storages.
    #[default]
    Ccv0,
    /// `virtual-volume`: Storages carrying the `io.katacontainers.volume=` option.
    VirtualVolume,
}

impl Convention {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Convention::Ccv0 => "ccv0",
            Convention::VirtualVolume => "virtual-volume",
        }
    }
}

impl fmt::Display for Convention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Convention {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ccv0" => Ok(Convention::Ccv0),
            "virtual-volume" => Ok(Convention::VirtualVolume),
            _ => Err(HostError::UnknownConvention(
                crate::volume::truncate_for_error(s),
            )),
        }
    }
}
