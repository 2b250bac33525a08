//! Kata main's multi-layer erofs: each Storage is one layer of a container's rootfs. Its layer
//! is mounted at the rootfs's private `lower-<N>` mount point (owned by the rootfs: released
//! at once, it goes with the rootfs), then the rootfs overlay is (re)built over the
//! container's layers so far, lowest partition number on top, with a guest directory as its
//! upper. Removing the rootfs takes the layers along.

use std::path::{Path, PathBuf};

use super::state::{Entry, Phase, StorageKind};
use super::{ManagerError, MountedVolume, VolumeManager, mount_key};
use crate::apply;
use crate::request::{MultiLayerRequest, OverlayRequest, RequestError};

impl VolumeManager {
    pub(super) fn add_multilayer(
        &self,
        req: &MultiLayerRequest,
    ) -> Result<MountedVolume, ManagerError> {
        // One rootfs at a time: its layers and overlay change together.
        let group = format!("multilayer:{}", req.rootfs.display());
        let _held = self.locks.lock(&[&group]);
        let dir = self.layers_dir(&req.rootfs)?;
        let mut layer = req.layer.clone();
        layer.mount_point = dir.join(format!("lower-{}", req.partition));
        self.add_volume(&layer)?;
        if let Some(e) = self.entry_at(&layer.mount_point)
            && e.phase == Phase::Active
        {
            self.replace_entry(Entry {
                phase: Phase::Released,
                ..e
            })?;
        }
        let lowers = self.group_layers(&dir);
        let mut before = None;
        if let Some(overlay) = self.entry_at(&req.rootfs) {
            if overlay.kind != StorageKind::Overlay {
                return Err(ManagerError::Conflict {
                    mount_point: req.rootfs.clone(),
                    existing: overlay.source,
                });
            }
            if overlay.lowers == lowers {
                let state = self.state();
                return Ok(self.mounted(&state, &overlay, true));
            }
            self.unmount_overlay_only(&overlay)?;
            before = Some(overlay);
        }
        let upper = dir.join("upper");
        let (u, w) = (upper.join("upper"), upper.join("work"));
        let mounted = self.add_overlay(&OverlayRequest {
            lowers,
            upper: Some((u.clone(), w.clone())),
            create: vec![u, w],
            mount_point: req.rootfs.clone(),
        })?;
        // The rebuilt overlay owns what the first one made (directories, its upper).
        if let (Some(old), Some(new)) = (before, self.entry_at(&req.rootfs)) {
            let mut created = old.created_dirs;
            created.extend(
                new.created_dirs
                    .iter()
                    .filter(|d| !created.contains(d))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            let mut trees = old.trees;
            trees.extend(
                new.trees
                    .iter()
                    .filter(|d| !trees.contains(d))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            self.replace_entry(Entry {
                created_dirs: created,
                trees,
                ..new
            })?;
        }
        Ok(mounted)
    }

    /// Where a rootfs's layers are mounted: `<mount root>/multi-layer/<container>`, the
    /// container named by the rootfs's parent directory (`…/<container>/rootfs`).
    fn layers_dir(&self, rootfs: &Path) -> Result<PathBuf, ManagerError> {
        let container = rootfs.parent().and_then(Path::file_name).ok_or_else(|| {
            ManagerError::Request(RequestError::Invalid {
                field: "mount_point",
                value: crate::volume::truncate_for_error(&rootfs.to_string_lossy()),
                why: "a multi-layer rootfs must be <dir>/<container>/rootfs",
            })
        })?;
        Ok(self.policy.mount_root.join("multi-layer").join(container))
    }

    /// The layers mounted for a rootfs so far, lowest partition number first.
    fn group_layers(&self, dir: &Path) -> Vec<PathBuf> {
        let mut layers: Vec<(u32, PathBuf)> = self
            .state()
            .entries
            .iter()
            .filter(|e| e.kind != StorageKind::Overlay && e.mount_point.parent() == Some(dir))
            .filter_map(|e| {
                let name = e.mount_point.file_name()?.to_str()?;
                let n = name.strip_prefix("lower-")?.parse().ok()?;
                Some((n, e.mount_point.clone()))
            })
            .collect();
        layers.sort();
        layers.into_iter().map(|(_, p)| p).collect()
    }

    /// Takes a rootfs overlay down to rebuild it with more layers: its layers stay.
    fn unmount_overlay_only(&self, overlay: &Entry) -> Result<(), ManagerError> {
        let keys = [overlay.key.clone(), mount_key(&overlay.mount_point)];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let _held = self.locks.lock(&keys);
        apply::teardown_overlay(
            self.sys.as_ref(),
            &overlay.mount_point,
            overlay.mounted_device,
            &[],
            &[],
        )?;
        self.forget(&overlay.mount_point, &[])
    }
}
