//! The policy's answer to "who vouches for this root hash": the trust material it loads once
//! at start ([`Policy::load_trust`]) — the allowlist (`trusted_root_hashes`, a
//! `verified-layers.toml` file, the one inside the initdata document, `require_verified_layers`)
//! and the trusted signer certificates (PEM files, or PEM texts in the initdata document) —
//! and the check [`Policy::authorize`] runs with it (allowlist, then signature) before any
//! device is looked at.
//!
//! A [`Trust`] remembers the policy keys it was loaded from; `authorize` refuses every
//! verified volume when they changed since (fail closed: a policy whose files were never
//! read must not mount as if it trusted nothing in particular). Reading files happens here,
//! at start only; parsing and verifying is the `trust` module's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Policy, PolicyError};
use crate::request::VolumeRequest;
use crate::trust::{
    Allowlist, AllowlistError, Initdata, InitdataAlgorithm, InitdataError, MaterialDigest,
    RootHashSignature, SignatureError, TrustedSigners, VerifiedSigner,
};
use crate::verity::HashAlgorithm;
use crate::volume::truncate_for_error;

/// The prefix of a `trusted_signers` entry that names a key of the initdata document.
pub const INITDATA_PREFIX: &str = "initdata:";

/// The policy keys trust material is loaded from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TrustKeys {
    trusted_root_hashes: Option<BTreeSet<String>>,
    verified_layers: Option<PathBuf>,
    initdata: Option<PathBuf>,
    require_verified_layers: bool,
    trusted_signers: Vec<String>,
}

/// The initdata document's own digest, in its own algorithm: what the TEE measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitdataDigest {
    /// The file it was read from.
    pub source: String,
    /// The document's algorithm.
    pub algorithm: InitdataAlgorithm,
    /// The digest, lower-case hex.
    pub digest: String,
}

/// The trust material a policy loaded: its allowlist and trusted signers, and the digests of
/// every file they came from.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    keys: TrustKeys,
    allowlist: Allowlist,
    signers: TrustedSigners,
    initdata: Option<InitdataDigest>,
    initdata_material: Option<MaterialDigest>,
}

impl PartialEq for Trust {
    /// The same keys, the same allowlist, and signers from the same bytes.
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
            && self.allowlist == other.allowlist
            && self.signers.material() == other.signers.material()
            && self.initdata == other.initdata
    }
}

impl Eq for Trust {}

impl Trust {
    /// The allowlist of verified layers.
    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// The trusted signer certificates.
    pub fn signers(&self) -> &TrustedSigners {
        &self.signers
    }

    /// The SHA-256 of every trust file loaded (the initdata document first, then the
    /// allowlist's files, then the signers'), one entry per file or initdata key.
    pub fn material(&self) -> Vec<MaterialDigest> {
        self.initdata_material
            .iter()
            .chain(self.allowlist.material())
            .chain(self.signers.material())
            .cloned()
            .collect()
    }

    /// The initdata document's digest in its own algorithm, when one was loaded.
    pub fn initdata_digest(&self) -> Option<&InitdataDigest> {
        self.initdata.as_ref()
    }
}

/// Why the policy's trust files could not be loaded. Each names the file or policy key.
#[derive(Debug, thiserror::Error)]
pub enum TrustFileError {
    /// A file cannot be read.
    #[error("Cannot read {what} {}", crate::volume::shown(path))]
    Read {
        /// Which policy key named it.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The allowlist (a file, the initdata key, or `trusted_root_hashes`) is malformed.
    #[error(transparent)]
    Allowlist(#[from] AllowlistError),
    /// The initdata document is malformed.
    #[error(transparent)]
    Initdata(#[from] InitdataError),
    /// A trusted signer PEM is malformed.
    #[error(transparent)]
    Signers(#[from] SignatureError),
    /// A trusted signer names initdata, and no initdata document is configured.
    #[error(
        "Trusted signer {entry:?} names the initdata document, but none is configured (policy initdata, --initdata)"
    )]
    NoInitdata {
        /// The `trusted_signers` entry.
        entry: String,
    },
    /// A trusted signer names an initdata key the document does not have.
    #[error(
        "Trusted signer {entry:?}: initdata {} has no key {key:?}",
        crate::volume::shown(path)
    )]
    MissingInitdataKey {
        /// The `trusted_signers` entry.
        entry: String,
        /// The initdata file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// An empty `trusted_signers` entry.
    #[error("Trusted signer \"\" names no file: give a PEM file or initdata:<key>")]
    EmptySigner,
}

/// Why a volume's root hash is trusted, as `authorize` found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vouched {
    /// The allowlist lists it (`false`: the allowlist restricts nothing).
    pub listed: bool,
    /// Who signed it, when a signature was verified in userspace.
    pub signer: Option<VerifiedSigner>,
    /// The kernel checks its signature too, when the table is loaded.
    pub kernel: bool,
}

impl Policy {
    fn trust_keys(&self) -> TrustKeys {
        TrustKeys {
            trusted_root_hashes: self.trusted_root_hashes.clone(),
            verified_layers: self.verified_layers.clone(),
            initdata: self.initdata.clone(),
            require_verified_layers: self.require_verified_layers,
            trusted_signers: self.trusted_signers.clone(),
        }
    }

    /// Reads and parses the trust files the policy names (`verified_layers`, `initdata`,
    /// `trusted_signers`) and builds the allowlist with `trusted_root_hashes` and
    /// `require_verified_layers`. Call it once the policy is final (after the command-line
    /// flags are applied), and again after any change to those keys: until then
    /// [`Policy::authorize`] refuses every verified volume.
    pub fn load_trust(&mut self) -> Result<(), TrustFileError> {
        self.trust = Self::build_trust(&self.trust_keys())?;
        Ok(())
    }

    /// Whether the loaded trust material is the one the policy's keys name.
    pub fn trust_loaded(&self) -> bool {
        self.trust.keys == self.trust_keys()
    }

    fn build_trust(keys: &TrustKeys) -> Result<Trust, TrustFileError> {
        let mut allowlist = Allowlist::new();
        if let Some(hashes) = &keys.trusted_root_hashes {
            allowlist = policy_hashes(hashes)?;
        }
        if let Some(path) = &keys.verified_layers {
            let text = read_text("verified_layers file", path)?;
            allowlist.extend(Allowlist::from_verified_layers(
                &text,
                &path.display().to_string(),
            )?);
        }
        let mut initdata = None;
        if let Some(path) = &keys.initdata {
            let bytes = std::fs::read(path).map_err(|source| TrustFileError::Read {
                what: "initdata file",
                path: path.clone(),
                source,
            })?;
            let doc = Initdata::parse(&bytes, &path.display().to_string())?;
            if let Some(list) = Allowlist::from_initdata(&doc)? {
                allowlist.extend(list);
            }
            initdata = Some((path, doc));
        }
        if keys.require_verified_layers {
            allowlist.set_required(true);
        }
        let mut signers = TrustedSigners::new();
        for entry in &keys.trusted_signers {
            if entry.is_empty() {
                return Err(TrustFileError::EmptySigner);
            }
            match entry.strip_prefix(INITDATA_PREFIX) {
                Some(key) => {
                    let Some((path, doc)) = &initdata else {
                        return Err(TrustFileError::NoInitdata {
                            entry: truncate_for_error(entry),
                        });
                    };
                    let text = doc
                        .file(key)
                        .ok_or_else(|| TrustFileError::MissingInitdataKey {
                            entry: truncate_for_error(entry),
                            path: (*path).clone(),
                            key: truncate_for_error(key),
                        })?;
                    signers.add_pem(text, entry)?;
                }
                None => {
                    let path = Path::new(entry);
                    let text = read_text("trusted signer file", path)?;
                    signers.add_pem(&text, entry)?;
                }
            }
        }
        let (initdata, initdata_material) = match initdata {
            Some((path, doc)) => (
                Some(InitdataDigest {
                    source: path.display().to_string(),
                    algorithm: doc.algorithm(),
                    digest: hex::encode(doc.digest()),
                }),
                Some(doc.material().clone()),
            ),
            None => (None, None),
        };
        Ok(Trust {
            keys: keys.clone(),
            allowlist,
            signers,
            initdata,
            initdata_material,
        })
    }

    /// The trust checks of [`Policy::authorize`]: the allowlist, then the signature.
    pub(super) fn check_trust(
        &self,
        req: &VolumeRequest,
        now: SystemTime,
    ) -> Result<Vouched, PolicyError> {
        if !self.trust_loaded() {
            return Err(PolicyError::TrustNotLoaded);
        }
        let root = req.verity.as_ref().map(|p| p.root_hash());
        let listing = self.trust.allowlist.check(root)?;
        let mut vouched = Vouched {
            listed: listing == crate::trust::Listing::Listed,
            ..Vouched::default()
        };
        let Some(root) = root else {
            return Ok(vouched);
        };
        let sig = req.root_hash_sig.as_ref();
        if !self.trust.signers.is_empty() {
            vouched.signer = self
                .trust
                .signers
                .check(sig, root, self.require_signatures, now)?;
        } else if self.require_signatures {
            // Nobody in userspace can check it: the kernel must (kernel_signatures), and
            // without it nothing can be trusted.
            match sig {
                None => {
                    return Err(SignatureError::Unsigned {
                        root_hash: root.to_hex(),
                    }
                    .into());
                }
                Some(_) if !self.kernel_signatures => {
                    return Err(SignatureError::NoTrustedSigners.into());
                }
                Some(_) => {}
            }
        }
        vouched.kernel = self.kernel_signatures && sig.is_some();
        Ok(vouched)
    }

    /// The signature the kernel checks too, when `kernel_signatures` is on.
    pub(super) fn kernel_signature(&self, req: &VolumeRequest) -> Option<RootHashSignature> {
        self.kernel_signatures
            .then(|| req.root_hash_sig.clone())
            .flatten()
    }
}

/// The policy's own list: `<alg>:<hex>`, or bare hex of the algorithm its length names
/// (40 digits sha1, 128 sha512, else sha256). Listed pairs are always required: a policy
/// that names trusted root hashes (even none) trusts nothing else.
pub(super) fn policy_hashes(hashes: &BTreeSet<String>) -> Result<Allowlist, AllowlistError> {
    let named: Vec<String> = hashes
        .iter()
        .map(|h| {
            let implied = match h.len() {
                40 => Some(HashAlgorithm::Sha1),
                128 => Some(HashAlgorithm::Sha512),
                _ => None,
            }
            .filter(|_| !h.contains(':'));
            implied.map_or_else(|| h.clone(), |alg| format!("{alg}:{h}"))
        })
        .collect();
    let mut list = Allowlist::new();
    list.add_hashes(
        "trusted_root_hashes",
        HashAlgorithm::Sha256,
        named.iter().map(String::as_str),
    )?;
    list.set_required(true);
    Ok(list)
}

fn read_text(what: &'static str, path: &Path) -> Result<String, TrustFileError> {
    std::fs::read_to_string(path).map_err(|source| TrustFileError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}
