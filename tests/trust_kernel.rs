#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Kernel signatures over the fake (`kernel_signatures`): each volume's signature is loaded as
//! a `user` key of its own (`kata-volume:<dm name>`) in the loading thread's keyring, named in
//! that volume's table, and unlinked after the load; the kernel's refusals (`ENOKEY`,
//! `EKEYREJECTED`, …, and an unsigned table under `require_signatures`) are
//! `PERMISSION_DENIED` with nothing left; the table read back must carry the authorized root
//! hash. What the real kernel answers is the VM suite's (`vm-tests`).

#[path = "common/openssl.rs"]
mod openssl;
#[path = "common/pipeline.rs"]
mod pipeline;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kata_volume::manager::{ErrorKind, Storage, VolumeManager};
use kata_volume::system::{DmName, FakeSystem, Op, System};
use nix::libc;
use openssl::{KeyAlg, SignOpts, self_signed, sign};
use pipeline::{ROOT, manager, policy, request, system};

const ROOT_A: &str = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";
const ROOT_B: &str = "0f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3b";

/// A scratch dir with a signer, and base64 signatures by it over `ROOT_A` and `ROOT_B`.
struct Signed {
    dir: openssl::Scratch,
    signer: openssl::Signer,
}

impl Signed {
    fn new(name: &str) -> Self {
        let dir = openssl::scratch(name);
        let signer = self_signed(&dir, "kernel-signer", KeyAlg::Rsa, 1, &[]);
        Self { dir, signer }
    }

    fn der(&self, content: &str) -> Vec<u8> {
        sign(
            &self.dir,
            content.as_bytes(),
            &self.signer,
            &SignOpts::default(),
        )
    }

    /// A manager checking signatures in userspace (by the signer) and in the kernel.
    fn manager(&self, sys: &Arc<FakeSystem>) -> VolumeManager {
        let cert = self.signer.cert.display().to_string();
        manager(
            sys,
            policy(|p| {
                p.trusted_signers = vec![cert];
                p.kernel_signatures = true;
            }),
        )
    }
}

/// A manager whose only signature check is the kernel's (no trusted signers in userspace).
fn kernel_only(sys: &Arc<FakeSystem>) -> VolumeManager {
    manager(sys, policy(|p| p.kernel_signatures = true))
}

fn b64(der: &[u8]) -> String {
    STANDARD.encode(der)
}

/// Asserts a refusal with `kind` and `says` that left no device, node, mount, key or state.
fn refused_clean(m: &VolumeManager, sys: &FakeSystem, s: &Storage, kind: ErrorKind, says: &str) {
    let before = sys.snapshot();
    let e = m.add_storage(s).unwrap_err();
    let msg = kata_volume::error_chain(&e);
    assert_eq!(e.kind(), kind, "{msg}");
    assert!(msg.contains(says), "{msg:?} does not say {says:?}");
    assert_eq!(sys.snapshot(), before, "{msg}");
    assert!(sys.snapshot().keys.is_empty(), "a key was left: {msg}");
    assert!(m.list().is_empty());
}

#[test]
fn the_key_is_loaded_under_the_devices_name_named_in_its_table_and_unlinked() {
    let t = Signed::new("kernel-ok");
    let sys = system();
    let m = t.manager(&sys);
    let der = t.der(ROOT_A);
    let v = m
        .add_storage(&request(ROOT_A, Some(&b64(&der)), "a"))
        .unwrap();
    let name = v.dm_name.unwrap();
    let desc = format!("kata-volume:{name}");
    // The kernel found the volume's own signature under the device's own description.
    assert_eq!(sys.signed_loads(), vec![(desc.clone(), der)]);
    // The active table names it, last (where the kernel reports it).
    let table = sys.dm_table(&name).unwrap();
    assert!(
        table.ends_with(&format!(" 2 root_hash_sig_key_desc {desc}")),
        "{table}"
    );
    // Added, loaded, unlinked: in that order, one after the other; nothing left in any
    // keyring.
    let calls = sys.calls();
    let at = calls.iter().position(|c| *c == Op::KeyAdd).unwrap();
    assert_eq!(&calls[at..at + 3], &[Op::KeyAdd, Op::DmLoad, Op::KeyUnlink]);
    assert!(sys.snapshot().keys.is_empty());
    // A signed table is another table: another name than the unsigned one of the same
    // volume on the same disk.
    let plain = manager(&system(), policy(|_| {}))
        .add_storage(&request(ROOT_A, None, "a"))
        .unwrap();
    assert_ne!(plain.dm_name.unwrap(), name);
    // Asked again: already there, nothing loaded again.
    assert!(
        m.add_storage(&request(ROOT_A, Some(&b64(&t.der(ROOT_A))), "a"))
            .unwrap()
            .already_present
    );
    assert_eq!(sys.count(Op::KeyAdd), 1);
    // Each add is one claim (as the agent counts storages): the first remove gives one back
    // and keeps the device, the second tears it down.
    assert!(m.remove_storage(&format!("{ROOT}/a")).unwrap());
    assert_eq!(sys.snapshot().dm.len(), 1);
    assert!(m.remove_storage(&format!("{ROOT}/a")).unwrap());
    assert!(sys.snapshot().dm.is_empty());
}

#[test]
fn the_kernels_refusals_are_permission_denied_and_leave_nothing() {
    let t = Signed::new("kernel-refused");
    for (errno, says) in [
        (
            libc::ENOKEY,
            "(ENOKEY): no key in its trusted keyrings vouches for the signer",
        ),
        (libc::EKEYREJECTED, "(EKEYREJECTED): it does not verify"),
        (libc::EKEYEXPIRED, "(EKEYEXPIRED)"),
        (libc::EKEYREVOKED, "(EKEYREVOKED)"),
    ] {
        let sys = system();
        sys.refuse_signatures(errno);
        let m = t.manager(&sys);
        refused_clean(
            &m,
            &sys,
            &request(ROOT_A, Some(&b64(&t.der(ROOT_A))), "a"),
            ErrorKind::PermissionDenied,
            says,
        );
        // The kernel saw the signature (it was not refused before the load), and the device
        // was created and removed again.
        assert_eq!(sys.signed_loads().len(), 1);
        assert_eq!((sys.count(Op::DmCreate), sys.count(Op::DmRemove)), (1, 1));
    }
}

#[test]
fn without_userspace_signers_the_kernel_alone_judges_the_signature() {
    let t = Signed::new("kernel-only");
    let sys = system();
    sys.refuse_signatures(libc::EKEYREJECTED);
    let m = kernel_only(&sys);
    // A signature over another hash is not checked in userspace: the kernel gets it.
    let other = t.der(ROOT_B);
    refused_clean(
        &m,
        &sys,
        &request(ROOT_A, Some(&b64(&other)), "a"),
        ErrorKind::PermissionDenied,
        "EKEYREJECTED",
    );
    assert_eq!(sys.signed_loads()[0].1, other);
    // Signatures required with the kernel as the only judge: a signed volume goes to the
    // kernel (which accepts it here), an unsigned one is refused before.
    let sys = system();
    let m = manager(
        &sys,
        policy(|p| {
            p.kernel_signatures = true;
            p.require_signatures = true;
        }),
    );
    refused_clean(
        &m,
        &sys,
        &request(ROOT_A, None, "b"),
        ErrorKind::PermissionDenied,
        "is not signed",
    );
    let der = t.der(ROOT_A);
    m.add_storage(&request(ROOT_A, Some(&b64(&der)), "a"))
        .unwrap();
    assert_eq!(sys.signed_loads()[0].1, der);
}

#[test]
fn with_userspace_signers_a_bad_signature_never_reaches_the_kernel() {
    let t = Signed::new("kernel-both");
    let sys = system();
    let m = t.manager(&sys);
    refused_clean(
        &m,
        &sys,
        &request(ROOT_A, Some(&b64(&t.der(ROOT_B))), "a"),
        ErrorKind::PermissionDenied,
        "made for other data",
    );
    assert!(sys.signed_loads().is_empty());
    assert_eq!(sys.count(Op::DmCreate), 0);
}

#[test]
fn a_kernel_that_requires_signatures_refuses_an_unsigned_table() {
    let t = Signed::new("kernel-required");
    let sys = system();
    sys.require_signatures();
    for m in [kernel_only(&sys), manager(&sys, policy(|_| {}))] {
        refused_clean(
            &m,
            &sys,
            &request(ROOT_A, None, "a"),
            ErrorKind::PermissionDenied,
            "refused the unsigned table",
        );
    }
    // A signed one goes through (this fake kernel accepts the signer).
    kernel_only(&sys)
        .add_storage(&request(ROOT_A, Some(&b64(&t.der(ROOT_A))), "a"))
        .unwrap();
}

#[test]
fn a_failed_key_add_leaves_nothing_and_a_failed_unlink_is_reported() {
    let t = Signed::new("kernel-keyops");
    let sig = b64(&t.der(ROOT_A));
    let sys = system();
    sys.fail_nth(Op::KeyAdd, 0, libc::EDQUOT);
    refused_clean(
        &t.manager(&sys),
        &sys,
        &request(ROOT_A, Some(&sig), "a"),
        ErrorKind::Internal,
        "Failed to load the verity table: Cannot add the signature key to the thread keyring",
    );
    assert_eq!(sys.count(Op::DmLoad), 0);
    // The unlink fails after a good load: the device is rolled back, and the key that could
    // not be unlinked is what is left (in that thread's keyring), which the error says.
    let sys = system();
    sys.fail_nth(Op::KeyUnlink, 0, libc::EACCES);
    let m = t.manager(&sys);
    let e = m
        .add_storage(&request(ROOT_A, Some(&sig), "a"))
        .unwrap_err();
    let msg = kata_volume::error_chain(&e);
    assert_eq!(e.kind(), ErrorKind::Internal, "{msg}");
    assert!(msg.contains("Cannot unlink the signature key of"), "{msg}");
    assert!(sys.snapshot().dm.is_empty() && sys.snapshot().mounts.is_empty());
    assert_eq!(sys.snapshot().keys.len(), 1);
}

#[test]
fn the_table_read_back_must_carry_the_authorized_root_hash() {
    let t = Signed::new("kernel-readback");
    for m_of in [
        (|sys: &Arc<FakeSystem>| manager(sys, policy(|_| {}))) as fn(&_) -> _,
        |sys: &Arc<FakeSystem>| {
            manager(
                sys,
                policy(|p| p.trusted_root_hashes = Some([ROOT_A.to_owned()].into_iter().collect())),
            )
        },
    ] {
        let sys = system();
        sys.report_root_hash(ROOT_B);
        let m = m_of(&sys);
        refused_clean(
            &m,
            &sys,
            &request(ROOT_A, None, "a"),
            ErrorKind::PermissionDenied,
            &format!("has root hash {ROOT_B}, not the authorized {ROOT_A}"),
        );
        assert_eq!(sys.count(Op::DmRemove), 1, "the device was removed again");
    }
    // The same with a signed table.
    let sys = system();
    sys.report_root_hash(ROOT_B);
    refused_clean(
        &t.manager(&sys),
        &sys,
        &request(ROOT_A, Some(&b64(&t.der(ROOT_A))), "a"),
        ErrorKind::PermissionDenied,
        "not the authorized",
    );
}

#[test]
fn a_table_naming_a_key_finds_it_only_in_the_loading_threads_keyring() {
    let t = Signed::new("kernel-thread");
    let sys = system();
    let m = t.manager(&sys);
    let v = m
        .add_storage(&request(ROOT_A, Some(&b64(&t.der(ROOT_A))), "a"))
        .unwrap();
    let name = v.dm_name.unwrap();
    // The same table loaded again without the key in this thread's keyring (the way a load
    // on another thread would see it): ENOKEY, as the kernel answers.
    let table: kata_volume::verity::VerityTable = sys.dm_table(&name).unwrap().parse().unwrap();
    assert!(table.to_string().contains("root_hash_sig_key_desc"));
    let other = DmName::new("kata-volume-test-other").unwrap();
    sys.dm_create(&other).unwrap();
    let e = sys.dm_load(&other, &table).unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOKEY), "{e}");
}

#[test]
fn a_restarted_manager_adopts_a_signed_volume_and_finds_it_already_there() {
    use kata_volume::manager::{ManagerOptions, StateStore};
    let t = Signed::new("kernel-restart");
    let sys = system();
    let store: Arc<dyn StateStore> = Arc::new(pipeline::MemStore::default());
    let opts = || {
        let cert = t.signer.cert.display().to_string();
        ManagerOptions {
            policy: policy(|p| {
                p.trusted_signers = vec![cert];
                p.kernel_signatures = true;
            }),
        }
    };
    let sig = b64(&t.der(ROOT_A));
    let (first, _) = VolumeManager::new(sys.clone(), store.clone(), opts()).unwrap();
    let v = first
        .add_storage(&request(ROOT_A, Some(&sig), "a"))
        .unwrap();
    drop(first);
    let (second, report) = VolumeManager::new(sys.clone(), store, opts()).unwrap();
    assert_eq!(report.adopted, 1);
    let again = second
        .add_storage(&request(ROOT_A, Some(&sig), "a"))
        .unwrap();
    assert!(again.already_present);
    assert_eq!(again.dm_name, v.dm_name);
    assert_eq!(
        sys.count(Op::KeyAdd),
        1,
        "the kernel's table was compared, not reloaded"
    );
}
