//! The catalogue's trust material — a signer the policy trusts, one it does not, signatures
//! made by `openssl cms` once per test process — and the hostile requests that play with
//! root hashes and their signatures: unsigned, replayed from another layer, root hashes
//! swapped under a signature, another algorithm's hash, an untrusted signer, envelopes that
//! lie, undecodable signatures, two signatures in one request.

use std::path::PathBuf;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kata_volume::manager::{ErrorKind, Storage};

#[path = "../common/openssl.rs"]
mod openssl;

use openssl::{KeyAlg, SignOpts, Signer};

/// The driver option that carries a signature.
pub const SIG_OPTION: &str = "io.katacontainers.volume.root_hash_sig";

/// What the catalogue's policy trusts, made once per test process.
pub struct Material {
    /// The trusted signer's certificate file.
    pub signer_pem: PathBuf,
    signer: Signer,
    rogue: Signer,
    dir: PathBuf,
}

/// The material (its files stay in cargo's tmpdir for the process's lifetime).
pub fn material() -> &'static Material {
    static M: OnceLock<Material> = OnceLock::new();
    M.get_or_init(|| {
        let dir = openssl::scratch("hostile");
        let signer = openssl::self_signed(&dir, "layer-signer", KeyAlg::P256, 2, &[]);
        let rogue = openssl::self_signed(&dir, "rogue-signer", KeyAlg::P256, 2, &[]);
        let path = dir.to_path_buf();
        // Kept for the process: the policy reads the certificate from there.
        std::mem::forget(dir);
        Material {
            signer_pem: signer.cert.clone(),
            signer,
            rogue,
            dir: path,
        }
    })
}

impl Material {
    /// Base64 of a DER signature over `content` (the hex root hash, as the signer sees it).
    pub fn sign(&self, content: &str) -> String {
        STANDARD.encode(self.sign_der(content, &SignOpts::default(), false))
    }

    fn sign_der(&self, content: &str, opts: &SignOpts, rogue: bool) -> Vec<u8> {
        let by = if rogue { &self.rogue } else { &self.signer };
        openssl::sign(&self.dir, content.as_bytes(), by, opts)
    }
}

/// The driver option carrying `sig`.
pub fn sig_option(sig: &str) -> String {
    format!("{SIG_OPTION}={sig}")
}

/// The hostile trust cases, each a variant of `base` (the catalogue's good, signed request):
/// `add(name, storage, want)`.
pub fn cases(add: &mut dyn FnMut(&str, Storage, ErrorKind), base: &Storage) {
    let (trusted, trusted_b) = (super::TRUSTED, super::TRUSTED_B);
    let (verity_json, opt_of) = (super::verity_json, super::opt_of);
    let with = |f: &dyn Fn(&mut Storage)| {
        let mut s = base.clone();
        f(&mut s);
        s
    };
    use ErrorKind::*;
    let m = material();
    let sig_a = m.sign(trusted);
    let sig_b = m.sign(trusted_b);
    let sha1 = &trusted[..40];
    let sha1_json = verity_json(trusted, "").replace(
        &format!(r#""hashtype":"sha256","hash":"{trusted}""#),
        &format!(r#""hashtype":"sha1","hash":"{sha1}""#),
    );
    add(
        "unsigned trusted layer",
        with(&|s| s.driver_options.clear()),
        PermissionDenied,
    );
    add(
        "another layer's signature replayed",
        with(&|s| s.driver_options = vec![sig_option(&sig_b)]),
        PermissionDenied,
    );
    add(
        "root hashes swapped under this layer's signature",
        with(&|s| s.options = vec![opt_of(&verity_json(trusted_b, ""))]),
        PermissionDenied,
    );
    add(
        "signature over another algorithm's hash (sha256 hex for a sha1 volume)",
        with(&|s| s.options = vec![opt_of(&sha1_json)]),
        PermissionDenied,
    );
    let sha1_sig = m.sign(sha1);
    add(
        "signature over another algorithm's hash (sha1 hex for a sha256 volume)",
        with(&|s| s.driver_options = vec![sig_option(&sha1_sig)]),
        PermissionDenied,
    );
    let rogue = STANDARD.encode(m.sign_der(trusted, &SignOpts::default(), true));
    add(
        "signature by an untrusted signer",
        with(&|s| s.driver_options = vec![sig_option(&rogue)]),
        PermissionDenied,
    );
    let attached = STANDARD.encode(m.sign_der(
        trusted,
        &SignOpts {
            nodetach: true,
            ..SignOpts::default()
        },
        false,
    ));
    add(
        "signature carrying its content",
        with(&|s| s.driver_options = vec![sig_option(&attached)]),
        PermissionDenied,
    );
    let envelope = STANDARD.encode(format!(
        r#"{{"rootHash":"{trusted_b}","signature":"{sig_a}"}}"#
    ));
    add(
        ".verity.sig envelope naming another root hash",
        with(&|s| s.driver_options = vec![sig_option(&envelope)]),
        PermissionDenied,
    );
    let der = STANDARD.decode(&sig_a).unwrap_or_default();
    let truncated = STANDARD.encode(&der[..der.len() / 2]);
    for (name, sig) in [
        ("truncated signature", truncated.as_str()),
        ("signature not base64", "!!!not base64!!!"),
        ("signature of garbage", "AAAAAAAAAAAA"),
        ("empty signature", ""),
    ] {
        add(
            name,
            with(&|s| s.driver_options = vec![sig_option(sig)]),
            PermissionDenied,
        );
    }
    let in_volume = |sig: &str| {
        verity_json(trusted, "").replace(
            r#""offset":16777216"#,
            &format!(r#""offset":16777216,"root_hash_sig":"{sig}""#),
        )
    };
    add(
        "another signature in the volume than in driver_options",
        with(&|s| s.options = vec![opt_of(&in_volume(&sig_b))]),
        InvalidArgument,
    );
    add(
        "a signature twice in driver_options",
        with(&|s| s.driver_options.push(sig_option(&sig_a))),
        InvalidArgument,
    );
    add(
        "a signature among the mount options",
        with(&|s| s.options.push(sig_option(&sig_a))),
        InvalidArgument,
    );
    add(
        "a signature for an unverified volume",
        with(&|s| {
            s.options = vec![opt_of(
                r#"{"volume_type":"layer_raw_block","source":"/dev/vdb","fs_type":"erofs"}"#,
            )]
        }),
        InvalidArgument,
    );
}
