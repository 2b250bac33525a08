//! The translation proper: each volume of the mount → its Storage (shape 2, or a block
//! driver for an unverified volume, under `ccv0`; shape 1 under `virtual-volume`), then the
//! overlay (shape 3), as `docs/kata-runtime.md` defines them. Pure.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;

use super::mount::{ContainerdMount, Layer, layers};
use super::{ContainerId, Convention, HostError, SourceMap};
use crate::address::{GuestAddress, SourceType};
use crate::request::{ROOT_HASH_SIG_OPTION, Storage};
use crate::volume::{truncate_for_error, verity_info};

/// The guest directory under which a Kata runtime puts everything it asks the agent to mount.
pub const GUEST_ROOT: &str = "/run/kata-containers";
/// Where the CCv0 runtime mounts virtual volumes, and keeps each container's upper and work
/// directories (`containers/<id>/fs`, `containers/<id>/work`).
pub const VIRTUAL_VOLUMES_DIR: &str = "/run/kata-containers/virtual-volumes";
/// The driver option that asks the guest to create a directory for the overlay.
pub const CREATE_DIRECTORY_OPTION: &str = "io.katacontainers.volume.overlayfs.create_directory";

/// The Storage messages a Kata runtime sends for a snapshotter mount: one per volume, top
/// layer first, then the overlay that makes the container's rootfs at
/// `/run/kata-containers/<container id>/rootfs`.
pub fn storages(
    mount: &ContainerdMount,
    container_id: &ContainerId,
    map: &SourceMap,
    convention: Convention,
) -> Result<Vec<Storage>, HostError> {
    let layers = layers(mount)?;
    let mut out = Vec::with_capacity(layers.len() + 1);
    let mut by_source: HashMap<&str, usize> = HashMap::new();
    let mut by_mount_point: HashMap<String, usize> = HashMap::new();
    for layer in &layers {
        let source = layer.volume.source.as_str();
        if let Some(first) = by_source.insert(source, layer.index) {
            return Err(HostError::SameSource {
                first,
                second: layer.index,
                path: truncate_for_error(source),
            });
        }
        let address = map.get(source).ok_or_else(|| HostError::Unmapped {
            index: layer.index,
            path: truncate_for_error(source),
        })?;
        let storage = match convention {
            Convention::Ccv0 => ccv0(layer, address)?,
            Convention::VirtualVolume => virtual_volume(layer, address),
        };
        if let Some(first) = by_mount_point.insert(storage.mount_point.clone(), layer.index) {
            return Err(HostError::SameMountPoint {
                first,
                second: layer.index,
                mount_point: storage.mount_point,
            });
        }
        out.push(storage);
    }
    let lowers: Vec<&str> = out.iter().map(|s| s.mount_point.as_str()).collect();
    let overlay = overlay(&lowers, container_id);
    out.push(overlay);
    Ok(out)
}

/// Shape 2 (`dmverity`) for a verified volume; a block driver Storage for an unverified one,
/// as the CCv0 runtime sends them.
fn ccv0(layer: &Layer, address: &GuestAddress) -> Result<Storage, HostError> {
    let v = &layer.volume;
    let Some(params) = &v.verity else {
        let Some(source_type) = address.source_type() else {
            return Err(HostError::UnverifiedPath {
                index: layer.index,
                path: truncate_for_error(&address.to_string()),
            });
        };
        let mut options = Vec::with_capacity(v.options.len() + 1);
        if source_type == SourceType::Pmem {
            options.push("dax".to_owned());
        }
        options.extend(v.options.iter().cloned());
        let source = address.to_string();
        return Ok(Storage {
            driver: block_driver(source_type).to_owned(),
            driver_options: Vec::new(),
            mount_point: unverified_mount_point(&source),
            source,
            fstype: v.fs_type.clone(),
            options,
        });
    };
    let json = serde_json::to_string(&verity_info(params)).map_err(|e| HostError::VerityJson {
        index: layer.index,
        why: e.to_string(),
    })?;
    let mut driver_options = vec![format!("verity_info={json}")];
    driver_options.extend(source_type_option(address));
    // The volume's signature travels as the driver option (verity_info keeps Kata's fields).
    driver_options.extend(
        v.root_hash_sig
            .as_ref()
            .map(|sig| format!("{ROOT_HASH_SIG_OPTION}={sig}")),
    );
    let mut options = Vec::with_capacity(v.options.len() + 1);
    options.push("ro".to_owned());
    options.extend(v.options.iter().cloned());
    Ok(Storage {
        driver: "dmverity".to_owned(),
        driver_options,
        source: address.to_string(),
        fstype: v.fs_type.clone(),
        options,
        mount_point: verity_mount_point(&params.root_hash().to_hex()),
    })
}

/// Shape 1: the volume option itself, the disk by its guest address.
fn virtual_volume(layer: &Layer, address: &GuestAddress) -> Storage {
    let source = address.to_string();
    let mount_point = match &layer.volume.verity {
        Some(p) => verity_mount_point(&p.root_hash().to_hex()),
        None => unverified_mount_point(&source),
    };
    Storage {
        driver: address
            .source_type()
            .map(block_driver)
            .unwrap_or_default()
            .to_owned(),
        driver_options: source_type_option(address).into_iter().collect(),
        source,
        fstype: layer.volume.fs_type.clone(),
        options: vec![layer.option.clone()],
        mount_point,
    }
}

/// Shape 3: the rootfs over the volumes' mount points, top first.
fn overlay(lowers: &[&str], id: &ContainerId) -> Storage {
    let upper = format!("{VIRTUAL_VOLUMES_DIR}/containers/{id}/fs");
    let work = format!("{VIRTUAL_VOLUMES_DIR}/containers/{id}/work");
    let mut options: Vec<String> = lowers.iter().map(|l| format!("lowerdir={l}")).collect();
    options.push(format!("upperdir={upper}"));
    options.push(format!("workdir={work}"));
    Storage {
        driver: "overlayfs".to_owned(),
        driver_options: vec![
            format!("{CREATE_DIRECTORY_OPTION}={upper}"),
            format!("{CREATE_DIRECTORY_OPTION}={work}"),
        ],
        source: "overlay".to_owned(),
        fstype: "overlay".to_owned(),
        options,
        mount_point: format!("{GUEST_ROOT}/{id}/rootfs"),
    }
}

/// Upstream's mount point for a verified volume: the same layer, the same place.
fn verity_mount_point(root_hash: &str) -> String {
    format!("{VIRTUAL_VOLUMES_DIR}/verity/{root_hash}")
}

/// Upstream's mount point for an unverified volume: the Storage's `source` in URL-safe,
/// padded base64 (one path component: no `/`).
fn unverified_mount_point(source: &str) -> String {
    format!("{VIRTUAL_VOLUMES_DIR}/{}", URL_SAFE.encode(source))
}

fn source_type_option(address: &GuestAddress) -> Option<String> {
    address.source_type().map(|t| format!("source_type={t}"))
}

/// The Kata block driver of a bus (the inverse of [`SourceType::from_driver`]).
fn block_driver(t: SourceType) -> &'static str {
    match t {
        SourceType::VirtioPci => "blk",
        SourceType::Scsi => "scsi",
        SourceType::VirtioMmio => "mmioblk",
        SourceType::Pmem => "nvdimm",
        SourceType::VirtioCcw => "blk-ccw",
    }
}
