//! Loading a policy file: TOML, or JSON when the name ends in `.json`. Unknown keys are
//! refused (a typo must not silently weaken the policy); missing keys take the defaults.

use std::path::Path;

use super::Policy;

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
    #[error("Invalid policy file {path:?}: {why}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        why: String,
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
        Self::from_text(&text, is_json).map_err(|why| PolicyFileError::Parse {
            path: path.display().to_string(),
            why,
        })
    }

    /// Parses policy text (TOML, or JSON).
    pub fn from_text(text: &str, json: bool) -> Result<Self, String> {
        let p: Policy = if json {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        } else {
            toml::from_str(text).map_err(|e| e.to_string())?
        };
        if !super::is_normal_absolute(&p.mount_root) {
            return Err(format!(
                "mount_root {:?} must be an absolute path without '.', '..' or trailing '/'",
                p.mount_root
            ));
        }
        if let Some(k) = &p.root_hash_sig_key_desc
            && (k.is_empty() || k.chars().any(char::is_whitespace))
        {
            return Err(format!("root_hash_sig_key_desc {k:?} must be one word"));
        }
        Ok(p)
    }
}
