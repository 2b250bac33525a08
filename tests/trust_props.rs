#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Property tests of the trust module: the allowlist admits exactly what it lists, keyed by
//! algorithm and blind to the case of the hex; nothing panics on any input to the parsers
//! and the signature check, and every error is one line starting with a capital.

#[path = "common/openssl.rs"]
mod openssl;

use std::sync::OnceLock;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kata_volume::trust::{
    Allowlist, AllowlistError, Initdata, Listing, RootHashSignature, TrustedSigners,
};
use kata_volume::verity::{Digest, HashAlgorithm};
use proptest::prelude::*;
use proptest::sample::select;

fn algorithm() -> impl Strategy<Value = HashAlgorithm> {
    select(vec![
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha1,
        HashAlgorithm::Sha512,
    ])
}

fn digest() -> impl Strategy<Value = Digest> {
    algorithm().prop_flat_map(|a| {
        proptest::collection::vec(any::<u8>(), a.digest_size())
            .prop_map(move |b| Digest::from_bytes(a, &b).unwrap())
    })
}

/// `hex` with each letter's case chosen by `mask`.
fn recase(hex: &str, mask: &[bool]) -> String {
    hex.chars()
        .zip(mask.iter().cycle())
        .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
        .collect()
}

fn one_line_capitalised(msg: &str) {
    assert!(msg.starts_with(char::is_uppercase), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

proptest! {
    #[test]
    fn the_allowlist_admits_exactly_what_it_lists_in_any_case(
        listed in proptest::collection::vec(digest(), 1..8),
        query in digest(),
        mask in proptest::collection::vec(any::<bool>(), 1..16),
        required in any::<bool>(),
    ) {
        let mut text = format!("require_verified_layers = {required}\n");
        for d in &listed {
            text.push_str(&format!(
                "[[layer]]\nalgorithm = \"{}\"\nroot_hash = \"{}\"\n",
                recase(d.algorithm().name(), &mask),
                recase(&d.to_hex(), &mask)
            ));
        }
        let list = Allowlist::from_verified_layers(&text, "p").unwrap();
        for d in &listed {
            prop_assert_eq!(list.check(Some(d)), Ok(Listing::Listed));
            // The same digest parsed from hex of another case is the same digest.
            let again = Digest::from_hex(d.algorithm(), &recase(&d.to_hex(), &[true])).unwrap();
            prop_assert_eq!(list.check(Some(&again)), Ok(Listing::Listed));
        }
        let verdict = list.check(Some(&query));
        if listed.contains(&query) {
            prop_assert_eq!(verdict, Ok(Listing::Listed));
        } else {
            let is_not_listed = matches!(verdict, Err(AllowlistError::NotListed { .. }));
            prop_assert!(is_not_listed);
        }
        prop_assert_eq!(list.check(None), Err(AllowlistError::Unverified));
    }

    #[test]
    fn an_entry_never_admits_another_algorithms_hash(bytes in proptest::collection::vec(any::<u8>(), 64)) {
        // The same leading bytes under every algorithm: only the listed algorithm's digest
        // is admitted, through the policy list and through the file alike.
        for listed_alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha1, HashAlgorithm::Sha512] {
            let listed = Digest::from_bytes(listed_alg, &bytes[..listed_alg.digest_size()]).unwrap();
            let mut list = Allowlist::new();
            list.add_hashes("p", HashAlgorithm::Sha256, [format!("{listed_alg}:{}", listed.to_hex()).as_str()]).unwrap();
            for other in [HashAlgorithm::Sha256, HashAlgorithm::Sha1, HashAlgorithm::Sha512] {
                let q = Digest::from_bytes(other, &bytes[..other.digest_size()]).unwrap();
                prop_assert_eq!(list.contains(&q), other == listed_alg);
                prop_assert_eq!(list.check(Some(&q)).is_ok(), other == listed_alg);
            }
        }
    }

    #[test]
    fn the_allowlist_parser_never_panics(text in "(require_verified_layers|layer|algorithm|root_hash|\\[|\\]|=|\"|sha256|[0-9a-fA-F]{1,64}| |\n|true|\\{|\\}|,){0,40}") {
        match Allowlist::from_verified_layers(&text, "p") {
            Ok(list) => prop_assert_eq!(list.material().len(), 1),
            Err(e) => one_line_capitalised(&e.to_string()),
        }
    }

    #[test]
    fn the_initdata_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), text in "(version|algorithm|data|\\[|\\]|=|\"|0\\.1\\.0|sha384|x| |\n|'){0,30}") {
        for input in [bytes.as_slice(), text.as_bytes()] {
            if let Err(e) = Initdata::parse(input, "p") {
                one_line_capitalised(&e.to_string());
            }
        }
    }

    #[test]
    fn signature_parsing_never_panics(text in ".{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for input in [text.clone(), STANDARD.encode(&bytes), STANDARD.encode([b"{".as_slice(), &bytes].concat())] {
            if let Err(e) = RootHashSignature::parse(&input) {
                one_line_capitalised(&e.to_string());
            }
        }
    }

    #[test]
    fn verifying_mangled_signatures_never_panics(
        cut in 0usize..4000,
        flips in proptest::collection::vec((0usize..4000, any::<u8>()), 0..6),
        which in 0usize..4,
    ) {
        let f = fixture();
        let mut sig = f.signatures[which].clone();
        for (at, x) in flips {
            let n = sig.len();
            sig[at % n] ^= x;
        }
        sig.truncate(cut.max(1));
        let root = Digest::from_hex(HashAlgorithm::Sha256, ROOT).unwrap();
        match RootHashSignature::from_der(sig) {
            Ok(s) => {
                if let Err(e) = f.trusted.verify(&s, &root, SystemTime::now()) {
                    one_line_capitalised(&e.to_string());
                }
            }
            Err(e) => one_line_capitalised(&e.to_string()),
        }
    }
}

const ROOT: &str = "9f2a6c4e0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a";

struct Fixture {
    trusted: TrustedSigners,
    signatures: Vec<Vec<u8>>,
}

/// Signatures of every kind by a trusted RSA and a trusted P-256 signer, made once.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = openssl::scratch("props");
        let rsa = openssl::self_signed(&dir, "rsa", openssl::KeyAlg::Rsa, 1, &[]);
        let ec = openssl::self_signed(&dir, "ec", openssl::KeyAlg::P256, 1, &[]);
        let mut trusted = TrustedSigners::new();
        trusted.add_pem(&rsa.pem(), "rsa").unwrap();
        trusted.add_pem(&ec.pem(), "ec").unwrap();
        let attrs = openssl::SignOpts::default();
        let noattr = openssl::SignOpts {
            noattr: true,
            nocerts: true,
            ..openssl::SignOpts::default()
        };
        let signatures = vec![
            openssl::sign(&dir, ROOT.as_bytes(), &rsa, &attrs),
            openssl::sign(&dir, ROOT.as_bytes(), &rsa, &noattr),
            openssl::sign(&dir, ROOT.as_bytes(), &ec, &attrs),
            openssl::sign(&dir, ROOT.as_bytes(), &ec, &noattr),
        ];
        for s in &signatures {
            let parsed = RootHashSignature::from_der(s.clone()).unwrap();
            let root = Digest::from_hex(HashAlgorithm::Sha256, ROOT).unwrap();
            assert!(trusted.verify(&parsed, &root, SystemTime::now()).is_ok());
        }
        Fixture {
            trusted,
            signatures,
        }
    })
}
