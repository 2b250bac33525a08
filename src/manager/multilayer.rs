//! Kata main's multi-layer erofs: each Storage is one layer of a container's rootfs. Its layer
//! is mounted at the rootfs's private `lower-<N>` mount point (owned by the rootfs: released
//! at once, it goes with the rootfs), then the rootfs overlay is (re)built over the
//! container's layers so far, lowest partition number on top, with a guest directory as its
//! upper. Removing the rootfs takes the layers along.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::overlay::overlay_keys;
use super::state::{Entry, Phase, StorageKind};
use super::{ManagerError, MountedVolume, VolumeManager};
use crate::apply;
use crate::request::{MultiLayerRequest, OverlayRequest, RequestError};

impl VolumeManager {
    pub(super) fn add_multilayer(
        &self,
        req: &MultiLayerRequest,
    ) -> Result<MountedVolume, ManagerError> {
        let dir = self.layers_dir(&req.rootfs)?;
        // One rootfs at a time: its layers and overlay change together.
        let group = format!("multilayer:{}", dir.display());
        let _held = self.locks.lock(&[&group]);
        self.finish_removal(&req.rootfs)?;
        let mut layer = req.layer.clone();
        layer.mount_point = dir.join(format!("lower-{}", req.partition));
        let fresh = self.entry_at(&layer.mount_point).is_none();
        self.add_volume(&layer)?;
        // Owned by the rootfs: released at once, it goes with the rootfs.
        if let Some(e) = self.entry_at(&layer.mount_point)
            && e.phase == Phase::Active
        {
            self.replace_entry(Entry {
                phase: Phase::Released,
                holders: 0,
                ..e
            })?;
        }
        let built = self.build_rootfs(req, &dir);
        if built.is_err() && fresh {
            // The request failed: what it added goes again (nothing else uses it).
            let _ = self.remove_path(&layer.mount_point);
        }
        built
    }

    /// Mounts the rootfs over the layers so far — checked against the kernel when they did
    /// not change, rebuilt when they did (the old overlay mounted again if the new one fails).
    fn build_rootfs(
        &self,
        req: &MultiLayerRequest,
        dir: &Path,
    ) -> Result<MountedVolume, ManagerError> {
        let upper = dir.join("upper");
        let (u, w) = (upper.join("upper"), upper.join("work"));
        let overlay = OverlayRequest {
            lowers: self.group_layers(dir),
            upper: Some((u.clone(), w.clone())),
            create: vec![u, w],
            mount_point: req.rootfs.clone(),
        };
        let keys = overlay_keys(&overlay);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let _held = self.locks.lock(&keys);
        let Some(old) = self.entry_at(&req.rootfs) else {
            return self.add_overlay_locked(&overlay, false);
        };
        if old.kind != StorageKind::Overlay {
            return Err(self.conflict(&old));
        }
        if old.lowers == overlay.lowers {
            return self.add_overlay_locked(&overlay, false);
        }
        self.rebuild(old, &overlay)
    }

    /// Replaces a rootfs overlay by one over more layers: both planned before anything
    /// changes; the old one is mounted again when the new one fails.
    fn rebuild(&self, old: Entry, overlay: &OverlayRequest) -> Result<MountedVolume, ManagerError> {
        let new_plan = self.plan_overlay(overlay)?;
        let old_plan = self.plan_overlay(&OverlayRequest {
            lowers: old.lowers.clone(),
            ..overlay.clone()
        })?;
        apply::teardown_overlay(
            self.sys.as_ref(),
            &old.mount_point,
            old.mounted_device,
            &[],
            &[],
        )?;
        match apply::apply_overlay(self.sys.as_ref(), &new_plan) {
            Ok(applied) => {
                let updated = Entry {
                    lowers: new_plan.lowers.clone(),
                    mounted_device: applied.mounted_dev,
                    ..old
                };
                self.replace_entry(updated.clone())?;
                let state = self.state();
                Ok(self.mounted(&state, &updated, false))
            }
            Err(e) => {
                if let Ok(again) = apply::apply_overlay(self.sys.as_ref(), &old_plan) {
                    let _ = self.replace_entry(Entry {
                        mounted_device: again.mounted_dev,
                        ..old
                    });
                }
                Err(e.into())
            }
        }
    }

    /// Where a rootfs's layers are mounted: `<mount root>/multi-layer/<container>-<digest>`,
    /// the container named by the rootfs's parent directory (`…/<container>/rootfs`, the
    /// agent's container id rule: letters, digits, `_`, `.`, `-`), the digest (of the whole
    /// rootfs path) telling apart two rootfs of containers with the same name.
    fn layers_dir(&self, rootfs: &Path) -> Result<PathBuf, ManagerError> {
        let bad = || {
            ManagerError::Request(RequestError::Invalid {
                field: "mount_point",
                value: crate::volume::truncate_for_error(&rootfs.to_string_lossy()),
                why: "a multi-layer rootfs must be <dir>/<container id>/rootfs, the container \
                      id made of letters, digits, '_', '.' and '-'",
            })
        };
        let container = rootfs
            .parent()
            .and_then(Path::file_name)
            .and_then(|c| c.to_str())
            .filter(|c| {
                c.len() <= 64
                    && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            })
            .ok_or_else(bad)?;
        let digest = Sha256::digest(rootfs.as_os_str().as_encoded_bytes());
        let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Ok(self
            .policy
            .mount_root
            .join("multi-layer")
            .join(format!("{container}-{short}")))
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
}
