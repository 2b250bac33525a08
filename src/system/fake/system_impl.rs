//! The fake's implementation of [`System`]: each call records itself, may be made to fail,
//! and acts on the in-memory model.

use std::path::{Path, PathBuf};

use std::time::Duration;

use nix::libc;

use crate::address::{AddressError, GuestAddress};

use super::super::{DmName, MountFlags};
use super::{
    DM_MAJOR, EXT4_SUPER_MAGIC, FUSE_SUPER_MAGIC, FakeDm, FakeSystem, LOOP_MAJOR, Op,
    PROC_SUPER_MAGIC, ROOT_MOUNT_ID, SYSFS_MAGIC, err, this_thread,
};
use crate::system::{
    BlockInfo, DevNum, DmDevice, FileInfo, FileKind, MountEntry, SysResult, System,
};
use crate::trust::{KeyDescription, RootHashSignature};
use crate::verity::units::{Bytes, SECTOR_SIZE};
use crate::verity::{Digest, VerityOption, VerityTable};

impl System for FakeSystem {
    fn dm_create(&self, name: &DmName) -> SysResult<DevNum> {
        let mut s = self.enter(Op::DmCreate, "create dm device", name)?;
        if s.dm.contains_key(name.as_str()) {
            return Err(err("create dm device", name, libc::EBUSY));
        }
        let dev = DevNum {
            major: DM_MAJOR,
            minor: s.next_dm_minor,
        };
        s.next_dm_minor += 1;
        s.dm.insert(
            name.as_str().to_owned(),
            FakeDm {
                dev,
                table: None,
                holds: None,
                active: false,
                deferred_remove: false,
            },
        );
        Ok(dev)
    }

    fn dm_load(&self, name: &DmName, table: &VerityTable) -> SysResult<()> {
        let mut s = self.enter(Op::DmLoad, "load verity table into", name)?;
        // As the kernel does: the devices must exist, and are reported as `major:minor`.
        let (Some(data), Some(hash)) = (
            s.device_of(&table.target.data_device),
            s.device_of(&table.target.hash_device),
        ) else {
            return Err(err("load verity table into", name, libc::ENODEV));
        };
        if !s.dm.contains_key(name.as_str()) {
            return Err(err("load verity table into", name, libc::ENXIO));
        }
        // As dm-verity does while it builds the target: the signature key must be in the
        // loading thread's keyrings, and the kernel must accept what it holds.
        let key = table.target.options.iter().find_map(|o| match o {
            VerityOption::RootHashSigKeyDesc(k) => Some(k.clone()),
            _ => None,
        });
        match key {
            Some(desc) => {
                let Some(payload) = s.keys.get(&(this_thread(), desc.clone())).cloned() else {
                    return Err(err("load verity table into", name, libc::ENOKEY));
                };
                s.signed_loads.push((desc, payload));
                if let Some(errno) = s.signature_verdict {
                    return Err(err("load verity table into", name, errno));
                }
            }
            None if s.require_signatures => {
                return Err(err("load verity table into", name, libc::ENOKEY));
            }
            None => {}
        }
        let mut reported = table.clone();
        reported.target.data_device = data.to_string();
        reported.target.hash_device = hash.to_string();
        if let Some(hex) = s.reported_root_hash.clone()
            && let Ok(d) = Digest::from_hex(reported.target.root_hash.algorithm(), &hex)
        {
            reported.target.root_hash = d;
        }
        let Some(d) = s.dm.get_mut(name.as_str()) else {
            return Err(err("load verity table into", name, libc::ENXIO));
        };
        d.table = Some(reported.to_string());
        d.holds = Some(data);
        Ok(())
    }

    fn dm_load_signed(
        &self,
        name: &DmName,
        table: &VerityTable,
        key: &KeyDescription,
        signature: &RootHashSignature,
    ) -> SysResult<()> {
        {
            let mut s = self.enter(
                Op::KeyAdd,
                "add the signature key to the thread keyring for",
                name,
            )?;
            s.keys.insert(
                (this_thread(), key.as_str().to_owned()),
                signature.der().to_vec(),
            );
        }
        let loaded = self.dm_load(name, table);
        let unlinked = self
            .enter(Op::KeyUnlink, "unlink the signature key of", name)
            .map(|mut s| {
                s.keys.remove(&(this_thread(), key.as_str().to_owned()));
            });
        loaded.and(unlinked)
    }

    fn dm_resume(&self, name: &DmName) -> SysResult<()> {
        let mut s = self.enter(Op::DmResume, "resume dm device", name)?;
        match s.dm.get_mut(name.as_str()) {
            Some(d) if d.table.is_some() => {
                d.active = true;
                Ok(())
            }
            Some(_) => Err(err("resume dm device", name, libc::EINVAL)),
            None => Err(err("resume dm device", name, libc::ENXIO)),
        }
    }

    fn dm_remove(&self, name: &DmName, deferred: bool) -> SysResult<()> {
        let mut s = self.enter(Op::DmRemove, "remove dm device", name)?;
        let Some(d) = s.dm.get(name.as_str()).cloned() else {
            return Err(err("remove dm device", name, libc::ENXIO));
        };
        if s.dev_in_use(d.dev) {
            if !deferred {
                return Err(err("remove dm device", name, libc::EBUSY));
            }
            if let Some(d) = s.dm.get_mut(name.as_str()) {
                d.deferred_remove = true;
            }
            return Ok(());
        }
        s.dm.remove(name.as_str());
        Ok(())
    }

    fn dm_table(&self, name: &DmName) -> SysResult<String> {
        let s = self.enter(Op::DmTable, "read table of", name)?;
        match s.dm.get(name.as_str()) {
            Some(FakeDm {
                table: Some(t),
                active: true,
                ..
            }) => Ok(t.clone()),
            Some(_) => Ok(String::new()),
            None => Err(err("read table of", name, libc::ENXIO)),
        }
    }

    fn dm_status(&self, name: &DmName) -> SysResult<String> {
        let s = self.enter(Op::DmStatus, "read status of", name)?;
        match s.dm.get(name.as_str()) {
            Some(d) if d.active => Ok(if s.corrupt.contains(name.as_str()) {
                "C"
            } else {
                "V"
            }
            .to_owned()),
            Some(_) => Ok(String::new()),
            None => Err(err("read status of", name, libc::ENXIO)),
        }
    }

    fn dm_list(&self) -> SysResult<Vec<DmDevice>> {
        let s = self.enter(Op::DmList, "list dm devices", &"")?;
        Ok(s.dm
            .iter()
            .map(|(n, d)| DmDevice {
                name: n.clone(),
                dev: d.dev,
            })
            .collect())
    }

    fn make_node(&self, path: &Path, dev: DevNum) -> SysResult<()> {
        let mut s = self.enter(Op::MakeNode, "create device node", &path.display())?;
        if s.nodes.contains_key(path) || s.files.contains_key(path) {
            return Err(err("create device node", path.display(), libc::EEXIST));
        }
        s.nodes.insert(path.to_owned(), dev);
        s.made_nodes.insert(path.to_owned());
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> SysResult<()> {
        let mut s = self.enter(Op::RemoveFile, "remove", &path.display())?;
        let had = s.nodes.remove(path).is_some() | s.files.remove(path).is_some();
        s.made_nodes.remove(path);
        if had {
            Ok(())
        } else {
            Err(err("remove", path.display(), libc::ENOENT))
        }
    }

    fn loop_attach(&self, file: &Path) -> SysResult<PathBuf> {
        let mut s = self.enter(Op::LoopAttach, "attach loop device to", &file.display())?;
        let Some(size) = s.files.get(file).copied() else {
            return Err(err("attach loop device to", file.display(), libc::ENOENT));
        };
        let n = s.next_loop;
        s.next_loop += 1;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = DevNum {
            major: LOOP_MAJOR,
            minor: n,
        };
        s.nodes.insert(path.clone(), dev);
        s.block_info.insert(
            dev,
            BlockInfo {
                size: Bytes(size),
                logical_block_size: Bytes(SECTOR_SIZE),
            },
        );
        s.loops.insert(path.clone(), (dev, file.to_owned()));
        Ok(path)
    }

    fn loop_detach(&self, device: &Path) -> SysResult<()> {
        let mut s = self.enter(Op::LoopDetach, "detach loop device", &device.display())?;
        match s.loops.remove(device) {
            Some((dev, _)) => {
                s.nodes.remove(device);
                s.block_info.remove(&dev);
                Ok(())
            }
            None => Err(err("detach loop device", device.display(), libc::ENXIO)),
        }
    }

    fn loop_release(&self, device: &Path) -> SysResult<()> {
        let s = self.enter(Op::LoopRelease, "release loop device", &device.display())?;
        if s.loops.contains_key(device) {
            Ok(())
        } else {
            Err(err("release loop device", device.display(), libc::ENXIO))
        }
    }

    fn loop_backing_file(&self, dev: DevNum) -> SysResult<Option<PathBuf>> {
        let s = self.enter(Op::LoopBackingFile, "read backing file of", &dev)?;
        Ok(s.loops
            .values()
            .find(|(d, _)| *d == dev)
            .map(|(_, f)| f.clone()))
    }

    fn mount(
        &self,
        source: &Path,
        target: &Path,
        fs_type: &str,
        flags: MountFlags,
        data: &str,
    ) -> SysResult<()> {
        let what = format!("{} on {}", source.display(), target.display());
        let mut s = self.enter(Op::Mount, "mount", &what)?;
        if !s.dirs.contains(target) {
            return Err(err("mount", what, libc::ENOENT));
        }
        let dev = if fs_type == "overlay" {
            // An overlay has no device: an anonymous one. Its directories must exist.
            let dirs = data
                .split(',')
                .filter_map(|o| o.split_once('='))
                .filter(|(k, _)| matches!(*k, "lowerdir" | "upperdir" | "workdir"))
                .flat_map(|(_, v)| v.split(':'));
            if dirs.clone().any(|d| !s.dirs.contains(Path::new(d))) {
                return Err(err("mount", what, libc::ENOENT));
            }
            s.next_anon += 1;
            DevNum {
                major: 0,
                minor: 100 + s.next_anon,
            }
        } else {
            let Some(dev) = s.nodes.get(source).copied() else {
                return Err(err("mount", what, libc::ENOENT));
            };
            dev
        };
        let failing =
            s.dm.iter()
                .find(|(n, d)| d.dev == dev && s.corrupt_on_read.contains(*n))
                .map(|(n, _)| n.clone());
        if let Some(name) = failing {
            s.corrupt.insert(name);
            return Err(err("mount", what, libc::EIO));
        }
        let options = if data.is_empty() {
            flags.to_string()
        } else {
            format!("{flags},{data}")
        };
        let id = ROOT_MOUNT_ID + 100 + s.next_mount_id;
        s.next_mount_id += 1;
        let parent = s.visible_mount(target).map_or(ROOT_MOUNT_ID, |m| m.id);
        s.mounts.push(MountEntry {
            id,
            parent,
            dev,
            target: target.to_owned(),
            fs_type: fs_type.to_owned(),
            source: source.display().to_string(),
            options,
            super_options: data.to_owned(),
        });
        Ok(())
    }

    fn unmount(&self, target: &Path) -> SysResult<()> {
        let mut s = self.enter(Op::Unmount, "unmount", &target.display())?;
        // As the kernel: the path is looked up, and must be the root of the mount it reaches
        // (a mount hidden by a later mount over an ancestor cannot be unmounted by path).
        let visible = s.visible_mount(target).map(|m| m.id);
        let Some(i) = s
            .mounts
            .iter()
            .rposition(|m| m.target == target && Some(m.id) == visible)
        else {
            return Err(err("unmount", target.display(), libc::EINVAL));
        };
        if s.mounts.iter().any(|m| m.parent == s.mounts[i].id) {
            return Err(err("unmount", target.display(), libc::EBUSY));
        }
        s.mounts.remove(i);
        s.reap_deferred();
        Ok(())
    }

    fn mounts(&self) -> SysResult<Vec<MountEntry>> {
        let s = self.enter(Op::Mounts, "read", &"/proc/self/mountinfo")?;
        Ok(s.mounts.clone())
    }

    fn stat(&self, path: &Path) -> SysResult<FileInfo> {
        let s = self.enter(Op::Stat, "stat", &path.display())?;
        let path = s
            .symlinks
            .get(path)
            .cloned()
            .unwrap_or_else(|| path.to_owned());
        s.info(&path, "stat")
    }

    fn fs_magic(&self, path: &Path) -> SysResult<u64> {
        let _s = self.enter(Op::FsMagic, "statfs", &path.display())?;
        // The fake's pseudo filesystems: /proc and /sys.
        Ok(if path.starts_with("/proc") {
            PROC_SUPER_MAGIC
        } else if path.components().any(|c| c.as_os_str() == "shared") {
            FUSE_SUPER_MAGIC
        } else if path.starts_with("/sys") {
            SYSFS_MAGIC
        } else {
            EXT4_SUPER_MAGIC
        })
    }

    fn mount_id(&self, path: &Path) -> SysResult<u64> {
        let s = self.enter(Op::MountId, "statx", &path.display())?;
        s.info(path, "statx")?;
        Ok(s.visible_mount(path).map_or(ROOT_MOUNT_ID, |m| m.id))
    }

    fn lstat(&self, path: &Path) -> SysResult<FileInfo> {
        let s = self.enter(Op::Lstat, "lstat", &path.display())?;
        if s.symlinks.contains_key(path) {
            return Ok(FileInfo {
                kind: FileKind::Symlink,
                dev: 1,
                ino: 0,
                size: 0,
            });
        }
        s.info(path, "lstat")
    }

    fn block_info(&self, dev: DevNum) -> SysResult<BlockInfo> {
        let s = self.enter(Op::BlockInfo, "read size of", &dev)?;
        s.block_info
            .get(&dev)
            .copied()
            .ok_or_else(|| err("read size of", dev, libc::ENOENT))
    }

    fn make_dir(&self, path: &Path) -> SysResult<bool> {
        let mut s = self.enter(Op::MakeDir, "create directory", &path.display())?;
        if s.dirs.contains(path) {
            return Ok(false);
        }
        if s.nodes.contains_key(path) || s.files.contains_key(path) {
            return Err(err("create directory", path.display(), libc::EEXIST));
        }
        s.dirs.insert(path.to_owned());
        Ok(true)
    }

    fn remove_tree(&self, path: &Path) -> SysResult<()> {
        let mut s = self.enter(Op::RemoveTree, "remove directory tree", &path.display())?;
        if s.mounts.iter().any(|m| m.target.starts_with(path)) {
            return Err(err("remove directory tree", path.display(), libc::EBUSY));
        }
        if !s.dirs.contains(path) {
            return Err(err("remove directory tree", path.display(), libc::ENOENT));
        }
        s.dirs.retain(|d| !d.starts_with(path));
        s.files.retain(|f, _| !f.starts_with(path));
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> SysResult<()> {
        let mut s = self.enter(Op::RemoveDir, "remove directory", &path.display())?;
        if s.mounts.iter().any(|m| m.target == path) {
            return Err(err("remove directory", path.display(), libc::EBUSY));
        }
        if s.dirs.iter().any(|d| d != path && d.starts_with(path)) {
            return Err(err("remove directory", path.display(), libc::ENOTEMPTY));
        }
        if s.dirs.remove(path) {
            Ok(())
        } else {
            Err(err("remove directory", path.display(), libc::ENOENT))
        }
    }

    fn find_disk(&self, addr: &GuestAddress, timeout: Duration) -> Result<PathBuf, AddressError> {
        let s = self
            .enter(Op::FindDisk, "find disk", &addr.describe())
            .map_err(|e| AddressError::Subscribe(e.source))?;
        if let GuestAddress::Path(p) = addr {
            return Ok(p.clone());
        }
        s.disks
            .get(&addr.to_string())
            .cloned()
            .ok_or_else(|| AddressError::Timeout {
                address: addr.describe(),
                timeout,
                last: "not plugged in the fake".into(),
            })
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> SysResult<Vec<u8>> {
        let s = self.enter(Op::ReadAt, "read", &path.display())?;
        let size = match s.nodes.get(path) {
            Some(dev) => s.block_info.get(dev).map_or(0, |b| b.size.0),
            None => *s
                .files
                .get(path)
                .ok_or_else(|| err("read", path.display(), libc::ENOENT))?,
        };
        let end = size.min(offset.saturating_add(u64::try_from(len).unwrap_or(u64::MAX)));
        let n = usize::try_from(end.saturating_sub(offset)).unwrap_or(0);
        let mut buf = vec![0u8; n];
        for (at, bytes) in s.contents.get(path).into_iter().flatten() {
            for (i, b) in bytes.iter().enumerate() {
                let pos = at + u64::try_from(i).unwrap_or(u64::MAX);
                if let Some(slot) = pos
                    .checked_sub(offset)
                    .and_then(|p| usize::try_from(p).ok())
                    .and_then(|p| buf.get_mut(p))
                {
                    *slot = *b;
                }
            }
        }
        Ok(buf)
    }

    fn read_device(&self, path: &Path) -> SysResult<u64> {
        let s = self.enter(Op::ReadDevice, "read", &path.display())?;
        let Some(dev) = s.nodes.get(path).copied() else {
            return Err(err("read", path.display(), libc::ENOENT));
        };
        if let Some((name, _)) = s.dm.iter().find(|(_, d)| d.dev == dev)
            && s.corrupt.contains(name)
        {
            return Err(err("read", path.display(), libc::EIO));
        }
        Ok(s.block_info.get(&dev).map(|b| b.size.0).unwrap_or(0))
    }
}
