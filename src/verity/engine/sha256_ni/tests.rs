//! The two-lane SHA-256 against the `sha2` crate.
//!
//! Every vector runs on each SHA-256 block hasher this CPU has: the SHA-NI lanes when the
//! CPU has the SHA extensions, and always the portable one (the engine's fallback), so no
//! test passes by returning early. A CPU without the extensions is not silently accepted
//! either: [`the_sha_ni_lanes_ran_on_this_cpu`] fails there unless the run declares it with
//! `KATA_VOLUME_NO_SHA_NI=1`.

use sha2::{Digest as _, Sha256};

use super::super::hasher::BlockHasher;
use super::*;
use crate::verity::{HashAlgorithm, Salt};

/// Set to `1` to acknowledge a CPU without SHA extensions (the SHA-NI lanes cannot run).
const NO_SHA_NI_ENV: &str = "KATA_VOLUME_NO_SHA_NI";

/// The token, or a failure when `/proc/cpuinfo` lists the SHA extensions that detection
/// missed; `None` only on a CPU without them.
fn token() -> Option<ShaNi> {
    let ni = ShaNi::detect();
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        let listed = info.split_whitespace().any(|flag| flag == "sha_ni");
        assert!(
            ni.is_some() || !listed,
            "/proc/cpuinfo lists sha_ni, detection missed it"
        );
    }
    ni
}

/// A SHA-256 block hasher under test.
enum Under {
    /// The SHA-NI lanes.
    Ni(SaltedSha256),
    /// The portable hasher (`sha2`, one block at a time).
    Portable(BlockHasher),
}

impl Under {
    /// Every hasher this CPU can run, for `salt`: the portable one, and the SHA-NI lanes
    /// when the CPU has them.
    fn all(salt: &[u8]) -> Vec<Under> {
        let hex: String = salt.iter().map(|b| format!("{b:02x}")).collect();
        let parsed = Salt::parse(&hex);
        assert_eq!(parsed.as_ref().map(Salt::as_bytes), Ok(salt));
        let mut all = vec![Under::Portable(BlockHasher::portable(
            HashAlgorithm::Sha256,
            &parsed.unwrap_or_default(),
        ))];
        if let Some(ni) = token() {
            all.push(Under::Ni(SaltedSha256::new(ni, salt)));
        }
        all
    }

    fn name(&self) -> &'static str {
        match self {
            Under::Ni(_) => "sha-ni",
            Under::Portable(_) => "portable",
        }
    }

    /// Both messages' digests, hashed together where the hasher can.
    fn pair(&self, a: &[u8], b: &[u8]) -> ([u8; 32], [u8; 32]) {
        let (mut da, mut db) = ([0u8; 32], [0u8; 32]);
        match self {
            Under::Ni(h) => h.hash([a, b], [&mut da[..], &mut db[..]], &mut Scratch::default()),
            Under::Portable(h) => {
                h.hash_into(a, &mut da);
                h.hash_into(b, &mut db);
            }
        }
        (da, db)
    }

    /// One message's digest into `out` (as much of it as fits).
    fn one(&self, message: &[u8], out: &mut [u8]) {
        match self {
            Under::Ni(h) => h.hash_one(message, out),
            Under::Portable(h) => h.hash_into(message, out),
        }
    }

    /// Each `block`-byte block's digest into its `slot`-byte slot.
    fn blocks(&self, data: &[u8], block: usize, out: &mut [u8], slot: usize) {
        match self {
            Under::Ni(h) => h.hash_blocks(data, block, out, slot),
            Under::Portable(h) => h.hash_blocks(data, block, out, slot),
        }
    }
}

/// The SHA-NI lanes run here, or the run says it knows they cannot: a CPU without SHA
/// extensions fails this test (and only this one) unless `KATA_VOLUME_NO_SHA_NI=1`.
#[test]
fn the_sha_ni_lanes_ran_on_this_cpu() {
    let declared = std::env::var(NO_SHA_NI_ENV).is_ok_and(|v| v == "1");
    match token() {
        Some(_) => assert!(
            !declared,
            "{NO_SHA_NI_ENV}=1 is set, but this CPU has SHA extensions"
        ),
        None => assert!(
            declared,
            "this CPU has no SHA extensions: the SHA-NI lanes were not tested, only the \
             portable hasher; set {NO_SHA_NI_ENV}=1 to accept that"
        ),
    }
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
fn check_pair(hasher: &Under, salt: &[u8], a: &[u8], b: &[u8]) -> [u8; 32] {
    let (da, db) = hasher.pair(a, b);
    let what = format!(
        "{}: salt {}, lengths {} and {}",
        hasher.name(),
        salt.len(),
        a.len(),
        b.len()
    );
    assert_eq!(da[..], reference(salt, a)[..], "{what}");
    assert_eq!(db[..], reference(salt, b)[..], "{what}");
    da
}

#[test]
fn agrees_with_sha2_for_every_salt_and_length_shape() {
    for salt_len in [0, 1, 31, 32, 55, 56, 63, 64, 65, 100, 128, 256] {
        let salt = bytes(salt_len, 1);
        for hasher in Under::all(&salt) {
            for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 512, 1000, 4096] {
                let (a, b) = (bytes(len, 2), bytes(len, 3));
                let da = check_pair(&hasher, &salt, &a, &b);
                let mut one = [0u8; 32];
                hasher.one(&a, &mut one);
                assert_eq!(
                    one,
                    da,
                    "{}: salt {salt_len}, len {len}, one lane",
                    hasher.name()
                );
            }
        }
    }
}

#[test]
fn whole_blocks_after_every_salt_length() {
    for salt_len in 0..=256 {
        let salt = bytes(salt_len, 7);
        for hasher in Under::all(&salt) {
            for len in [64, 128, 512] {
                let (a, b) = (bytes(len, salt_len), bytes(len, salt_len + 1));
                check_pair(&hasher, &salt, &a, &b);
            }
        }
    }
}

#[test]
fn messages_of_different_lengths_are_hashed_apart() {
    for hasher in Under::all(b"salt") {
        check_pair(&hasher, b"salt", &bytes(512, 4), &bytes(100, 5));
    }
}

#[test]
fn hash_blocks_fills_every_slot_odd_counts_included() {
    for (salt, count) in [
        (&b""[..], 7),
        (b"0123456789abcdef0123456789abcdef", 8),
        (b"", 1),
    ] {
        for hasher in Under::all(salt) {
            let data = bytes(512 * count, 6);
            let mut out = vec![0xAAu8; 64 * count];
            hasher.blocks(&data, 512, &mut out, 64);
            for (i, (block, slot)) in data.chunks(512).zip(out.chunks(64)).enumerate() {
                let name = hasher.name();
                assert_eq!(slot[..32], reference(salt, block)[..], "{name}: block {i}");
                assert_eq!(
                    slot[32..],
                    [0xAA; 32],
                    "{name}: block {i}: rest of the slot untouched"
                );
            }
        }
    }
}

#[test]
fn short_outputs_get_a_prefix_of_the_digest() {
    for hasher in Under::all(b"") {
        let mut out = [0u8; 7];
        hasher.one(b"abc", &mut out);
        assert_eq!(out[..], reference(b"", b"abc")[..7], "{}", hasher.name());
    }
}

proptest::proptest! {
    #[test]
    fn any_salt_and_pair_of_messages(
        // Up to the longest salt dm-verity (and `Salt`) accepts.
        salt in proptest::collection::vec(proptest::num::u8::ANY, 0..=Salt::MAX_LEN),
        a in proptest::collection::vec(proptest::num::u8::ANY, 0..2100),
        b in proptest::collection::vec(proptest::num::u8::ANY, 0..2100),
        same_length in proptest::bool::ANY,
    ) {
        // Half the cases pair messages of one length (the two-lane path), half not.
        let b: Vec<u8> = if same_length {
            a.iter().zip(b.iter().chain(std::iter::repeat(&0x5a))).map(|(x, y)| x ^ y ^ 1).collect()
        } else {
            b
        };
        for hasher in Under::all(&salt) {
            check_pair(&hasher, &salt, &a, &b);
        }
    }

    #[test]
    fn any_run_of_blocks(
        salt in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
        shift in 6u32..13,
        count in 0usize..9,
        seed in 0usize..1000,
    ) {
        let block = 1usize << shift;
        let data = bytes(block * count, seed);
        for hasher in Under::all(&salt) {
            let mut out = vec![0u8; 32 * count];
            hasher.blocks(&data, block, &mut out, 32);
            for (i, (b, d)) in data.chunks(block).zip(out.chunks(32)).enumerate() {
                proptest::prop_assert_eq!(d, &reference(&salt, b)[..], "{}: block {}", hasher.name(), i);
            }
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
