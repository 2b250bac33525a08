//! Why a snapshotter mount could not be turned into Storage messages.

use crate::address::AddressError;
use crate::volume::{VolumeError, VolumeType};

/// Why a snapshotter mount, its source map or its container id was refused. Messages name
/// the field and the value; none repeats its source. Volumes are counted from 1, top layer
/// first, in the order of their options.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The mount is not a nydus-snapshotter mount for Kata.
    #[error("Unknown mount type {0:?}: expected fuse.nydus-overlayfs")]
    UnknownMountType(String),
    /// The convention is neither `ccv0` nor `virtual-volume`.
    #[error("Unknown convention {0:?}: expected ccv0 or virtual-volume")]
    UnknownConvention(String),
    /// The mount carries no volume option.
    #[error(
        "No io.katacontainers.volume option in the mount options: a nydus-snapshotter mount for \
         Kata carries one per image or layer"
    )]
    NoVolume,
    /// A mount option this translation does not know.
    #[error(
        "Unknown mount option {0:?}: expected io.katacontainers.volume=, lowerdir=, upperdir=, \
         workdir=, or an overlay option the runtime does not forward (index=, userxattr, \
         volatile, redirect_dir=, metacopy=, xino=, nfs_export=, uuid=, ro, rw, extraoption=)"
    )]
    UnknownOption(String),
    /// A known mount option with a bad value.
    #[error("Invalid mount option {option:?}: {why}")]
    InvalidOption {
        /// The option (shortened).
        option: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A volume option that does not decode or validate.
    #[error("Invalid volume option {index} (counting from the top layer)")]
    Volume {
        /// Which volume.
        index: usize,
        /// Why the volume was refused.
        #[source]
        source: VolumeError,
    },
    /// A volume that is not a raw block image or layer.
    #[error(
        "Volume {index} is {volume_type}: only image_raw_block and layer_raw_block volumes are \
         disks a runtime hot-plugs"
    )]
    NotALayer {
        /// Which volume.
        index: usize,
        /// Its type.
        volume_type: VolumeType,
    },
    /// An `image_guest_pull` volume: the agent pulls that image itself.
    #[error(
        "Volume {index} is image_guest_pull: the agent pulls that image in the guest, there is \
         no disk to send"
    )]
    GuestPull {
        /// Which volume.
        index: usize,
    },
    /// A volume whose host image has no guest address in the source map.
    #[error(
        "Volume {index} has source {path:?}, which is not in the source map: give its guest \
         address as HOST_PATH=ADDRESS"
    )]
    Unmapped {
        /// Which volume.
        index: usize,
        /// The volume's `source` (shortened).
        path: String,
    },
    /// Two volumes on one image.
    #[error("Volumes {first} and {second} have the same source {path:?}")]
    SameSource {
        /// The first volume.
        first: usize,
        /// The second volume.
        second: usize,
        /// The shared source (shortened).
        path: String,
    },
    /// Two volumes that would be mounted at one place (the same root hash).
    #[error(
        "Volumes {first} and {second} would both be mounted at {mount_point}: the overlay would \
         name one layer twice"
    )]
    SameMountPoint {
        /// The first volume.
        first: usize,
        /// The second volume.
        second: usize,
        /// The shared mount point.
        mount_point: String,
    },
    /// An unverified volume at a plain path under the ccv0 convention.
    #[error(
        "Volume {index} has no dm_verity and its disk is the plain path {path:?}: the ccv0 \
         convention names such a disk by its block driver, so give its bus too (e.g. \
         virtio_mmio:/dev/vdb)"
    )]
    UnverifiedPath {
        /// Which volume.
        index: usize,
        /// The guest path (shortened).
        path: String,
    },
    /// A source map entry that is not `HOST_PATH=ADDRESS`.
    #[error("Invalid source map entry {entry:?}: {why}")]
    MapEntry {
        /// The entry (shortened).
        entry: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A source map entry whose guest address is invalid.
    #[error("Invalid guest address in source map entry {entry:?}")]
    MapAddress {
        /// The entry (shortened).
        entry: String,
        /// Why the address was refused.
        #[source]
        source: AddressError,
    },
    /// A host path given twice in the source map.
    #[error("Source map gives {path:?} twice")]
    MapDuplicatePath {
        /// The host path (shortened).
        path: String,
    },
    /// Two host images at one guest address.
    #[error("Source map puts both {first:?} and {second:?} at guest address {address}")]
    MapDuplicateAddress {
        /// The first host path (shortened).
        first: String,
        /// The second host path (shortened).
        second: String,
        /// The address and its bus.
        address: String,
    },
    /// A container id that is not safe as a path component.
    #[error("Invalid container id {value:?}: {why}")]
    ContainerId {
        /// The id (shortened).
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The `verity_info` JSON could not be written (never expected).
    #[error("Cannot write verity_info of volume {index} as JSON: {why}")]
    VerityJson {
        /// Which volume.
        index: usize,
        /// What serde_json reported.
        why: String,
    },
}
