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
//!   in 64 bits, as Go's `uint64` requires (`dm_verity.hash_type`: 32 bits);
//! - `dm_verity` also takes Kata main's `salt`, `hash_type` and `no_superblock` (a JSON
//!   boolean); each is omitted on the way out when absent or empty, so the six-field JSON of
//!   the seed producers round-trips unchanged — and an absent `no_superblock` keeps *their*
//!   meaning, no superblock (see [`DmVerityInfo::no_superblock`]);
//! - `dm_verity.root_hash_sig` (ours: a string, base64 of a detached PKCS#7 signature over the
//!   lower-case hex root hash, or of a systemd `.verity.sig` JSON envelope) is omitted on the
//!   way out when empty, like Kata main's fields; `request` decodes it, `policy` verifies it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::VolumeError;
use super::json::{Field, Json, MAX_FIELDS, Member, Object};
use crate::verity::VerityError;

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
    /// Byte offset of the hash area: the superblock when there is one, else the tree.
    pub offset: u64,
    /// Salt, hex (either case); `""` or `"-"` for none. Kata main's field; omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub salt: String,
    /// Hash format version, 0 or 1 (Kata main's `hash_type`); `None` (absent) means 1.
    /// Omitted when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_type: Option<u32>,
    /// Whether the image has no verity superblock at `offset`. `None` (absent) means **true**:
    /// the meaning of the six-field JSON of the seed producers (nydus-snapshotter, the CCv0
    /// runtime), whose images have no superblock — unlike Kata main's serde default (false).
    /// Omitted when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_superblock: Option<bool>,
    /// The root hash's signature: base64 of a detached PKCS#7 (DER) signature over the
    /// lower-case hex root hash, or of a systemd `.verity.sig` JSON envelope; `""` for none.
    /// Ours (not in Kata's `DmVerityInfo`); omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub root_hash_sig: String,
}

/// `direct_volume`: metadata of a directly assigned volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectAssignedVolume {
    /// Free-form metadata: `None` when absent or `null` (Go's nil map, which the host's
    /// validation refuses), `Some` of a map — possibly empty: `{}` is valid.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `image_pull`: metadata for pulling the image inside the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImagePullVolume {
    /// Free-form metadata: `None` when absent or `null` (refused, as the host's validation
    /// does), `Some` of a map, `{}` included.
    pub metadata: Option<BTreeMap<String, String>>,
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
        if super::json::too_deep(text, super::json::MAX_DEPTH) {
            return Err(VolumeError::Json(format!(
                "nested deeper than {} levels",
                super::json::MAX_DEPTH
            )));
        }
        let object = Object::parse(text, TOP).map_err(|e| VolumeError::Json(e.to_string()))?;
        Self::from_object(&object)
    }

    /// Compact JSON, as Go's `json.Marshal` would write it (same names, same omissions).
    pub fn to_json(&self) -> String {
        // Serializing plain strings, integers and maps of strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    fn from_object(object: &Object<'_>) -> Result<Self, VolumeError> {
        let f = Fields::new("", object, TOP)?;
        Ok(Self {
            volume_type: f.string("volume_type")?,
            source: f.string("source")?,
            fs_type: f.string("fs_type")?,
            options: f.strings("options")?,
            direct_volume: f
                .object("direct_volume")?
                .map(|d| {
                    d.map("metadata")
                        .map(|metadata| DirectAssignedVolume { metadata })
                })
                .transpose()?,
            image_pull: f
                .object("image_pull")?
                .map(|d| {
                    d.map("metadata")
                        .map(|metadata| ImagePullVolume { metadata })
                })
                .transpose()?,
            nydus_image: f
                .object("nydus_image")?
                .map(|d| -> Result<_, VolumeError> {
                    Ok(NydusImageVolume {
                        config: d.string("config")?,
                        snapshot_dir: d.string("snapshot_dir")?,
                    })
                })
                .transpose()?,
            dm_verity: f
                .object("dm_verity")?
                .map(|d| verity_from(&d))
                .transpose()?,
        })
    }
}

impl DmVerityInfo {
    /// Parses a `DmVerityInfo` object given on its own (the CCv0 runtime's `verity_info=`
    /// driver option), with the same rules as inside a volume; errors name `dm_verity.*`.
    pub fn from_json_str(text: &str) -> Result<Self, VolumeError> {
        if super::json::too_deep(text, super::json::MAX_DEPTH) {
            return Err(VolumeError::Json(format!(
                "nested deeper than {} levels",
                super::json::MAX_DEPTH
            )));
        }
        let object = Object::parse(text, VERITY).map_err(|e| VolumeError::Json(e.to_string()))?;
        if matches!(object, Object::Null) {
            return Err(VolumeError::FieldType {
                field: "dm_verity".into(),
                expected: "an object",
                found: "null",
            });
        }
        verity_from(&Fields::new("dm_verity", &object, VERITY)?)
    }
}

fn verity_from(d: &Fields<'_, '_>) -> Result<DmVerityInfo, VolumeError> {
    Ok(DmVerityInfo {
        hashtype: d.string("hashtype")?,
        hash: d.string("hash")?,
        blocknum: d.u64("blocknum")?,
        blocksize: d.u64("blocksize")?,
        hashsize: d.u64("hashsize")?,
        offset: d.u64("offset")?,
        salt: d.string("salt")?,
        hash_type: d
            .optional_u64("hash_type")?
            .map(|n| u32::try_from(n).map_err(|_| VerityError::HashVersion(n)))
            .transpose()?,
        no_superblock: d.optional_bool("no_superblock")?,
        root_hash_sig: d.string("root_hash_sig")?,
    })
}

/// The fields of each object, as Go's struct tags spell them.
const TOP: &[Field] = &[
    Field::value("volume_type"),
    Field::value("source"),
    Field::value("fs_type"),
    Field::value("options"),
    Field::object("direct_volume", METADATA),
    Field::object("image_pull", METADATA),
    Field::object("nydus_image", NYDUS),
    Field::object("dm_verity", VERITY),
];
const METADATA: &[Field] = &[Field::value("metadata")];
const NYDUS: &[Field] = &[Field::value("config"), Field::value("snapshot_dir")];
const VERITY: &[Field] = &[
    Field::value("hashtype"),
    Field::value("hash"),
    Field::value("blocknum"),
    Field::value("blocksize"),
    Field::value("hashsize"),
    Field::value("offset"),
    Field::value("salt"),
    Field::value("hash_type"),
    Field::value("no_superblock"),
    Field::value("root_hash_sig"),
];
const _: () = assert!(
    TOP.len() <= MAX_FIELDS
        && METADATA.len() <= MAX_FIELDS
        && NYDUS.len() <= MAX_FIELDS
        && VERITY.len() <= MAX_FIELDS
);

/// The known fields of one JSON object, by name.
struct Fields<'j, 'a> {
    /// Dotted path of this object (`""` at the top).
    path: &'static str,
    fields: &'static [Field],
    /// `None` for `null` (every field empty).
    values: Option<&'j [Option<Member<'a>>; MAX_FIELDS]>,
}

impl<'j, 'a> Fields<'j, 'a> {
    fn new(
        path: &'static str,
        object: &'j Object<'a>,
        fields: &'static [Field],
    ) -> Result<Self, VolumeError> {
        let values = match object {
            Object::Null => None,
            Object::Other(kind) => {
                return Err(VolumeError::FieldType {
                    field: if path.is_empty() { "volume" } else { path }.into(),
                    expected: "an object",
                    found: kind,
                });
            }
            Object::Members { values, duplicate } => {
                if let Some(name) = duplicate.and_then(|i| fields.get(i)) {
                    return Err(VolumeError::DuplicateField(join(path, name.name)));
                }
                Some(values)
            }
        };
        Ok(Self {
            path,
            fields,
            values,
        })
    }

    fn member(&self, name: &str) -> Option<&'j Member<'a>> {
        let i = self.fields.iter().position(|f| f.name == name)?;
        self.values?.get(i)?.as_ref()
    }

    /// A plain field's value (`None` when absent).
    fn get(&self, name: &str) -> Option<&'j Json<'a>> {
        match self.member(name)? {
            Member::Value(v) => Some(v),
            Member::Object(_) => None, // not a plain field: never asked for as one
        }
    }

    /// The dotted path of a field, for an error message.
    fn field(&self, name: &str) -> String {
        join(self.path, name)
    }

    fn string(&self, name: &'static str) -> Result<String, VolumeError> {
        match self.get(name) {
            None | Some(Json::Null) => Ok(String::new()),
            Some(Json::String(s)) => Ok(s.as_ref().to_owned()),
            Some(other) => Err(type_error(self.field(name), "a string", other)),
        }
    }

    fn u64(&self, name: &'static str) -> Result<u64, VolumeError> {
        Ok(self.optional_u64(name)?.unwrap_or(0))
    }

    /// An unsigned integer, `None` when absent or null (a field whose default is not 0).
    fn optional_u64(&self, name: &'static str) -> Result<Option<u64>, VolumeError> {
        match self.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Number(n)) => n.as_u64().map(Some).ok_or_else(|| VolumeError::Number {
                field: self.field(name),
                value: n.to_string(),
            }),
            Some(other) => Err(type_error(self.field(name), "an unsigned integer", other)),
        }
    }

    /// A JSON boolean (not a string or number spelling one), `None` when absent or null.
    fn optional_bool(&self, name: &'static str) -> Result<Option<bool>, VolumeError> {
        match self.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(type_error(self.field(name), "a boolean", other)),
        }
    }

    fn strings(&self, name: &'static str) -> Result<Vec<String>, VolumeError> {
        match self.get(name) {
            None | Some(Json::Null) => Ok(Vec::new()),
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Json::String(s) => Ok(s.as_ref().to_owned()),
                    Json::Null => Ok(String::new()),
                    other => Err(type_error(
                        format!("{}[{i}]", self.field(name)),
                        "a string",
                        other,
                    )),
                })
                .collect(),
            Some(other) => Err(type_error(self.field(name), "an array of strings", other)),
        }
    }

    /// A map of strings: `None` when absent or `null` (Go's nil map), else its entries.
    fn map(&self, name: &'static str) -> Result<Option<BTreeMap<String, String>>, VolumeError> {
        match self.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Object(members)) => {
                // A key is host data: quoted and shortened in messages, so that an error
                // stays one line whatever the key holds.
                let key_path =
                    |k: &str| format!("{}.{:?}", self.field(name), super::model::truncate(k));
                let mut out = BTreeMap::new();
                for (k, v) in members {
                    let value = match v {
                        Json::String(s) => s.as_ref().to_owned(),
                        Json::Null => String::new(),
                        other => return Err(type_error(key_path(k), "a string", other)),
                    };
                    if out.insert(k.as_ref().to_owned(), value).is_some() {
                        return Err(VolumeError::DuplicateField(key_path(k)));
                    }
                }
                Ok(Some(out))
            }
            Some(other) => Err(type_error(self.field(name), "an object of strings", other)),
        }
    }

    /// A nested object (`None` when absent or null). Only top-level fields hold objects, so
    /// its path is its name.
    fn object(&self, name: &'static str) -> Result<Option<Fields<'j, 'a>>, VolumeError> {
        let fields = self
            .fields
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.nested)
            .unwrap_or_default();
        match self.member(name) {
            None | Some(Member::Value(_)) => Ok(None),
            Some(Member::Object(o)) if matches!(**o, Object::Null) => Ok(None),
            Some(Member::Object(o)) => Fields::new(name, o, fields).map(Some),
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

fn type_error(field: String, expected: &'static str, found: &Json<'_>) -> VolumeError {
    VolumeError::FieldType {
        field,
        expected,
        found: found.kind(),
    }
}
