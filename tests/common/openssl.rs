//! Test helpers around the real `openssl` command: make keys and certificates, sign root
//! hashes with `openssl cms -sign` / `openssl smime -sign`, and verify with
//! `openssl smime -verify` as the reference.
//!
//! A missing `openssl` fails the test with a clear message: the cross-checks are the point
//! of these tests, so they must not pass silently without it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A key and its certificate, as PEM files.
#[derive(Debug, Clone)]
pub struct Signer {
    pub key: PathBuf,
    pub cert: PathBuf,
}

impl Signer {
    /// The certificate's PEM text.
    pub fn pem(&self) -> String {
        std::fs::read_to_string(&self.cert).unwrap()
    }

    /// The certificate's DER bytes.
    pub fn der(&self) -> Vec<u8> {
        let out = run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&self.cert));
        out.stdout
    }
}

/// Key algorithm of a generated key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    Rsa,
    P256,
    P384,
}

impl KeyAlg {
    fn newkey(self) -> Vec<&'static str> {
        match self {
            Self::Rsa => vec!["-newkey", "rsa:2048"],
            Self::P256 => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            Self::P384 => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        }
    }
}

/// How to sign.
#[derive(Debug, Clone, Default)]
pub struct SignOpts {
    /// `openssl smime` (PKCS#7) instead of `openssl cms`.
    pub smime: bool,
    /// `-noattr`: no signed attributes.
    pub noattr: bool,
    /// `-nocerts`: no certificate embedded.
    pub nocerts: bool,
    /// `-md <alg>`.
    pub md: Option<&'static str>,
    /// `-keyid` (cms only): identify the signer by subject key identifier.
    pub keyid: bool,
    /// `-nodetach`: embed the content.
    pub nodetach: bool,
    /// `-certfile`: extra certificates to embed.
    pub certfile: Option<PathBuf>,
}

/// A scratch directory under cargo's target tmpdir, removed on drop unless the test failed
/// (then it is kept to look at).
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A fresh scratch directory for each call.
pub fn scratch(name: &str) -> Scratch {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "trust-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run openssl ({e}): install it (apt-get install openssl); these tests cross-check with it")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A self-signed certificate for `cn`, valid `days` from now, with extra `-addext` values.
pub fn self_signed(dir: &Path, cn: &str, alg: KeyAlg, days: u32, exts: &[&str]) -> Signer {
    let key = dir.join(format!("{cn}.key"));
    let cert = dir.join(format!("{cn}.crt"));
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-nodes", "-sha256"])
        .args(alg.newkey())
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={cn}"), "-days", &days.to_string()]);
    for e in exts {
        cmd.args(["-addext", e]);
    }
    run(&mut cmd);
    Signer { key, cert }
}

/// A certificate for `cn` issued by `ca`, with the extension lines `ext` (an extfile).
pub fn issued(dir: &Path, cn: &str, alg: KeyAlg, ca: &Signer, ext: &str) -> Signer {
    let key = dir.join(format!("{cn}.key"));
    let csr = dir.join(format!("{cn}.csr"));
    let cert = dir.join(format!("{cn}.crt"));
    let extfile = dir.join(format!("{cn}.ext"));
    std::fs::write(&extfile, ext).unwrap();
    run(Command::new("openssl")
        .args(["req", "-new", "-nodes"])
        .args(alg.newkey())
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", &format!("/CN={cn}")]));
    run(Command::new("openssl")
        .args(["x509", "-req", "-sha256", "-days", "2", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca.cert)
        .arg("-CAkey")
        .arg(&ca.key)
        .args(["-set_serial", &format!("{}", 1000 + cn.len())])
        .arg("-out")
        .arg(&cert)
        .arg("-extfile")
        .arg(&extfile));
    Signer { key, cert }
}

/// Signs `content` (written to a file in `dir`) with `signer`; returns the DER signature.
pub fn sign(dir: &Path, content: &[u8], signer: &Signer, opts: &SignOpts) -> Vec<u8> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let input = dir.join(format!("content-{n}"));
    let output = dir.join(format!("sig-{n}.der"));
    std::fs::write(&input, content).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.arg(if opts.smime { "smime" } else { "cms" })
        .args(["-sign", "-binary", "-outform", "DER", "-in"])
        .arg(&input)
        .arg("-signer")
        .arg(&signer.cert)
        .arg("-inkey")
        .arg(&signer.key)
        .arg("-out")
        .arg(&output);
    if opts.noattr {
        cmd.arg("-noattr");
    }
    if opts.nocerts {
        cmd.arg("-nocerts");
    }
    if let Some(md) = opts.md {
        cmd.args(["-md", md]);
    }
    if opts.keyid {
        cmd.arg("-keyid");
    }
    if opts.nodetach {
        cmd.arg("-nodetach");
    }
    if let Some(f) = &opts.certfile {
        cmd.arg("-certfile").arg(f);
    }
    run(&mut cmd);
    std::fs::read(&output).unwrap()
}

/// How the reference verification runs.
#[derive(Debug, Clone, Default)]
pub struct VerifyOpts {
    /// `-attime <epoch seconds>`.
    pub attime: Option<u64>,
    /// `-purpose` (default `any`).
    pub purpose: Option<&'static str>,
    /// `-certfile`: where to look for a signer the signature does not embed.
    pub certfile: Option<PathBuf>,
    /// `openssl cms -verify` instead of `openssl smime -verify` (PKCS#7 cannot name a
    /// signer by subject key identifier).
    pub cms: bool,
}

/// `openssl smime -verify -binary -inform DER -content <content> -CAfile <ca> -purpose any`
/// (or `openssl cms -verify …`):
/// whether openssl accepts `sig` over `content` with `ca` as the only trust anchor(s).
pub fn openssl_accepts(dir: &Path, sig: &[u8], content: &[u8], ca: &Path, o: &VerifyOpts) -> bool {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let sig_path = dir.join(format!("verify-{n}.der"));
    let content_path = dir.join(format!("verify-{n}.txt"));
    std::fs::write(&sig_path, sig).unwrap();
    std::fs::write(&content_path, content).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.arg(if o.cms { "cms" } else { "smime" })
        .args(["-verify", "-binary", "-inform", "DER", "-in"])
        .arg(&sig_path)
        .arg("-content")
        .arg(&content_path)
        .arg("-CAfile")
        .arg(ca)
        .args(["-purpose", o.purpose.unwrap_or("any")])
        .args(["-out", "/dev/null"]);
    if let Some(t) = o.attime {
        cmd.args(["-attime", &t.to_string()]);
    }
    if let Some(f) = &o.certfile {
        cmd.arg("-certfile").arg(f);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run openssl ({e}): install it (apt-get install openssl); these tests cross-check with it")
    });
    out.status.success()
}
