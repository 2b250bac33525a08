//! The two-lane SHA-256 against the `sha2` crate.

use sha2::{Digest as _, Sha256};

use super::*;

/// The token, or a failure when `/proc/cpuinfo` lists the SHA extensions that detection
/// missed; `None` only on a CPU without them, where there is nothing to test.
fn token() -> Option<ShaNi> {
    let ni = ShaNi::detect();
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        let listed = info.split_whitespace().any(|flag| flag == "sha_ni");
        assert!(
            ni.is_some() || !listed,
            "/proc/cpuinfo lists sha_ni, detection missed it"
        );
    }
    if ni.is_none() {
        eprintln!("this CPU has no SHA extensions: only the portable hasher runs here");
    }
    ni
}

fn reference(salt: &[u8], message: &[u8]) -> Vec<u8> {
    Sha256::new()
        .chain_update(salt)
        .chain_update(message)
        .finalize()
        .to_vec()
}

fn bytes(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 131 + seed * 17 + (i >> 8)) % 251).unwrap_or(0))
        .collect()
}

/// Hashes `a` and `b` together, checks both against `sha2`; returns `a`'s digest.
fn check_pair(hasher: &SaltedSha256, salt: &[u8], a: &[u8], b: &[u8]) -> [u8; 32] {
    let (mut da, mut db) = ([0u8; 32], [0u8; 32]);
    hasher.hash([a, b], [&mut da[..], &mut db[..]], &mut Scratch::default());
    let what = format!("salt {}, lengths {} and {}", salt.len(), a.len(), b.len());
    assert_eq!(da[..], reference(salt, a)[..], "{what}");
    assert_eq!(db[..], reference(salt, b)[..], "{what}");
    da
}

#[test]
fn agrees_with_sha2_for_every_salt_and_length_shape() {
    let Some(ni) = token() else { return };
    for salt_len in [0, 1, 31, 32, 55, 56, 63, 64, 65, 100, 128, 256] {
        let salt = bytes(salt_len, 1);
        let hasher = SaltedSha256::new(ni, &salt);
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 512, 1000, 4096] {
            let (a, b) = (bytes(len, 2), bytes(len, 3));
            let da = check_pair(&hasher, &salt, &a, &b);
            let mut one = [0u8; 32];
            hasher.hash_one(&a, &mut one);
            assert_eq!(one, da, "salt {}, len {len}, one lane", salt.len());
        }
    }
}

#[test]
fn whole_blocks_after_every_salt_length() {
    let Some(ni) = token() else { return };
    for salt_len in 0..=256 {
        let salt = bytes(salt_len, 7);
        let hasher = SaltedSha256::new(ni, &salt);
        for len in [64, 128, 512] {
            let (a, b) = (bytes(len, salt_len), bytes(len, salt_len + 1));
            check_pair(&hasher, &salt, &a, &b);
        }
    }
}

#[test]
fn messages_of_different_lengths_are_hashed_apart() {
    let Some(ni) = token() else { return };
    let hasher = SaltedSha256::new(ni, b"salt");
    check_pair(&hasher, b"salt", &bytes(512, 4), &bytes(100, 5));
}

#[test]
fn hash_blocks_fills_every_slot_odd_counts_included() {
    let Some(ni) = token() else { return };
    for (salt, count) in [
        (&b""[..], 7),
        (b"0123456789abcdef0123456789abcdef", 8),
        (b"", 1),
    ] {
        let hasher = SaltedSha256::new(ni, salt);
        let data = bytes(512 * count, 6);
        let mut out = vec![0xAAu8; 64 * count];
        hasher.hash_blocks(&data, 512, &mut out, 64);
        for (i, (block, slot)) in data.chunks(512).zip(out.chunks(64)).enumerate() {
            assert_eq!(slot[..32], reference(salt, block)[..], "block {i}");
            assert_eq!(
                slot[32..],
                [0xAA; 32],
                "block {i}: rest of the slot untouched"
            );
        }
    }
}

#[test]
fn short_outputs_get_a_prefix_of_the_digest() {
    let Some(ni) = token() else { return };
    let hasher = SaltedSha256::new(ni, b"");
    let mut out = [0u8; 7];
    hasher.hash_one(b"abc", &mut out);
    assert_eq!(out[..], reference(b"", b"abc")[..7]);
}

proptest::proptest! {
    #[test]
    fn any_salt_and_pair_of_messages(
        salt in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        a in proptest::collection::vec(proptest::num::u8::ANY, 0..2100),
        b in proptest::collection::vec(proptest::num::u8::ANY, 0..2100),
        same_length in proptest::bool::ANY,
    ) {
        let Some(ni) = token() else { return Ok(()) };
        // Half the cases pair messages of one length (the two-lane path), half not.
        let b: Vec<u8> = if same_length {
            a.iter().zip(b.iter().chain(std::iter::repeat(&0x5a))).map(|(x, y)| x ^ y ^ 1).collect()
        } else {
            b
        };
        check_pair(&SaltedSha256::new(ni, &salt), &salt, &a, &b);
    }

    #[test]
    fn any_run_of_blocks(
        salt in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
        shift in 6u32..13,
        count in 0usize..9,
        seed in 0usize..1000,
    ) {
        let Some(ni) = token() else { return Ok(()) };
        let block = 1usize << shift;
        let data = bytes(block * count, seed);
        let mut out = vec![0u8; 32 * count];
        SaltedSha256::new(ni, &salt).hash_blocks(&data, block, &mut out, 32);
        for (i, (b, d)) in data.chunks(block).zip(out.chunks(32)).enumerate() {
            proptest::prop_assert_eq!(d, &reference(&salt, b)[..], "block {}", i);
        }
    }
}

#[test]
fn put_writes_as_much_of_the_digest_as_fits() {
    let state: State = [1, 2, 3, 4, 5, 6, 7, 8].map(|i: u32| 0x0102_0304 * i);
    let whole: Vec<u8> = state.iter().flat_map(|w| w.to_be_bytes()).collect();
    for len in [0, 3, 31, 32, 40] {
        let mut out = vec![0xee; len];
        put(&state, &mut out);
        let n = len.min(32);
        assert_eq!(out[..n], whole[..n], "{len}");
        assert!(
            out[n..].iter().all(|&b| b == 0xee),
            "{len}: past the digest"
        );
    }
}
