//! SHA-256 with the CPU's SHA extensions (SHA-NI), two messages at a time.
//!
//! One SHA-256 stream cannot keep the SHA unit busy: every `sha256rnds2` waits for the one
//! before it. A hash tree is made of many independent blocks of the same size, so two of
//! them go through the rounds together, their instructions interleaved, and the unit works
//! on one while the other waits (the Linux kernel hashes dm-verity and fs-verity blocks the
//! same way). On the machine of `benches/RESULTS.md` this hashes 4 KiB blocks at about 1.7×
//! the speed of one stream, and of OpenSSL.
//!
//! Format 1 hashes `salt || block`: the salt's whole 64-byte blocks are compressed once, at
//! construction; what is left of it (most salts are shorter than 64 bytes) is copied in
//! front of every block, in a per-call scratch buffer, unless there is none. (Reading the
//! shifted blocks in place instead was measured: no gain over the copy, so not kept.)
//!
//! The one `unsafe` of the crate's hashing is [`ShaNi::compress`]'s call of the function
//! compiled for the SHA extensions, made sound by the [`ShaNi`] token: it exists only when
//! the running CPU has them.

use std::arch::x86_64::{
    __m128i, _MM_HINT_T0, _mm_add_epi32, _mm_alignr_epi8, _mm_extract_epi32, _mm_prefetch,
    _mm_set_epi32, _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
    _mm_sha256rnds2_epu32, _mm_shuffle_epi32,
};

/// The eight 32-bit words of a SHA-256 state.
type State = [u32; 8];

/// SHA-256's initial state.
#[rustfmt::skip]
const INITIAL: State = [
    0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a,
    0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
];

/// SHA-256's round constants.
#[rustfmt::skip]
const K: [u32; 64] = [
    0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1,
    0x923f_82a4, 0xab1c_5ed5, 0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3,
    0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174, 0xe49b_69c1, 0xefbe_4786,
    0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
    0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147,
    0x06ca_6351, 0x1429_2967, 0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13,
    0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85, 0xa2bf_e8a1, 0xa81a_664b,
    0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
    0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a,
    0x5b9c_ca4f, 0x682e_6ff3, 0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208,
    0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
];

/// SHA-256's message block.
type Block = [u8; 64];

/// Proof that the running CPU has the SHA extensions and SSE4.1; only [`ShaNi::detect`]
/// makes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct ShaNi(());

impl ShaNi {
    /// The token, when the CPU has what [`compress`] is compiled for.
    pub(super) fn detect() -> Option<Self> {
        let present = std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1");
        present.then_some(Self(()))
    }

    /// Runs the blocks of lane `i` through the state of lane `i`, all lanes together; the
    /// lanes must hold as many blocks each (a longer lane's extra blocks are left out). With
    /// `ahead` non-zero, the line `ahead` bytes past each block is prefetched meanwhile (see
    /// [`compress`]).
    fn compress<const N: usize>(self, states: &mut [State; N], lanes: [&[Block]; N], ahead: usize) {
        #[allow(unsafe_code)]
        // SAFETY: `compress` is only unsafe to call because it is compiled for the `sha`,
        // `sse2`, `ssse3` and `sse4.1` target features; `self` exists only when `detect`
        // found all four on this CPU. It dereferences no pointer: every access is to a slice
        // or an array, bounds-checked (a prefetch only names an address, see there).
        unsafe {
            compress(states, lanes, ahead);
        }
    }
}

/// Loads 16 message bytes as four big-endian words, first word in the lowest lane.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load(bytes: &[u8; 16]) -> __m128i {
    let (words, _) = bytes.as_chunks::<4>();
    let word = |i: usize| {
        words
            .get(i)
            .map_or(0, |w| u32::from_be_bytes(*w).cast_signed())
    };
    _mm_set_epi32(word(3), word(2), word(1), word(0))
}

/// Round constants `4g..4g + 4`, first in the lowest lane.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn constants(g: usize) -> __m128i {
    let k = |i: usize| K.get(4 * g + i).map_or(0, |k| k.cast_signed());
    _mm_set_epi32(k(3), k(2), k(1), k(0))
}

/// The SHA-256 compression of `lanes[i]` into `states[i]`, the lanes interleaved.
///
/// A tree's data stream from memory, and the CPU's own prefetchers stop at every 4 KiB page's
/// end: the first lines of each page would miss the cache while the SHA unit waits. So for
/// each block, the line `ahead` bytes further on is prefetched: the caller passes where the
/// same lanes' next messages are, which are then in cache when their turn comes (on the
/// machine of `benches/RESULTS.md`, 2–7% less CPU time for `format` and `verify`). A
/// prefetch is a hint: it never faults, whatever the address (past the end of a map, or
/// not mapped at all, it fetches nothing), hence a safe intrinsic.
///
/// The state lives in two registers, `ABEF` and `CDGH` (highest lane first), as
/// `sha256rnds2` wants it; each group of four rounds adds four constants to four schedule
/// words, runs two double rounds and extends the schedule (`sha256msg1`/`sha256msg2`).
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress<const N: usize>(states: &mut [State; N], lanes: [&[Block]; N], ahead: usize) {
    let mut abef: [__m128i; N] = std::array::from_fn(|l| {
        let s = states[l].map(u32::cast_signed);
        _mm_set_epi32(s[0], s[1], s[4], s[5])
    });
    let mut cdgh: [__m128i; N] = std::array::from_fn(|l| {
        let s = states[l].map(u32::cast_signed);
        _mm_set_epi32(s[2], s[3], s[6], s[7])
    });

    let mut rows = lanes.map(<[Block]>::iter);
    'blocks: loop {
        let mut current: [&Block; N] = [&[0; 64]; N];
        for (block, row) in current.iter_mut().zip(rows.iter_mut()) {
            match row.next() {
                Some(next) => *block = next,
                None => break 'blocks,
            }
        }
        if ahead != 0 {
            for block in current {
                _mm_prefetch::<_MM_HINT_T0>(block.as_ptr().wrapping_add(ahead).cast::<i8>());
            }
        }
        let (start_abef, start_cdgh) = (abef, cdgh);
        let mut w = [[_mm_setzero_si128(); 4]; N];
        // One group of four rounds, `$g` a literal so that every index below is a constant.
        macro_rules! group {
            ($g:literal) => {{
                const G: usize = $g;
                let k = constants(G);
                for l in 0..N {
                    if G < 4 {
                        let (quarters, _) = current[l].as_chunks::<16>();
                        w[l][G % 4] = load(&quarters[G % 4]);
                    }
                    let msg = _mm_add_epi32(w[l][G % 4], k);
                    cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], msg);
                    if (3..15).contains(&G) {
                        let t = _mm_alignr_epi8::<4>(w[l][G % 4], w[l][(G + 3) % 4]);
                        let next = _mm_add_epi32(w[l][(G + 1) % 4], t);
                        w[l][(G + 1) % 4] = _mm_sha256msg2_epu32(next, w[l][G % 4]);
                    }
                    let msg = _mm_shuffle_epi32::<0x0E>(msg);
                    abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], msg);
                    if (1..13).contains(&G) {
                        w[l][(G + 3) % 4] = _mm_sha256msg1_epu32(w[l][(G + 3) % 4], w[l][G % 4]);
                    }
                }
            }};
        }
        group!(0);
        group!(1);
        group!(2);
        group!(3);
        group!(4);
        group!(5);
        group!(6);
        group!(7);
        group!(8);
        group!(9);
        group!(10);
        group!(11);
        group!(12);
        group!(13);
        group!(14);
        group!(15);
        for l in 0..N {
            abef[l] = _mm_add_epi32(abef[l], start_abef[l]);
            cdgh[l] = _mm_add_epi32(cdgh[l], start_cdgh[l]);
        }
    }

    for (l, state) in states.iter_mut().enumerate() {
        let (x, y) = (abef[l], cdgh[l]);
        *state = [
            _mm_extract_epi32::<3>(x).cast_unsigned(),
            _mm_extract_epi32::<2>(x).cast_unsigned(),
            _mm_extract_epi32::<3>(y).cast_unsigned(),
            _mm_extract_epi32::<2>(y).cast_unsigned(),
            _mm_extract_epi32::<1>(x).cast_unsigned(),
            _mm_extract_epi32::<0>(x).cast_unsigned(),
            _mm_extract_epi32::<1>(y).cast_unsigned(),
            _mm_extract_epi32::<0>(y).cast_unsigned(),
        ];
    }
}

/// `SHA-256(salt || message)` for many messages, two at a time.
#[derive(Debug, Clone)]
pub(super) struct SaltedSha256 {
    ni: ShaNi,
    /// The state after the salt's whole blocks.
    state: State,
    /// The rest of the salt (shorter than a block), put in front of every message.
    tail: Vec<u8>,
    /// The salt's length in bytes.
    salt_len: u64,
}

impl SaltedSha256 {
    /// The hasher for `salt`.
    pub(super) fn new(ni: ShaNi, salt: &[u8]) -> Self {
        let (whole, tail) = salt.as_chunks::<64>();
        let mut state = [INITIAL];
        ni.compress(&mut state, [whole], 0);
        Self {
            ni,
            state: state[0],
            tail: tail.to_vec(),
            salt_len: salt.len() as u64,
        }
    }

    /// Writes the digest of each `block_size` block of `blocks` to the start of the matching
    /// `slot`-byte slot of `out`, as many as both hold.
    pub(super) fn hash_blocks(
        &self,
        blocks: &[u8],
        block_size: usize,
        out: &mut [u8],
        slot: usize,
    ) {
        let mut scratch = Scratch::default();
        let mut blocks = blocks.chunks_exact(block_size.max(1));
        let mut slots = out.chunks_exact_mut(slot.max(1));
        while let (Some(a), Some(sa)) = (blocks.next(), slots.next()) {
            match (blocks.next(), slots.next()) {
                (Some(b), Some(sb)) => self.hash([a, b], [sa, sb], &mut scratch),
                _ => self.hash([a], [sa], &mut scratch),
            }
        }
    }

    /// Writes the digest of `message` to the start of `out`.
    pub(super) fn hash_one(&self, message: &[u8], out: &mut [u8]) {
        self.hash([message], [out], &mut Scratch::default());
    }

    /// The digests of `N` messages of the same length (a shorter one is hashed on its own).
    fn hash<const N: usize>(
        &self,
        messages: [&[u8]; N],
        outs: [&mut [u8]; N],
        scratch: &mut Scratch,
    ) {
        let len = messages.first().map_or(0, |m| m.len());
        if N > 1 && messages.iter().any(|m| m.len() != len) {
            for (message, out) in messages.into_iter().zip(outs) {
                self.hash([message], [out], scratch);
            }
            return;
        }
        let total = self.salt_len.wrapping_add(len as u64);
        let mut states = [self.state; N];
        let split = messages.map(<[u8]>::as_chunks::<64>);
        if self.tail.is_empty() && split.iter().all(|(_, rest)| rest.is_empty()) {
            // The messages are whole blocks: compress them in place, then the padding.
            // The same lanes' next messages start `N * len` bytes on (`hash_blocks` hashes
            // consecutive messages of one run).
            self.ni
                .compress(&mut states, split.map(|(whole, _)| whole), N * len);
            let last = [length_block(total)];
            self.ni.compress(&mut states, [&last[..]; N], 0);
        } else {
            let buffers = scratch.fill(&self.tail, messages, total);
            let lanes: [&[Block]; N] =
                std::array::from_fn(|l| buffers.get(l).map_or(&[][..], |b| b.as_chunks::<64>().0));
            self.ni.compress(&mut states, lanes, 0);
        }
        for (state, out) in states.iter().zip(outs) {
            put(state, out);
        }
    }
}

/// Per-call buffers for messages that are not whole blocks: `tail || message || padding`.
#[derive(Default)]
struct Scratch {
    lanes: Vec<Vec<u8>>,
}

impl Scratch {
    /// The padded messages, one buffer per lane.
    fn fill<const N: usize>(
        &mut self,
        tail: &[u8],
        messages: [&[u8]; N],
        total: u64,
    ) -> &[Vec<u8>] {
        self.lanes.resize_with(N, Vec::new);
        for (buffer, message) in self.lanes.iter_mut().zip(messages) {
            buffer.clear();
            buffer.extend_from_slice(tail);
            buffer.extend_from_slice(message);
            pad(buffer, total);
        }
        &self.lanes
    }
}

/// Pads `message` (the end of a `total`-byte message) to whole blocks: `0x80`, zeros, and
/// the length in bits, big-endian, in the last 8 bytes.
fn pad(message: &mut Vec<u8>, total: u64) {
    message.push(0x80);
    let len = (message.len() + 8).next_multiple_of(64);
    message.resize(len - 8, 0);
    message.extend_from_slice(&total.wrapping_mul(8).to_be_bytes());
}

/// The padding block of a `total`-byte message made of whole blocks.
fn length_block(total: u64) -> Block {
    let mut block = [0u8; 64];
    block[0] = 0x80;
    let (_, length) = block.split_at_mut(56);
    length.copy_from_slice(&total.wrapping_mul(8).to_be_bytes());
    block
}

/// Writes the digest of `state` to the start of `out` (as much as fits).
fn put(state: &State, out: &mut [u8]) {
    // The usual case, a whole digest, in fixed-size copies (a copy of a length only known at
    // run time is a call to `memcpy`: eight of them per digest cost 2% of `format`).
    if let Some((digest, _)) = out.split_first_chunk_mut::<32>() {
        for (word, dst) in state.iter().zip(digest.as_chunks_mut::<4>().0) {
            *dst = word.to_be_bytes();
        }
        return;
    }
    for (word, dst) in state.iter().zip(out.chunks_mut(4)) {
        let bytes = word.to_be_bytes();
        let n = dst.len();
        dst.copy_from_slice(bytes.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests;
