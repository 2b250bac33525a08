//! The kernel's own root-hash check: dm-verity's `root_hash_sig_key_desc <description>` makes
//! the kernel look up a `user` key of that description in the keyrings of the task loading
//! the table, and verify the PKCS#7 signature in it against the table's root hash with the
//! keys the *kernel* trusts (its built-in and secondary keyrings).
//!
//! [`SignatureKey::load`] adds one volume's signature as a `user` key in the calling thread's
//! keyring under a per-volume description (`kata-volume:<dm name>`), and the handle unlinks
//! it again (explicitly, or on drop). The thread keyring is private to the thread, so other
//! threads' loads cannot see or replace it — which means **the table must be loaded on the
//! same OS thread** that loaded the key. The handle is neither `Send` nor `Sync` so it stays
//! on that thread; run "load key, load table, unlink" in one blocking call.
//!
//! [`kernel_signature_error`] turns the table load's `ENOKEY`/`EKEYREJECTED`/`EKEYEXPIRED`/
//! `EKEYREVOKED` into a [`KernelSignatureError`], all of which mean permission denied.
//!
//! Uses `linux-keyutils` (safe wrappers of `add_key`/`keyctl`); no `unsafe` here.

use std::fmt;
use std::marker::PhantomData;

use linux_keyutils::{Key, KeyError, KeyRing, KeyRingIdentifier};
use nix::errno::Errno;

use super::RootHashSignature;
use super::quote;

/// Why a signature key could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The description cannot be used in a dm table or as a key description.
    #[error("Invalid signature key name for device {value:?}: {why}")]
    Description {
        /// The dm name given.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The thread keyring cannot be had.
    #[error("Cannot get the thread keyring for signature key {description}")]
    Keyring {
        /// The key description.
        description: String,
        /// The keyutils error.
        #[source]
        source: KeyError,
    },
    /// `add_key` failed.
    #[error("Cannot add signature key {description} to the thread keyring")]
    Add {
        /// The key description.
        description: String,
        /// The keyutils error.
        #[source]
        source: KeyError,
    },
    /// Unlinking failed.
    #[error("Cannot unlink signature key {description} from the thread keyring")]
    Unlink {
        /// The key description.
        description: String,
        /// The keyutils error.
        #[source]
        source: KeyError,
    },
}

/// A key description for one volume's signature: `kata-volume:<dm name>`, one word (it is a
/// table argument).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyDescription(String);

impl KeyDescription {
    /// What every description starts with.
    pub const PREFIX: &'static str = "kata-volume:";
    /// Longest dm name (the kernel's `DM_NAME_LEN` is 128 with the NUL).
    const MAX_NAME: usize = 127;

    /// The description for the device `dm_name`.
    pub fn for_device(dm_name: &str) -> Result<Self, KeyringError> {
        let bad = |why| KeyringError::Description {
            value: quote(dm_name),
            why,
        };
        if dm_name.is_empty() {
            return Err(bad("it is empty"));
        }
        if dm_name.len() > Self::MAX_NAME {
            return Err(bad("it is longer than 127 bytes"));
        }
        if dm_name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(bad("it contains whitespace, a control character or '/'"));
        }
        Ok(Self(format!("{}{dm_name}", Self::PREFIX)))
    }

    /// The description, as passed to `root_hash_sig_key_desc`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One volume's signature, loaded as a `user` key in this thread's keyring; unlinked on
/// drop. Not `Send`: the key lives in this thread's keyring only.
///
/// ```compile_fail
/// fn must_be_send<T: Send>() {}
/// must_be_send::<kata_volume::trust::SignatureKey>();
/// ```
#[derive(Debug)]
pub struct SignatureKey {
    ring: KeyRing,
    key: Option<Key>,
    description: KeyDescription,
    _this_thread: PhantomData<*const ()>,
}

impl SignatureKey {
    /// Adds `signature`'s DER as a `user` key named `description` to the thread keyring.
    pub fn load(
        description: KeyDescription,
        signature: &RootHashSignature,
    ) -> Result<Self, KeyringError> {
        let ring = KeyRing::from_special_id(KeyRingIdentifier::Thread, true).map_err(|source| {
            KeyringError::Keyring {
                description: description.0.clone(),
                source,
            }
        })?;
        let key = ring
            .add_key(description.as_str(), signature.der())
            .map_err(|source| KeyringError::Add {
                description: description.0.clone(),
                source,
            })?;
        Ok(Self {
            ring,
            key: Some(key),
            description,
            _this_thread: PhantomData,
        })
    }

    /// The description the table must name.
    pub fn description(&self) -> &KeyDescription {
        &self.description
    }

    /// The key's serial number (as `keyctl` shows it).
    pub fn serial(&self) -> Option<i32> {
        self.key.map(|k| k.get_id().as_raw_id())
    }

    /// Unlinks the key now (the kernel has copied what it needs once the table is loaded).
    pub fn unlink(mut self) -> Result<(), KeyringError> {
        self.unlink_inner()
    }

    fn unlink_inner(&mut self) -> Result<(), KeyringError> {
        match self.key.take() {
            Some(k) => self
                .ring
                .unlink_key(k)
                .map_err(|source| KeyringError::Unlink {
                    description: self.description.0.clone(),
                    source,
                }),
            None => Ok(()),
        }
    }
}

impl Drop for SignatureKey {
    fn drop(&mut self) {
        // Nothing to report to from a drop; the thread keyring dies with the thread anyway.
        let _ = self.unlink_inner();
    }
}

/// The kernel refused a table because of its root-hash signature: permission denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelSignatureError {
    /// `ENOKEY`.
    #[error(
        "The kernel refused the root-hash signature {description} (ENOKEY): no key in its trusted keyrings vouches for the signer, or the signature key is not in the loading thread's keyring"
    )]
    NoTrustedKey {
        /// The key description in the table.
        description: String,
    },
    /// `EKEYREJECTED`.
    #[error(
        "The kernel rejected the root-hash signature {description} (EKEYREJECTED): it does not verify for the table's root hash"
    )]
    Rejected {
        /// The key description in the table.
        description: String,
    },
    /// `EKEYEXPIRED`.
    #[error(
        "The kernel refused the root-hash signature {description} (EKEYEXPIRED): the signer's key has expired"
    )]
    Expired {
        /// The key description in the table.
        description: String,
    },
    /// `EKEYREVOKED`.
    #[error(
        "The kernel refused the root-hash signature {description} (EKEYREVOKED): the key was revoked"
    )]
    Revoked {
        /// The key description in the table.
        description: String,
    },
}

/// The signature-related meaning of a failed table load's `errno`, if it has one. Every
/// [`KernelSignatureError`] maps to `PERMISSION_DENIED`; other errors keep their own meaning.
pub fn kernel_signature_error(
    errno: Errno,
    description: &KeyDescription,
) -> Option<KernelSignatureError> {
    let description = description.0.clone();
    match errno {
        Errno::ENOKEY => Some(KernelSignatureError::NoTrustedKey { description }),
        Errno::EKEYREJECTED => Some(KernelSignatureError::Rejected { description }),
        Errno::EKEYEXPIRED => Some(KernelSignatureError::Expired { description }),
        Errno::EKEYREVOKED => Some(KernelSignatureError::Revoked { description }),
        _ => None,
    }
}
