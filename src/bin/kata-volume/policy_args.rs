//! The policy flags of `kata-volume serve`: a policy file, and flags that override it.

use std::path::PathBuf;

use kata_volume::policy::{CorruptionMode, Policy};

use crate::CliError;
use crate::output::error_chain;

/// Policy: what the host may ask for (see the README's Policy section).
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    /// Policy file (TOML, or JSON when named *.json); the flags below override it.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Every mount point must lie inside this directory [default: /run/kata-containers].
    #[arg(long, value_name = "DIR")]
    mount_root: Option<PathBuf>,
    /// Allowed source pattern (`*` within one path component, `?` one character); repeat for
    /// several.
    /// Replaces the policy's list [default: /dev/vd* /dev/sd* /dev/pmem* /dev/nvme* /dev/xvd*].
    #[arg(long = "allowed-source", value_name = "PATTERN")]
    allowed_sources: Vec<String>,
    /// Allowed filesystem type; repeat for several. Replaces the policy's list
    /// [default: erofs].
    #[arg(long = "allowed-fs-type", value_name = "TYPE")]
    allowed_fs_types: Vec<String>,
    /// Allow regular files as sources (through read-only loop devices); they must also match
    /// an --allowed-source pattern (e.g. --allowed-source '/run/images/*').
    #[arg(long)]
    allow_files: bool,
    /// Allow raw-block volumes without dm_verity (never in production).
    #[arg(long)]
    allow_unverified: bool,
    /// Only mount volumes with this root hash; repeat for several.
    #[arg(long = "trusted-root-hash", value_name = "HEX")]
    trusted_root_hashes: Vec<String>,
    /// What dm-verity does on a corrupted block [default: eio, or the policy file's].
    #[arg(long, value_name = "MODE", value_parser = ["eio", "restart", "panic"])]
    corruption_mode: Option<String>,
    /// Verify each data block only once (dm-verity check_at_most_once).
    #[arg(long)]
    check_at_most_once: bool,
    /// Skip verifying blocks expected to be zero (dm-verity ignore_zero_blocks).
    #[arg(long)]
    ignore_zero_blocks: bool,
    /// Require the root hash to be signed by this keyring key (root_hash_sig_key_desc).
    #[arg(long, value_name = "KEY")]
    root_hash_sig_key_desc: Option<String>,
    /// Most volumes mounted at once [default: 1024, or the policy file's].
    #[arg(long, value_name = "N")]
    max_volumes: Option<usize>,
}

impl PolicyArgs {
    /// The policy: the file's (or the default), with the flags applied.
    pub fn policy(&self) -> Result<Policy, CliError> {
        let mut p = match &self.policy {
            Some(f) => Policy::from_file(f).map_err(|e| CliError::Failed(error_chain(&e)))?,
            None => Policy::default(),
        };
        if let Some(root) = &self.mount_root {
            if !kata_volume::request::is_normal_absolute(root) {
                return Err(CliError::Usage(format!(
                    "--mount-root {root:?} must be an absolute path without '.', '..' or a trailing '/'"
                )));
            }
            p.mount_root = root.clone();
        }
        if !self.allowed_sources.is_empty() {
            p.allowed_sources = self.allowed_sources.clone();
        }
        if !self.allowed_fs_types.is_empty() {
            p.allowed_fs_types = self.allowed_fs_types.clone();
        }
        p.allow_files |= self.allow_files;
        p.allow_unverified |= self.allow_unverified;
        if !self.trusted_root_hashes.is_empty() {
            for h in &self.trusted_root_hashes {
                if h.len() < 40 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(CliError::Usage(format!(
                        "--trusted-root-hash {h:?} is not a hex digest"
                    )));
                }
            }
            p.trusted_root_hashes = Some(self.trusted_root_hashes.iter().cloned().collect());
        }
        match self.corruption_mode.as_deref() {
            Some("restart") => p.corruption_mode = CorruptionMode::Restart,
            Some("panic") => p.corruption_mode = CorruptionMode::Panic,
            Some(_) => p.corruption_mode = CorruptionMode::Eio,
            None => {}
        }
        p.check_at_most_once |= self.check_at_most_once;
        p.ignore_zero_blocks |= self.ignore_zero_blocks;
        if let Some(k) = &self.root_hash_sig_key_desc {
            if k.is_empty() || k.chars().any(char::is_whitespace) {
                return Err(CliError::Usage(format!(
                    "--root-hash-sig-key-desc {k:?} must be one word"
                )));
            }
            p.root_hash_sig_key_desc = Some(k.clone());
        }
        if let Some(n) = self.max_volumes {
            p.max_volumes = n;
        }
        Ok(p)
    }
}
