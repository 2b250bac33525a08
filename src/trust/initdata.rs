//! Kata/Confidential Containers *initdata*: the measured TOML document the host hands the
//! guest at launch and the TEE binds to its attestation (`hostdata`, `MRCONFIGID`, …):
//!
//! ```toml
//! version = "0.1.0"
//! algorithm = "sha384"            # sha256, sha384 or sha512: the digest that is measured
//! [data]
//! "verified-layers.toml" = '''
//! require_verified_layers = true
//! '''
//! ```
//!
//! `[data]` maps file names to file contents. The Kata agent writes the document, byte for
//! byte, to `/run/confidential-containers/initdata/initdata.toml`; this is what we read (plain
//! TOML, not the gzip+base64 annotation nor the raw initdata disk). As upstream, only version
//! `0.1.0` and the three algorithms are accepted; stricter than upstream, unknown top-level
//! keys and non-string `[data]` values are refused (a measured document must mean exactly one
//! thing). The digest ([`Initdata::digest`]) is the document's algorithm over its exact bytes,
//! before any platform padding, so an operator can compare it with the attested value.
//!
//! This module parses only; the caller reads the file and decides which keys it uses.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest as _, Sha256, Sha384, Sha512};

use super::{MaterialDigest, one_line, quote};

/// The one initdata version there is.
pub const INITDATA_VERSION: &str = "0.1.0";

/// Why an initdata document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitdataError {
    /// Not UTF-8 text.
    #[error("Initdata {source_name} is not UTF-8 text")]
    NotUtf8 {
        /// Where it came from.
        source_name: String,
    },
    /// Not TOML.
    #[error("Invalid TOML in initdata {source_name}: {why}")]
    Toml {
        /// Where it came from.
        source_name: String,
        /// The parser's explanation.
        why: String,
    },
    /// A top-level key initdata does not have.
    #[error(
        "Unknown key {key:?} in initdata {source_name}: expected version, algorithm and [data]"
    )]
    UnknownKey {
        /// Where it came from.
        source_name: String,
        /// The key.
        key: String,
    },
    /// A required key is missing.
    #[error("Missing key {key} in initdata {source_name}")]
    MissingKey {
        /// Where it came from.
        source_name: String,
        /// The key.
        key: &'static str,
    },
    /// A key holds the wrong kind of value.
    #[error("Key {key} in initdata {source_name} must be {expected}, not {found}")]
    WrongType {
        /// Where it came from.
        source_name: String,
        /// The key (`data."<name>"` for a data entry).
        key: String,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// A version other than 0.1.0.
    #[error("Unsupported initdata version {value:?} in {source_name}: expected \"0.1.0\"")]
    Version {
        /// Where it came from.
        source_name: String,
        /// The value.
        value: String,
    },
    /// An algorithm other than sha256, sha384, sha512.
    #[error(
        "Unsupported initdata algorithm {value:?} in {source_name}: expected sha256, sha384 or sha512"
    )]
    Algorithm {
        /// Where it came from.
        source_name: String,
        /// The value.
        value: String,
    },
}

/// The digest algorithm an initdata document names (what the TEE measures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitdataAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384 (upstream's default).
    Sha384,
    /// SHA-512.
    Sha512,
}

impl InitdataAlgorithm {
    /// The name as written in the document.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    fn digest(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(bytes).to_vec(),
            Self::Sha384 => Sha384::digest(bytes).to_vec(),
            Self::Sha512 => Sha512::digest(bytes).to_vec(),
        }
    }
}

impl fmt::Display for InitdataAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed initdata document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initdata {
    algorithm: InitdataAlgorithm,
    data: BTreeMap<String, String>,
    digest: Vec<u8>,
    material: MaterialDigest,
}

impl Initdata {
    /// Parses the document's exact bytes, read from `source_name`.
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<Self, InitdataError> {
        let name = || source_name.to_owned();
        let text = std::str::from_utf8(bytes).map_err(|_| InitdataError::NotUtf8 {
            source_name: name(),
        })?;
        let table: toml::Table = toml::from_str(text).map_err(|e| InitdataError::Toml {
            source_name: name(),
            why: one_line(&e.to_string()),
        })?;
        if let Some(k) = table
            .keys()
            .find(|k| !["version", "algorithm", "data"].contains(&k.as_str()))
        {
            return Err(InitdataError::UnknownKey {
                source_name: name(),
                key: quote(k),
            });
        }
        let get = |key: &'static str| {
            table.get(key).ok_or(InitdataError::MissingKey {
                source_name: name(),
                key,
            })
        };
        let string = |key: &'static str| -> Result<&str, InitdataError> {
            let v = get(key)?;
            v.as_str().ok_or_else(|| InitdataError::WrongType {
                source_name: name(),
                key: key.to_owned(),
                expected: "a string",
                found: v.type_str(),
            })
        };
        let version = string("version")?;
        if version != INITDATA_VERSION {
            return Err(InitdataError::Version {
                source_name: name(),
                value: quote(version),
            });
        }
        let alg = string("algorithm")?;
        let algorithm = [
            InitdataAlgorithm::Sha256,
            InitdataAlgorithm::Sha384,
            InitdataAlgorithm::Sha512,
        ]
        .into_iter()
        .find(|a| a.name() == alg)
        .ok_or_else(|| InitdataError::Algorithm {
            source_name: name(),
            value: quote(alg),
        })?;
        let data_value = get("data")?;
        let data_table = data_value
            .as_table()
            .ok_or_else(|| InitdataError::WrongType {
                source_name: name(),
                key: "data".to_owned(),
                expected: "a table ([data])",
                found: data_value.type_str(),
            })?;
        let mut data = BTreeMap::new();
        for (k, v) in data_table {
            let s = v.as_str().ok_or_else(|| InitdataError::WrongType {
                source_name: name(),
                key: format!("data.{:?}", quote(k)),
                expected: "a string (the file's contents)",
                found: v.type_str(),
            })?;
            data.insert(k.clone(), s.to_owned());
        }
        Ok(Self {
            algorithm,
            digest: algorithm.digest(bytes),
            material: MaterialDigest::of(source_name, bytes),
            data,
        })
    }

    /// The document's digest algorithm.
    pub fn algorithm(&self) -> InitdataAlgorithm {
        self.algorithm
    }

    /// The document's digest in its own algorithm, over its exact bytes (what is attested,
    /// before a platform pads or truncates it to its field size).
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// The contents of the file `name` in `[data]`, if present.
    pub fn file(&self, name: &str) -> Option<&str> {
        self.data.get(name).map(String::as_str)
    }

    /// The file names in `[data]`, sorted.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.data.keys().map(String::as_str)
    }

    /// The SHA-256 of the document's bytes, with its source.
    pub fn material(&self) -> &MaterialDigest {
        &self.material
    }
}
