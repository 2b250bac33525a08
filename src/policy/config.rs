//! Loading a policy file: TOML, or JSON when the name ends in `.json`. Unknown keys are
//! refused (a typo must not silently weaken the policy); missing keys take the defaults; a
//! key that was replaced is refused with what replaced it. The trust files the policy names
//! are read by [`Policy::load_trust`](super::Policy::load_trust), not here.

use std::path::{Path, PathBuf};

use super::Policy;

/// Why policy text could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyParseError {
    /// Not valid TOML for a policy (syntax, unknown key, wrong type).
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// Not valid JSON for a policy.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// The mount root is not a normal absolute path.
    #[error("mount_root {0:?} must be an absolute path without '.', '..' or trailing '/'")]
    MountRoot(PathBuf),
    /// A key that was replaced by others.
    #[error("{key} is no longer a policy key: {instead}")]
    Replaced {
        /// The key.
        key: &'static str,
        /// What replaced it.
        instead: &'static str,
    },
    /// `trusted_root_hashes` holds something that is not a root hash.
    #[error(transparent)]
    RootHashes(#[from] crate::trust::AllowlistError),
    /// A `trusted_signers` entry names initdata, and no initdata document is configured.
    #[error(
        "trusted_signers entry {0:?} names the initdata document, but the policy sets no initdata"
    )]
    SignerWithoutInitdata(String),
    /// An empty `trusted_signers` entry.
    #[error("trusted_signers has an empty entry: give a PEM file or initdata:<key>")]
    EmptySigner,
}

/// Keys that were replaced, with what replaced them.
const REPLACED: &[(&str, &str)] = &[(
    "root_hash_sig_key_desc",
    "one key description cannot vouch for more than one layer; set kernel_signatures, and each volume's own root_hash_sig is loaded as a key of its own and named in its table",
)];

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    /// Cannot read it.
    #[error("Cannot read policy file {path:?}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Cannot parse it.
    #[error("Invalid policy file {path:?}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: PolicyParseError,
    },
}

impl Policy {
    /// Reads a policy file.
    pub fn from_file(path: &Path) -> Result<Self, PolicyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let is_json = path.extension().is_some_and(|e| e == "json");
        Self::from_text(&text, is_json).map_err(|source| PolicyFileError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Parses policy text (TOML, or JSON).
    pub fn from_text(text: &str, json: bool) -> Result<Self, PolicyParseError> {
        let p: Policy = if json {
            let value: serde_json::Value = serde_json::from_str(text)?;
            if let Some(map) = value.as_object() {
                replaced(|k| map.contains_key(k))?;
            }
            serde_json::from_value(value)?
        } else {
            let table: toml::Table = toml::from_str(text)?;
            replaced(|k| table.contains_key(k))?;
            toml::from_str(text)?
        };
        if !crate::request::is_normal_absolute(&p.mount_root) {
            return Err(PolicyParseError::MountRoot(p.mount_root));
        }
        if let Some(hashes) = &p.trusted_root_hashes {
            super::trust::policy_hashes(hashes)?;
        }
        for s in &p.trusted_signers {
            if s.is_empty() {
                return Err(PolicyParseError::EmptySigner);
            }
            if s.starts_with(super::INITDATA_PREFIX) && p.initdata.is_none() {
                return Err(PolicyParseError::SignerWithoutInitdata(
                    crate::volume::truncate_for_error(s),
                ));
            }
        }
        Ok(p)
    }
}

/// Refuses a key that was replaced, naming what replaced it.
fn replaced(has: impl Fn(&str) -> bool) -> Result<(), PolicyParseError> {
    match REPLACED.iter().find(|(k, _)| has(k)) {
        Some((key, instead)) => Err(PolicyParseError::Replaced { key, instead }),
        None => Ok(()),
    }
}
