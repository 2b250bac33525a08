#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Per-volume signature keys in the thread keyring (real `add_key`/`keyctl`, no
//! device-mapper needed), and the mapping of the kernel's key errors. Whether the kernel then
//! accepts or rejects a table naming the key is for the VM suite.
//!
//! These need the kernel's key management (`add_key` is allowed for any user); if a sandbox
//! forbids it they fail loudly rather than pass.

use kata_volume::trust::{
    KernelSignatureError, KeyDescription, KeyringError, RootHashSignature, SignatureKey,
    kernel_signature_error,
};
use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier};
use nix::errno::Errno;

fn signature(bytes: &[u8]) -> RootHashSignature {
    RootHashSignature::from_der(bytes.to_vec()).unwrap()
}

fn thread_keyring() -> KeyRing {
    KeyRing::from_special_id(KeyRingIdentifier::Thread, true).unwrap()
}

#[test]
fn descriptions_are_one_word_per_device() {
    let d = KeyDescription::for_device("kata-verity-9f2a6c4e").unwrap();
    assert_eq!(d.as_str(), "kata-volume:kata-verity-9f2a6c4e");
    assert_eq!(d.to_string(), d.as_str());
    for (bad, why) in [
        ("", "empty"),
        ("a b", "whitespace"),
        ("a\tb", "whitespace"),
        ("a/b", "'/'"),
        ("a\u{7}b", "control"),
        (&"x".repeat(128), "127 bytes"),
    ] {
        let e = KeyDescription::for_device(bad).unwrap_err();
        assert!(matches!(e, KeyringError::Description { .. }));
        let msg = e.to_string();
        assert!(
            msg.starts_with("Invalid signature key name for device "),
            "{msg}"
        );
        assert!(msg.contains(why), "{msg}");
    }
    assert!(KeyDescription::for_device(&"x".repeat(127)).is_ok());
}

#[test]
fn a_loaded_key_holds_the_signature_in_this_threads_keyring_until_unlinked() {
    let desc = KeyDescription::for_device("trust-test-unlink").unwrap();
    let der = b"\x30\x03\x02\x01\x07";
    let key = SignatureKey::load(desc.clone(), &signature(der)).unwrap();
    assert_eq!(key.description(), &desc);
    assert!(key.serial().is_some_and(|s| s > 0));
    let found = thread_keyring().search(desc.as_str()).unwrap();
    assert_eq!(Some(found.get_id().as_raw_id()), key.serial());
    assert_eq!(found.read_to_vec().unwrap(), der);

    // Another thread has its own thread keyring: the key is not there (which is why the
    // table must be loaded on the thread that loaded the key).
    let name = desc.as_str().to_owned();
    let elsewhere = std::thread::spawn(move || thread_keyring().search(&name).is_ok())
        .join()
        .unwrap();
    assert!(!elsewhere);

    key.unlink().unwrap();
    assert_eq!(
        thread_keyring().search(desc.as_str()).unwrap_err(),
        KeyError::KeyDoesNotExist
    );
}

#[test]
fn dropping_the_handle_unlinks_the_key() {
    let desc = KeyDescription::for_device("trust-test-drop").unwrap();
    {
        let _key = SignatureKey::load(desc.clone(), &signature(b"\x30\x00")).unwrap();
        assert!(thread_keyring().search(desc.as_str()).is_ok());
    }
    assert_eq!(
        thread_keyring().search(desc.as_str()).unwrap_err(),
        KeyError::KeyDoesNotExist
    );
}

#[test]
fn two_volumes_get_two_keys() {
    let d1 = KeyDescription::for_device("trust-test-one").unwrap();
    let d2 = KeyDescription::for_device("trust-test-two").unwrap();
    let k1 = SignatureKey::load(d1.clone(), &signature(b"\x30\x01\x01")).unwrap();
    let k2 = SignatureKey::load(d2.clone(), &signature(b"\x30\x01\x02")).unwrap();
    assert_ne!(k1.serial(), k2.serial());
    assert_eq!(
        thread_keyring()
            .search(d1.as_str())
            .unwrap()
            .read_to_vec()
            .unwrap(),
        b"\x30\x01\x01"
    );
    drop(k1);
    assert!(thread_keyring().search(d1.as_str()).is_err());
    assert_eq!(
        thread_keyring()
            .search(d2.as_str())
            .unwrap()
            .read_to_vec()
            .unwrap(),
        b"\x30\x01\x02"
    );
    k2.unlink().unwrap();
}

#[test]
fn the_kernels_key_errors_map_to_permission_denied_kinds() {
    let d = KeyDescription::for_device("vol").unwrap();
    let cases = [
        (
            Errno::ENOKEY,
            "(ENOKEY): no key in its trusted keyrings vouches for the signer",
        ),
        (
            Errno::EKEYREJECTED,
            "(EKEYREJECTED): it does not verify for the table's root hash",
        ),
        (Errno::EKEYEXPIRED, "(EKEYEXPIRED)"),
        (Errno::EKEYREVOKED, "(EKEYREVOKED)"),
    ];
    for (errno, text) in cases {
        let e = kernel_signature_error(errno, &d).unwrap();
        let msg = e.to_string();
        assert!(msg.starts_with("The kernel "), "{msg}");
        assert!(msg.contains("kata-volume:vol"), "{msg}");
        assert!(msg.contains(text), "{msg}");
    }
    assert_eq!(
        kernel_signature_error(Errno::ENOKEY, &d),
        Some(KernelSignatureError::NoTrustedKey {
            description: "kata-volume:vol".into()
        })
    );
    for other in [Errno::EINVAL, Errno::EBUSY, Errno::EPERM, Errno::ENOENT] {
        assert_eq!(kernel_signature_error(other, &d), None, "{other}");
    }
}
