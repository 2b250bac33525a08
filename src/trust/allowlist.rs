//! The measured allowlist: a set of `(algorithm, root hash)` pairs that whoever the guest
//! trusts has vouched for, and the `require_verified_layers` switch.
//!
//! Sources: the policy file's list (bare hex of a default algorithm, or `<alg>:<hex>`), a
//! `verified-layers.toml` file, or that file carried as a key of a Kata initdata document.
//! Lookup is by algorithm and digest bytes, so the case of the hex never matters and a hash
//! listed for one algorithm never admits another algorithm's hash.
//!
//! The rule ([`Allowlist::check`]): a non-empty list admits only what it lists (and no volume
//! without dm-verity); with `required` set, an empty list refuses everything (fail closed);
//! an empty list that is not required restricts nothing. This is stricter than reading
//! `require_verified_layers = false` as "advisory": a list, once given, is always enforced.
//!
//! This module only parses and answers; it must not read files (the caller passes the text
//! and names its source) nor touch any device.

use std::collections::BTreeSet;

use super::{Initdata, MaterialDigest, one_line, quote};
use crate::verity::{Digest, HashAlgorithm};

/// The key of the allowlist file inside an initdata document's `[data]`.
pub const VERIFIED_LAYERS_KEY: &str = "verified-layers.toml";

/// Why an allowlist could not be loaded, or why it refused a root hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistError {
    /// Not TOML at all.
    #[error("Invalid TOML in {source_name}: {why}")]
    Toml {
        /// Where the text came from.
        source_name: String,
        /// The parser's explanation.
        why: String,
    },
    /// A key the format does not have.
    #[error("Unknown key {key:?} in {source_name}: expected {expected}")]
    UnknownKey {
        /// Where the text came from.
        source_name: String,
        /// The key (with its path, e.g. `layer[0].roothash`).
        key: String,
        /// The keys allowed there.
        expected: &'static str,
    },
    /// A required key is missing.
    #[error("Missing key {key} in {source_name}")]
    MissingKey {
        /// Where the text came from.
        source_name: String,
        /// The key (with its path).
        key: String,
    },
    /// A key holds the wrong kind of value.
    #[error("Key {key} in {source_name} must be {expected}, not {found}")]
    WrongType {
        /// Where the text came from.
        source_name: String,
        /// The key (with its path).
        key: String,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// An algorithm dm-verity volumes here cannot use.
    #[error("Unsupported {key} {value:?} in {source_name}: expected sha256, sha1 or sha512")]
    Algorithm {
        /// Where the text came from.
        source_name: String,
        /// The key (with its path).
        key: String,
        /// The value.
        value: String,
    },
    /// A root hash that is not hex of the algorithm's length.
    #[error(
        "Invalid {key} {value:?} in {source_name}: expected {} hex digits for {algorithm}",
        algorithm.digest_size() * 2
    )]
    RootHash {
        /// Where the text came from.
        source_name: String,
        /// The key (with its path).
        key: String,
        /// The value.
        value: String,
        /// The algorithm it was read as.
        algorithm: HashAlgorithm,
    },
    /// The root hash is not in the (non-empty) allowlist.
    #[error("Root hash {algorithm}:{root_hash} is not in the allowlist of verified layers")]
    NotListed {
        /// The volume's algorithm.
        algorithm: HashAlgorithm,
        /// The volume's root hash (lower-case hex).
        root_hash: String,
    },
    /// Verified layers are required and none is listed: everything is refused.
    #[error(
        "Root hash {algorithm}:{root_hash} refused: require_verified_layers is set and the allowlist is empty"
    )]
    NothingListed {
        /// The volume's algorithm.
        algorithm: HashAlgorithm,
        /// The volume's root hash (lower-case hex).
        root_hash: String,
    },
    /// A volume without dm-verity while the allowlist restricts what is mounted.
    #[error("A volume without dm_verity is refused: the allowlist of verified layers is in force")]
    Unverified,
}

/// Why [`Allowlist::check`] admitted a root hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The root hash is listed.
    Listed,
    /// The allowlist restricts nothing (empty and not required).
    Unrestricted,
}

/// Trusted `(algorithm, root hash)` pairs and the `required` switch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    required: bool,
    entries: BTreeSet<(&'static str, Vec<u8>)>,
    material: Vec<MaterialDigest>,
}

impl Allowlist {
    /// An empty allowlist that restricts nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the policy file's list: each entry is `<alg>:<hex>` or bare hex of `algorithm`
    /// (any case). `source_name` names the policy key in errors.
    pub fn add_hashes<'a>(
        &mut self,
        source_name: &str,
        algorithm: HashAlgorithm,
        hashes: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), AllowlistError> {
        for (i, entry) in hashes.into_iter().enumerate() {
            let key = format!("{source_name}[{i}]");
            let (alg, hex) = match entry.split_once(':') {
                Some((a, h)) => (parse_algorithm(source_name, &key, a)?, h),
                None => (algorithm, entry),
            };
            self.insert(&parse_digest(source_name, &key, alg, hex)?);
        }
        Ok(())
    }

    /// Parses a `verified-layers.toml` text read from `source_name` and records its digest.
    pub fn from_verified_layers(text: &str, source_name: &str) -> Result<Self, AllowlistError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| AllowlistError::Toml {
            source_name: source_name.to_owned(),
            why: one_line(&e.to_string()),
        })?;
        let mut list = Self::new();
        for (key, value) in &table {
            match key.as_str() {
                "require_verified_layers" => {
                    list.required = value.as_bool().ok_or_else(|| AllowlistError::WrongType {
                        source_name: source_name.to_owned(),
                        key: key.clone(),
                        expected: "true or false",
                        found: value.type_str(),
                    })?;
                }
                "layer" => list.add_layers(source_name, value)?,
                _ => {
                    return Err(AllowlistError::UnknownKey {
                        source_name: source_name.to_owned(),
                        key: quote(key),
                        expected: "require_verified_layers or [[layer]]",
                    });
                }
            }
        }
        list.material
            .push(MaterialDigest::of(source_name, text.as_bytes()));
        Ok(list)
    }

    /// The allowlist carried in an initdata document under [`VERIFIED_LAYERS_KEY`], if any.
    pub fn from_initdata(initdata: &Initdata) -> Result<Option<Self>, AllowlistError> {
        initdata
            .file(VERIFIED_LAYERS_KEY)
            .map(|text| {
                Self::from_verified_layers(text, &format!("initdata:{VERIFIED_LAYERS_KEY}"))
            })
            .transpose()
    }

    /// Adds everything `other` lists; `required` if either is.
    pub fn extend(&mut self, other: Self) {
        self.required |= other.required;
        self.entries.extend(other.entries);
        self.material.extend(other.material);
    }

    /// Sets the `required` switch (a policy key or daemon flag may turn it on).
    pub fn set_required(&mut self, required: bool) {
        self.required = required;
    }

    /// Whether verified layers are required (an empty list then refuses everything).
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// Whether this allowlist refuses anything at all.
    pub fn restricts(&self) -> bool {
        self.required || !self.entries.is_empty()
    }

    /// How many pairs are listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `root` (its algorithm and bytes) is listed.
    pub fn contains(&self, root: &Digest) -> bool {
        self.entries
            .contains(&(root.algorithm().name(), root.as_bytes().to_vec()))
    }

    /// Admits or refuses a volume's root hash (`None`: a volume without dm-verity).
    pub fn check(&self, root: Option<&Digest>) -> Result<Listing, AllowlistError> {
        let Some(root) = root else {
            return if self.restricts() {
                Err(AllowlistError::Unverified)
            } else {
                Ok(Listing::Unrestricted)
            };
        };
        if self.contains(root) {
            Ok(Listing::Listed)
        } else if !self.entries.is_empty() {
            Err(AllowlistError::NotListed {
                algorithm: root.algorithm(),
                root_hash: root.to_hex(),
            })
        } else if self.required {
            Err(AllowlistError::NothingListed {
                algorithm: root.algorithm(),
                root_hash: root.to_hex(),
            })
        } else {
            Ok(Listing::Unrestricted)
        }
    }

    /// The digests of the files this allowlist was loaded from.
    pub fn material(&self) -> &[MaterialDigest] {
        &self.material
    }

    fn insert(&mut self, d: &Digest) {
        self.entries
            .insert((d.algorithm().name(), d.as_bytes().to_vec()));
    }

    fn add_layers(&mut self, source_name: &str, value: &toml::Value) -> Result<(), AllowlistError> {
        let wrong = |key: String, found| AllowlistError::WrongType {
            source_name: source_name.to_owned(),
            key,
            expected: "an array of tables ([[layer]])",
            found,
        };
        let layers = value
            .as_array()
            .ok_or_else(|| wrong("layer".into(), value.type_str()))?;
        for (i, layer) in layers.iter().enumerate() {
            let t = layer
                .as_table()
                .ok_or_else(|| wrong(format!("layer[{i}]"), layer.type_str()))?;
            if let Some(k) = t.keys().find(|k| *k != "algorithm" && *k != "root_hash") {
                return Err(AllowlistError::UnknownKey {
                    source_name: source_name.to_owned(),
                    key: format!("layer[{i}].{}", quote(k)),
                    expected: "algorithm and root_hash",
                });
            }
            let field = |name: &str| -> Result<&str, AllowlistError> {
                let key = format!("layer[{i}].{name}");
                let v = t.get(name).ok_or_else(|| AllowlistError::MissingKey {
                    source_name: source_name.to_owned(),
                    key: key.clone(),
                })?;
                v.as_str().ok_or_else(|| AllowlistError::WrongType {
                    source_name: source_name.to_owned(),
                    key,
                    expected: "a string",
                    found: v.type_str(),
                })
            };
            let alg = parse_algorithm(
                source_name,
                &format!("layer[{i}].algorithm"),
                field("algorithm")?,
            )?;
            let hash = field("root_hash")?;
            self.insert(&parse_digest(
                source_name,
                &format!("layer[{i}].root_hash"),
                alg,
                hash,
            )?);
        }
        Ok(())
    }
}

fn parse_algorithm(
    source_name: &str,
    key: &str,
    value: &str,
) -> Result<HashAlgorithm, AllowlistError> {
    value.parse().map_err(|_| AllowlistError::Algorithm {
        source_name: source_name.to_owned(),
        key: key.to_owned(),
        value: quote(value),
    })
}

fn parse_digest(
    source_name: &str,
    key: &str,
    algorithm: HashAlgorithm,
    hex: &str,
) -> Result<Digest, AllowlistError> {
    Digest::from_hex(algorithm, hex).map_err(|_| AllowlistError::RootHash {
        source_name: source_name.to_owned(),
        key: key.to_owned(),
        value: quote(hex),
        algorithm,
    })
}
