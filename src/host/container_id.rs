//! The container id, checked once: it becomes a path component of the rootfs mount point
//! and of the upper and work directories in the guest.

use std::fmt;
use std::str::FromStr;

use super::HostError;
use crate::volume::truncate_for_error;

/// Longest id accepted: one path component (Linux `NAME_MAX`).
const MAX_ID: usize = 255;

/// A container id as the Kata agent accepts it: an ASCII letter or digit, then at least one
/// more of letters, digits, `_`, `.` and `-` (the agent's `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`,
/// in ASCII), at most 255 bytes. So never empty, `.`, `..`, or anything with a `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// Checks an id.
    pub fn parse(id: &str) -> Result<Self, HostError> {
        let bad = |why| HostError::ContainerId {
            value: truncate_for_error(id),
            why,
        };
        if id.len() < 2 {
            return Err(bad("must be at least 2 characters"));
        }
        if id.len() > MAX_ID {
            return Err(bad("longer than 255 bytes"));
        }
        if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(bad("must start with an ASCII letter or digit"));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(bad(
                "may contain only ASCII letters, digits, '_', '.' and '-'",
            ));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContainerId {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
