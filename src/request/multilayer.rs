//! Shape 4: Kata main's multi-layer erofs storages. Every Storage of a container's rootfs
//! carries `X-kata.multi-layer=true` and the rootfs as its `mount_point`; each `erofs` one is
//! a lower layer — the whole disk, or GPT partition `X-kata.partition-number=N` of it (lower
//! number = higher layer) — verified when `X-kata.dmverity-enabled=true` with the
//! `X-kata.dmverity.*` parameters. Each Storage is taken on its own: its layer is mounted and
//! the rootfs rebuilt over the container's layers so far. A writable `ext4` upper disk is not
//! mounted here: the rootfs gets a guest directory as its upper.

use std::path::PathBuf;

use super::volume::VolumeRequest;
use super::{RequestError, Storage};
use crate::address::{GuestAddress, SourceType};
use crate::verity::{RawVerity, Salt, VerityFormat, VerityParams, VerityVersion};
use crate::volume::{VolumeError, VolumeType, truncate_for_error};

/// One layer of a multi-layer rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiLayerRequest {
    /// The layer, mounted at the rootfs's private `lower-<N>` mount point.
    pub layer: VolumeRequest,
    /// Its place: the GPT partition number (lower = higher layer); 0 for a whole disk.
    pub partition: u32,
    /// The rootfs mount point (the Storage's own).
    pub rootfs: PathBuf,
}

fn bad(key: &str, value: &str, why: &'static str) -> RequestError {
    RequestError::Invalid {
        field: "options",
        value: truncate_for_error(&format!("{key}={value}")),
        why,
    }
}

/// The `X-kata.*` options of one Storage, read once.
#[derive(Default)]
struct Options {
    lower: bool,
    upper: bool,
    gpt: bool,
    partition: Option<u32>,
    dmverity: bool,
    verity: Vec<(String, String)>,
    mount: Vec<String>,
}

/// `true` or `false`, as Kata main writes them.
fn flag(key: &str, value: &str) -> Result<bool, RequestError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, value, "must be true or false")),
    }
}

fn options(storage: &Storage) -> Result<Options, RequestError> {
    let mut o = Options::default();
    let mut seen: Vec<&str> = Vec::new();
    for opt in &storage.options {
        let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
        if key.starts_with("X-kata.") && key != "X-kata.mkdir.path" {
            if seen.contains(&key) {
                return Err(bad(key, value, "is given twice: refused as ambiguous"));
            }
            seen.push(key);
        }
        match key {
            "X-kata.multi-layer" => {
                if !flag(key, value)? {
                    return Err(bad(key, value, "must be true on a multi-layer storage"));
                }
            }
            "X-kata.overlay-lower" => o.lower = true,
            "X-kata.overlay-upper" => o.upper = true,
            "X-kata.gpt-partitioned" => o.gpt = flag(key, value)?,
            "X-kata.partition-number" => {
                o.partition = Some(
                    value
                        .parse()
                        .map_err(|_| bad(key, value, "must be a partition number"))?,
                );
            }
            "X-kata.dmverity-enabled" => o.dmverity = flag(key, value)?,
            // Directories containerd asks for inside the upper: the rootfs's upper is a fresh
            // guest directory made here, so there is nothing to prepare.
            "X-kata.mkdir.path" => {}
            k if k.starts_with("X-kata.dmverity.") => {
                o.verity
                    .push((k["X-kata.dmverity.".len()..].to_owned(), value.to_owned()));
            }
            k if k.starts_with("X-kata.") => {
                return Err(RequestError::UnknownOption {
                    driver: "erofs.multi-layer",
                    field: "options",
                    value: truncate_for_error(opt),
                });
            }
            _ => o.mount.push(opt.clone()),
        }
    }
    Ok(o)
}

/// The verity parameters of `X-kata.dmverity.*`, with Kata main's defaults (4 KiB blocks,
/// sha256, format 1, a superblock unless `no-superblock=true`, the data ending where the
/// tree starts).
fn verity(pairs: &[(String, String)]) -> Result<VerityParams, RequestError> {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let number = |k: &'static str, default: u64| -> Result<u64, RequestError> {
        match get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| bad(k, v, "must be a number")),
        }
    };
    for (k, v) in pairs {
        if ![
            "roothash",
            "hashoffset",
            "blocksize",
            "hashsize",
            "algorithm",
            "salt",
            "no-superblock",
        ]
        .contains(&k.as_str())
        {
            return Err(bad(
                &format!("X-kata.dmverity.{k}"),
                v,
                "is not a dm-verity parameter",
            ));
        }
    }
    let hash = get("roothash").ok_or(RequestError::Missing {
        driver: "erofs.multi-layer",
        field: "options X-kata.dmverity.roothash=",
    })?;
    let blocksize = number("blocksize", 4096)?;
    let offset = number("hashoffset", 0)?;
    if offset == 0 || blocksize == 0 || offset % blocksize != 0 {
        return Err(bad(
            "X-kata.dmverity.hashoffset",
            &offset.to_string(),
            "must be a positive multiple of the block size",
        ));
    }
    let superblock = match get("no-superblock") {
        None | Some("false") => true,
        Some("true") => false,
        Some(v) => {
            return Err(bad(
                "X-kata.dmverity.no-superblock",
                v,
                "must be true or false",
            ));
        }
    };
    let salt = Salt::parse(get("salt").unwrap_or("-")).map_err(VolumeError::from)?;
    let raw = RawVerity {
        hashtype: get("algorithm").unwrap_or("sha256"),
        hash,
        blocknum: offset / blocksize,
        blocksize,
        hashsize: number("hashsize", 4096)?,
        offset,
    };
    let format = VerityFormat {
        version: VerityVersion::V1,
        salt,
        superblock,
    };
    Ok(VerityParams::with_format(&raw, format).map_err(VolumeError::from)?)
}

/// A multi-layer Storage.
pub(super) fn parse(storage: &Storage, rootfs: PathBuf) -> Result<MultiLayerRequest, RequestError> {
    let o = options(storage)?;
    if o.upper {
        return Err(RequestError::UnsupportedShape {
            driver: truncate_for_error(&storage.driver),
            why: "a writable upper disk (X-kata.overlay-upper) is not mounted here: the rootfs gets a guest directory as its upper",
        });
    }
    if !o.lower {
        return Err(RequestError::Missing {
            driver: "erofs.multi-layer",
            field: "options X-kata.overlay-lower",
        });
    }
    if !storage.fstype.is_empty() && storage.fstype != "erofs" {
        return Err(RequestError::FsTypeMismatch {
            fstype: truncate_for_error(&storage.fstype),
            volume: "erofs".into(),
        });
    }
    let partition = match (o.gpt, o.partition) {
        (true, Some(n)) if n > 0 => n,
        (true, _) => {
            return Err(RequestError::Missing {
                driver: "erofs.multi-layer",
                field: "options X-kata.partition-number= (1 or more)",
            });
        }
        (false, _) => 0,
    };
    let verity = match (o.dmverity, o.verity.first()) {
        (true, _) => Some(verity(&o.verity)?),
        (false, None) => None,
        // Never silently unverified: parameters without the switch are a mistake.
        (false, Some((k, v))) => {
            return Err(bad(
                &format!("X-kata.dmverity.{k}"),
                v,
                "is given without X-kata.dmverity-enabled=true",
            ));
        }
    };
    let source_type = SourceType::from_driver(&storage.driver).map(|t| t.as_str());
    let source = match source_type {
        Some(t) => GuestAddress::parse(Some(t), &storage.source)?,
        None => GuestAddress::Path(PathBuf::from(&storage.source)),
    };
    let layer = VolumeRequest {
        volume_type: VolumeType::LayerRawBlock,
        source,
        fs_type: "erofs".into(),
        options: o.mount,
        verity,
        mount_point: PathBuf::new(),
        partition: (partition > 0).then_some(partition),
        // Kata main's multi-layer options carry no root-hash signature: a policy that
        // requires one refuses these layers.
        root_hash_sig: None,
    };
    Ok(MultiLayerRequest {
        layer,
        partition,
        rootfs,
    })
}
