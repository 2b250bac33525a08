//! The policy flags of `kata-volume serve` and `mount`: a policy file, and flags that
//! override it; then the trust files it names are loaded (typed errors naming the file).

use std::path::PathBuf;
use std::time::Duration;

use kata_volume::address::parse_timeout;
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
    /// Only mount volumes with this root hash (ALG:HEX, or bare hex: sha1, sha256 or sha512 by
    /// its length); repeat for several. Replaces the policy's list; part of the allowlist.
    #[arg(long = "trusted-root-hash", value_name = "HEX")]
    trusted_root_hashes: Vec<String>,
    /// A verified-layers.toml file: trusted (algorithm, root hash) pairs for the allowlist,
    /// and its require_verified_layers.
    #[arg(long, value_name = "FILE")]
    verified_layers: Option<PathBuf>,
    /// A Kata initdata document (TOML): its "verified-layers.toml" key joins the allowlist;
    /// --trusted-signer initdata:KEY names a PEM text in it.
    #[arg(long, value_name = "FILE")]
    initdata: Option<PathBuf>,
    /// Refuse every volume the allowlist does not list, even when it is empty.
    #[arg(long)]
    require_verified_layers: bool,
    /// A trusted signer certificate for root-hash signatures: a PEM file, or initdata:KEY;
    /// repeat for several. Replaces the policy's list.
    #[arg(long = "trusted-signer", value_name = "PEM_FILE")]
    trusted_signers: Vec<String>,
    /// Refuse every verified volume without a root-hash signature.
    #[arg(long)]
    require_signatures: bool,
    /// The kernel checks each volume's root-hash signature too (a key of its own in the
    /// table's root_hash_sig_key_desc); it trusts only its own keyrings.
    #[arg(long)]
    kernel_signatures: bool,
    /// What dm-verity does on a corrupted block [default: eio, or the policy file's].
    #[arg(long, value_name = "MODE", value_parser = ["eio", "restart", "panic"])]
    corruption_mode: Option<String>,
    /// Verify each data block only once (dm-verity check_at_most_once).
    #[arg(long)]
    check_at_most_once: bool,
    /// Skip verifying blocks expected to be zero (dm-verity ignore_zero_blocks).
    #[arg(long)]
    ignore_zero_blocks: bool,
    /// Gone: replaced by --kernel-signatures (refused with an explanation).
    #[arg(long, value_name = "KEY", hide = true)]
    root_hash_sig_key_desc: Option<String>,
    /// Most volumes mounted at once [default: 1024, or the policy file's].
    #[arg(long, value_name = "N")]
    max_volumes: Option<usize>,
    /// How long to wait for a hot-plugged disk named by its guest address: seconds (`10`,
    /// `10s`) or milliseconds (`500ms`) [default: 10s, or the policy file's device_timeout].
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    device_timeout: Option<Duration>,
}

impl PolicyArgs {
    /// The policy: the file's (or the default), with the flags applied and its trust files
    /// loaded.
    pub fn policy(&self) -> Result<Policy, CliError> {
        if self.root_hash_sig_key_desc.is_some() {
            return Err(CliError::Usage(
                "--root-hash-sig-key-desc is gone: one key description cannot vouch for more than one layer; use --kernel-signatures, and each volume's own root_hash_sig is loaded as a key of its own and named in its table".to_owned(),
            ));
        }
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
            p.trusted_root_hashes = Some(self.trusted_root_hashes.iter().cloned().collect());
        }
        if let Some(f) = &self.verified_layers {
            p.verified_layers = Some(f.clone());
        }
        if let Some(f) = &self.initdata {
            p.initdata = Some(f.clone());
        }
        p.require_verified_layers |= self.require_verified_layers;
        if !self.trusted_signers.is_empty() {
            p.trusted_signers = self.trusted_signers.clone();
        }
        p.require_signatures |= self.require_signatures;
        p.kernel_signatures |= self.kernel_signatures;
        match self.corruption_mode.as_deref() {
            Some("restart") => p.corruption_mode = CorruptionMode::Restart,
            Some("panic") => p.corruption_mode = CorruptionMode::Panic,
            Some(_) => p.corruption_mode = CorruptionMode::Eio,
            None => {}
        }
        p.check_at_most_once |= self.check_at_most_once;
        p.ignore_zero_blocks |= self.ignore_zero_blocks;
        if let Some(n) = self.max_volumes {
            p.max_volumes = n;
        }
        if let Some(t) = self.device_timeout {
            p.device_timeout = t;
        }
        p.load_trust()
            .map_err(|e| CliError::Failed(error_chain(&e)))?;
        Ok(p)
    }
}
