//! Planning: from an authorized request and what its names resolved to, exactly what will be
//! built — the device-mapper name (also the key that serializes requests for the same
//! volume), the verity table (bound to the final device at apply time: a loop device is only
//! known once attached), the signature key the kernel checks the table's root hash with
//! (`kernel_signatures`: named after the device, `kata-volume:<dm name>`), the mount and the
//! directories to create. Pure: no syscalls, so every rule here is unit-tested without root.

use std::fmt::{self, Write as _};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::policy::Authorized;
use crate::resolve::{Resolved, Source, Target};
use crate::system::{DM_NAME_PREFIX, DevNum, DmName, MountSpec};
use crate::trust::{KeyDescription, KeyringError, RootHashSignature};
use crate::verity::units::{BlockSize, Bytes};
use crate::verity::{VerityError, VerityOption, VerityParams, VerityTable, VerityTarget};
use crate::volume::VolumeType;

/// Why a request cannot be planned on its device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The device is smaller than the table or tree needs.
    #[error(
        "Device {device} is {size} bytes, too small: dm_verity needs {required} bytes (data and hash tree)"
    )]
    DeviceTooSmall {
        /// Device path.
        device: String,
        /// Its size.
        size: u64,
        /// What the parameters need.
        required: u64,
    },
    /// A block size below the device's logical block size.
    #[error(
        "Invalid dm_verity.{field} {size}: smaller than the logical block size {logical} of {device}"
    )]
    BelowLogicalBlock {
        /// `blocksize` or `hashsize`.
        field: &'static str,
        /// The block size.
        size: BlockSize,
        /// The device's logical block size.
        logical: u64,
        /// Device path.
        device: String,
    },
    /// Table construction failed.
    #[error(transparent)]
    Verity(#[from] VerityError),
    /// The device's name cannot be a signature key's description (never expected: names
    /// are generated).
    #[error("Cannot name the root-hash signature key of the verity device: {0}")]
    SignatureKey(String),
    /// An overlay's options do not fit in the one page the kernel takes.
    #[error(
        "The overlay's lowerdir/upperdir/workdir options are {0} bytes, more than the kernel's 4095: use fewer or shorter layer paths"
    )]
    OverlayTooLong(usize),
}

/// A volume's root-hash signature for the kernel: loaded as a `user` key described
/// `description` into the keyring of the thread that loads the table, which names it in
/// `root_hash_sig_key_desc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSignature {
    /// The key's description: `kata-volume:<dm name>`.
    pub description: KeyDescription,
    /// The signature (its DER is the key's payload).
    pub signature: RootHashSignature,
}

/// The verity device to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityPlan {
    /// Device-mapper name.
    pub name: DmName,
    /// The checked parameters.
    pub params: VerityParams,
    /// Optional arguments (from the policy; the signature key's is added by [`Self::table`]).
    pub options: Vec<VerityOption>,
    /// The signature the kernel checks the root hash with (`kernel_signatures`).
    pub kernel_signature: Option<KernelSignature>,
}

impl VerityPlan {
    /// The device for `params` on the device known as `device_identity` (see [`dm_name`]).
    pub fn new(params: &VerityParams, device_identity: &str, options: Vec<VerityOption>) -> Self {
        Self {
            name: dm_name(device_identity, params, &options),
            params: params.clone(),
            options,
            kernel_signature: None,
        }
    }

    /// The same device with its root hash checked by the kernel against `signature`: a
    /// name of its own (a signed table is another table), and the key named after it.
    pub fn signed(
        params: &VerityParams,
        device_identity: &str,
        options: Vec<VerityOption>,
        signature: RootHashSignature,
    ) -> Result<Self, PlanError> {
        let name = name_of(device_identity, params, &options, true);
        let description = KeyDescription::for_device(name.as_str())
            .map_err(|e: KeyringError| PlanError::SignatureKey(e.to_string()))?;
        Ok(Self {
            name,
            params: params.clone(),
            options,
            kernel_signature: Some(KernelSignature {
                description,
                signature,
            }),
        })
    }

    /// The table with data and hash tree on `device` (a path or `major:minor`); with a
    /// kernel signature, `root_hash_sig_key_desc <description>` last (where the kernel
    /// reports it).
    pub fn table(&self, device: &str) -> Result<VerityTable, VerityError> {
        let mut options = self.options.clone();
        if let Some(k) = &self.kernel_signature {
            options.push(VerityOption::RootHashSigKeyDesc(
                k.description.as_str().to_owned(),
            ));
        }
        VerityTable::new(VerityTarget::new(&self.params, device, options)?)
    }

    /// Whether an active table (as the kernel reports it, devices as `major:minor`) is this
    /// plan's table on the device `dev`.
    pub fn matches(&self, active: &VerityTable, dev: DevNum) -> bool {
        let device = dev.to_string();
        self.table(&device).is_ok_and(|planned| planned == *active)
    }
}

/// Everything to build for one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The volume's type.
    pub volume_type: VolumeType,
    /// The source (a file is attached to a loop device first).
    pub source: Source,
    /// The verity device, when the volume is verified.
    pub verity: Option<VerityPlan>,
    /// The mount.
    pub mount: MountSpec,
    /// Where, and which directories to create.
    pub target: Target,
}

impl Plan {
    /// What identifies the same volume on the same device: requests with the same key are
    /// serialized and share one device.
    pub fn key(&self) -> String {
        match &self.verity {
            Some(v) => v.name.to_string(),
            None => self.source.identity(),
        }
    }
}

/// Plans an authorized request on what it resolved to.
pub fn plan(auth: &Authorized, resolved: Resolved) -> Result<Plan, PlanError> {
    let verity = match (&auth.verity, &auth.kernel_signature) {
        (Some(params), None) => Some(verity(
            params,
            &resolved.source,
            auth.verity_options.clone(),
        )?),
        (Some(params), Some(sig)) => {
            check_device(params, &resolved.source)?;
            let plan = VerityPlan::signed(
                params,
                &resolved.source.identity(),
                auth.verity_options.clone(),
                sig.clone(),
            )?;
            plan.table(&resolved.source.path().to_string_lossy())?;
            Some(plan)
        }
        (None, _) => None,
    };
    Ok(Plan {
        volume_type: auth.volume_type,
        source: resolved.source,
        verity,
        mount: auth.mount.clone(),
        target: resolved.target,
    })
}

/// The verity device for `params` on `source`: checks that the device can hold it and that
/// the table can be built.
pub fn verity(
    params: &VerityParams,
    source: &Source,
    options: Vec<VerityOption>,
) -> Result<VerityPlan, PlanError> {
    check_device(params, source)?;
    let plan = VerityPlan::new(params, &source.identity(), options);
    plan.table(&source.path().to_string_lossy())?;
    Ok(plan)
}

/// Checks that `source` can hold what `params` describe.
pub fn check_device(params: &VerityParams, source: &Source) -> Result<(), PlanError> {
    let device = || source.path().display().to_string();
    let logical = source.logical_block_size();
    for (field, size) in [
        ("blocksize", params.data_block_size()),
        ("hashsize", params.hash_block_size()),
    ] {
        if size.bytes() < logical.0 {
            return Err(PlanError::BelowLogicalBlock {
                field,
                size,
                logical: logical.0,
                device: device(),
            });
        }
    }
    let required = params.required_device_size();
    let size: Bytes = source.device_size();
    if size < required {
        return Err(PlanError::DeviceTooSmall {
            device: device(),
            size: size.0,
            required: required.0,
        });
    }
    Ok(())
}

/// The deterministic name of a verity device: the root hash's first 16 hex digits (to
/// recognise it) and 16 hex digits of a SHA-256 over the device's identity, every verity
/// parameter and the optional arguments. Distinct devices or parameters never share a name;
/// the same volume on the same device always gets the same one (whatever path, e.g. which
/// loop device, it is reached by).
pub fn dm_name(device_identity: &str, params: &VerityParams, options: &[VerityOption]) -> DmName {
    name_of(device_identity, params, options, false)
}

/// [`dm_name`], for a table the kernel checks a signature for (`signed`) or not.
fn name_of(
    device_identity: &str,
    params: &VerityParams,
    options: &[VerityOption],
    signed: bool,
) -> DmName {
    let mut h = Sha256::new();
    h.update(device_identity.as_bytes());
    h.update([0]);
    // Hashed as text, written straight into the hasher (no intermediate strings):
    // "<alg> <root> <salt> <data bs> <hash bs> <blocks> <offset> <options, space-separated>".
    let mut w = HashText(&mut h);
    let _ = write!(
        w,
        "{} {} {} {} {} {} {} ",
        params.algorithm(),
        params.root_hash(),
        params.salt(),
        params.data_block_size(),
        params.hash_block_size(),
        params.data_blocks(),
        params.hash_offset(),
    );
    for (i, o) in options.iter().enumerate() {
        let _ = write!(w, "{}{o}", if i == 0 { "" } else { " " });
    }
    // The hash type and the superblock are parameters too. Hashed only when not
    // the default, so every name given before they existed stays the same.
    if params.version() != crate::verity::VerityVersion::V1 {
        let _ = write!(w, " hash_type={}", params.version());
    }
    if params.has_superblock() {
        let _ = write!(w, " superblock");
    }
    // A table with a signature key is another table (the key is named after the device,
    // so it cannot be hashed itself).
    if signed {
        let _ = write!(w, " root_hash_sig");
    }
    let digest = h.finalize();
    let root = params.root_hash().as_bytes();
    let mut name = String::with_capacity(DM_NAME_PREFIX.len() + 33);
    name.push_str(DM_NAME_PREFIX);
    push_hex(&mut name, root.get(..8).unwrap_or(root));
    name.push('-');
    push_hex(&mut name, digest.get(..8).unwrap_or(&digest));
    DmName::generated(name)
}

/// Feeds formatted text to a hasher.
struct HashText<'a>(&'a mut Sha256);

impl fmt::Write for HashText<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// Appends lower-case hex of `bytes`.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Longest mount data the kernel takes (one page).
const MAX_MOUNT_DATA: usize = 4095;

/// An overlay to mount: a container's rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayPlan {
    /// The rootfs mount point, with its missing directories.
    pub target: Target,
    /// The upper and work directories, with theirs.
    pub dirs: Vec<Target>,
    /// The lower layers, top first.
    pub lowers: Vec<PathBuf>,
    /// Directories this overlay creates that hold its writes (upper, work): removed with
    /// their contents when the overlay goes.
    pub trees: Vec<PathBuf>,
    /// `overlay` with its `lowerdir`/`upperdir`/`workdir`.
    pub mount: MountSpec,
}

impl OverlayPlan {
    /// The key of an overlay: its mount point.
    pub fn key(&self) -> String {
        format!("overlay:{}", self.target.path.display())
    }

    /// The upper and work directories.
    pub fn writable(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// Every directory to create, outermost first, each once.
    pub fn missing_dirs(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = Vec::new();
        for d in self.dirs.iter().chain([&self.target]) {
            for m in &d.missing_dirs {
                if !all.contains(m) {
                    all.push(m.clone());
                }
            }
        }
        all
    }
}

/// Plans an authorized overlay on what its paths are.
pub fn plan_overlay(
    auth: &crate::policy::AuthorizedOverlay,
    resolved: crate::resolve::ResolvedOverlay,
) -> Result<OverlayPlan, PlanError> {
    if auth.mount.data.len() > MAX_MOUNT_DATA {
        return Err(PlanError::OverlayTooLong(auth.mount.data.len()));
    }
    let trees = resolved
        .dirs
        .iter()
        .filter(|d| !d.missing_dirs.is_empty())
        .map(|d| d.path.clone())
        .collect();
    Ok(OverlayPlan {
        target: resolved.target,
        dirs: resolved.dirs,
        lowers: auth.lowers.clone(),
        trees,
        mount: auth.mount.clone(),
    })
}
