//! The wire format: `KataVirtualVolume` exactly as the host's Go code encodes it (field names,
//! `omitempty`), and a decoder that accepts everything Go's encoder emits.
//!
//! Decisions on what Go's *decoder* tolerates (documented in the README, tested below):
//! - field names match case-insensitively, with Go's folding (`Source`, `SOURCE`, and even
//!   `ſource` with U+017F match `source`), because the host side may be another Go program;
//! - unknown fields are ignored (newer hosts may add fields);
//! - `null` is the field's empty value, as in Go;
//! - **stricter than Go**: a field given twice (in any spelling) is refused, where Go silently
//!   keeps the last one — two parsers reading different values is how validation is bypassed;
//!   so are duplicate keys inside `metadata` maps. Numbers must be unsigned integers that fit
//!   in 64 bits, as Go's `uint64` requires.

use std::collections::BTreeMap;

use serde::Serialize;

use super::VolumeError;
use super::json::Json;

/// The `dm_verity` object: parameters of the hash tree, in the host's units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DmVerityInfo {
    /// `sha256` or `sha1` (any case).
    pub hashtype: String,
    /// Root hash, hex.
    pub hash: String,
    /// Number of data blocks.
    pub blocknum: u64,
    /// Data block size in bytes.
    pub blocksize: u64,
    /// Hash block size in bytes.
    pub hashsize: u64,
    /// Byte offset of the hash tree.
    pub offset: u64,
}

/// `direct_volume`: metadata of a directly assigned volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectAssignedVolume {
    /// Free-form metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// `image_pull`: metadata for pulling the image inside the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImagePullVolume {
    /// Free-form metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// `nydus_image`: nydus configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NydusImageVolume {
    /// Nydus daemon configuration.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub config: String,
    /// Snapshot directory.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub snapshot_dir: String,
}

/// A Kata virtual volume as it travels on the wire (Go field names, Go `omitempty`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KataVirtualVolume {
    /// One of the eight volume types.
    pub volume_type: String,
    /// Source device or path.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Filesystem type.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fs_type: String,
    /// Mount options.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Direct-assigned volume metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direct_volume: Option<DirectAssignedVolume>,
    /// Guest image-pull metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull: Option<ImagePullVolume>,
    /// Nydus image configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nydus_image: Option<NydusImageVolume>,
    /// dm-verity parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dm_verity: Option<DmVerityInfo>,
}

impl KataVirtualVolume {
    /// Parses JSON text with the rules in the module documentation.
    pub fn from_json_str(text: &str) -> Result<Self, VolumeError> {
        let json: Json =
            serde_json::from_str(text).map_err(|e| VolumeError::Json(e.to_string()))?;
        Self::from_json(&json)
    }

    /// Compact JSON, as Go's `json.Marshal` would write it (same names, same omissions).
    pub fn to_json(&self) -> String {
        // Serializing plain strings, integers and maps of strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    fn from_json(v: &Json) -> Result<Self, VolumeError> {
        let mut f = Fields::new(
            "",
            v,
            &[
                "volume_type",
                "source",
                "fs_type",
                "options",
                "direct_volume",
                "image_pull",
                "nydus_image",
                "dm_verity",
            ],
        )?;
        Ok(Self {
            volume_type: f.string("volume_type")?,
            source: f.string("source")?,
            fs_type: f.string("fs_type")?,
            options: f.strings("options")?,
            direct_volume: f
                .object("direct_volume", &["metadata"])?
                .map(|mut d| {
                    d.map("metadata")
                        .map(|metadata| DirectAssignedVolume { metadata })
                })
                .transpose()?,
            image_pull: f
                .object("image_pull", &["metadata"])?
                .map(|mut d| {
                    d.map("metadata")
                        .map(|metadata| ImagePullVolume { metadata })
                })
                .transpose()?,
            nydus_image: f
                .object("nydus_image", &["config", "snapshot_dir"])?
                .map(|mut d| -> Result<_, VolumeError> {
                    Ok(NydusImageVolume {
                        config: d.string("config")?,
                        snapshot_dir: d.string("snapshot_dir")?,
                    })
                })
                .transpose()?,
            dm_verity: f
                .object(
                    "dm_verity",
                    &[
                        "hashtype",
                        "hash",
                        "blocknum",
                        "blocksize",
                        "hashsize",
                        "offset",
                    ],
                )?
                .map(|mut d| -> Result<_, VolumeError> {
                    Ok(DmVerityInfo {
                        hashtype: d.string("hashtype")?,
                        hash: d.string("hash")?,
                        blocknum: d.u64("blocknum")?,
                        blocksize: d.u64("blocksize")?,
                        hashsize: d.u64("hashsize")?,
                        offset: d.u64("offset")?,
                    })
                })
                .transpose()?,
        })
    }
}

/// Folds a key as Go's `encoding/json` does for field matching (simple Unicode folding; the
/// only non-ASCII letters that fold onto ASCII are U+017F → s and U+212A → k).
fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{017F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The known members of one JSON object, matched to their field names.
struct Fields<'a> {
    path: String,
    found: BTreeMap<&'static str, &'a Json>,
}

impl<'a> Fields<'a> {
    fn new(path: &str, v: &'a Json, known: &[&'static str]) -> Result<Self, VolumeError> {
        let mut found = BTreeMap::new();
        match v {
            Json::Null => {}
            Json::Object(members) => {
                for (key, value) in members {
                    let folded = fold(key);
                    if let Some(name) = known.iter().find(|k| **k == folded)
                        && found.insert(*name, value).is_some()
                    {
                        return Err(VolumeError::DuplicateField(join(path, name)));
                    }
                }
            }
            other => {
                return Err(VolumeError::FieldType {
                    field: if path.is_empty() {
                        "volume".into()
                    } else {
                        path.into()
                    },
                    expected: "an object",
                    found: other.kind(),
                });
            }
        }
        Ok(Self {
            path: path.to_owned(),
            found,
        })
    }

    fn take(&mut self, name: &'static str) -> (String, Option<&'a Json>) {
        (join(&self.path, name), self.found.remove(name))
    }

    fn string(&mut self, name: &'static str) -> Result<String, VolumeError> {
        let (field, v) = self.take(name);
        as_string(field, v)
    }

    fn u64(&mut self, name: &'static str) -> Result<u64, VolumeError> {
        match self.take(name) {
            (_, None | Some(Json::Null)) => Ok(0),
            (field, Some(Json::Number(n))) => n.as_u64().ok_or_else(|| VolumeError::Number {
                field,
                value: n.to_string(),
            }),
            (field, Some(other)) => Err(VolumeError::FieldType {
                field,
                expected: "an unsigned integer",
                found: other.kind(),
            }),
        }
    }

    fn strings(&mut self, name: &'static str) -> Result<Vec<String>, VolumeError> {
        match self.take(name) {
            (_, None | Some(Json::Null)) => Ok(Vec::new()),
            (field, Some(Json::Array(items))) => items
                .iter()
                .enumerate()
                .map(|(i, item)| as_string(format!("{field}[{i}]"), Some(item)))
                .collect(),
            (field, Some(other)) => Err(VolumeError::FieldType {
                field,
                expected: "an array of strings",
                found: other.kind(),
            }),
        }
    }

    fn map(&mut self, name: &'static str) -> Result<BTreeMap<String, String>, VolumeError> {
        match self.take(name) {
            (_, None | Some(Json::Null)) => Ok(BTreeMap::new()),
            (field, Some(Json::Object(members))) => {
                let mut out = BTreeMap::new();
                // A key is host data: quoted and shortened in messages, so that an error
                // stays one line whatever the key holds.
                let key_path = |k: &str| format!("{field}.{:?}", super::model::truncate(k));
                for (k, v) in members {
                    let value = match v {
                        Json::String(s) => s.clone(),
                        Json::Null => String::new(),
                        other => as_string(key_path(k), Some(other))?,
                    };
                    if out.insert(k.clone(), value).is_some() {
                        return Err(VolumeError::DuplicateField(key_path(k)));
                    }
                }
                Ok(out)
            }
            (field, Some(other)) => Err(VolumeError::FieldType {
                field,
                expected: "an object of strings",
                found: other.kind(),
            }),
        }
    }

    fn object(
        &mut self,
        name: &'static str,
        known: &[&'static str],
    ) -> Result<Option<Fields<'a>>, VolumeError> {
        match self.take(name) {
            (_, None | Some(Json::Null)) => Ok(None),
            (field, Some(v)) => Fields::new(&field, v, known).map(Some),
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn as_string(field: String, v: Option<&Json>) -> Result<String, VolumeError> {
    match v {
        None | Some(Json::Null) => Ok(String::new()),
        Some(Json::String(s)) => Ok(s.clone()),
        Some(other) => Err(VolumeError::FieldType {
            field,
            expected: "a string",
            found: other.kind(),
        }),
    }
}
