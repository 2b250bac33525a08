//! Loading a policy file: TOML, or JSON when the name ends in `.json`. Unknown keys are
//! refused (a typo must not silently weaken the policy); missing keys take the defaults.

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
    /// A key description that is not one word.
    #[error("root_hash_sig_key_desc {0:?} must be one word")]
    KeyDesc(String),
}

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
            serde_json::from_str(text)?
        } else {
            toml::from_str(text)?
        };
        if !crate::request::is_normal_absolute(&p.mount_root) {
            return Err(PolicyParseError::MountRoot(p.mount_root));
        }
        if let Some(k) = &p.root_hash_sig_key_desc
            && (k.is_empty() || k.chars().any(char::is_whitespace))
        {
            return Err(PolicyParseError::KeyDesc(k.clone()));
        }
        Ok(p)
    }
}
