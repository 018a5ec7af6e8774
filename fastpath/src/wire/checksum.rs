//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! The checksum is the 16-bit one's complement of the one's complement sum of the data taken as
//! big-endian 16-bit words, an odd trailing byte padded on the right with a zero byte
//! (RFC 1071 §1). Because one's complement addition is associative and commutative, and because
//! `2^16 ≡ 1 (mod 2^16 - 1)`, the sum can be accumulated in wider words and folded down at the
//! end (RFC 1071 §2 (A)–(C)); [`sum`] does exactly that.
//!
//! The building blocks compose:
//!
//! * [`sum`] gives an *unfolded* partial sum (a `u32` that may exceed `0xffff`);
//! * [`combine`] adds two partial sums, [`pseudo_header`] gives the partial sum of the IPv4
//!   pseudo header that TCP and UDP prepend (RFC 9293 §3.1, RFC 768);
//! * [`fold`] reduces a partial sum to 16 bits with end-around carry, [`finish`] folds and
//!   complements it into the value that goes on the wire.
//!
//! A receiver verifies by summing the data *including* the transmitted checksum: the result
//! folds to `0xffff`, i.e. [`checksum`] over it returns 0.
//!
//! # UDP
//!
//! UDP (RFC 768) gives the value 0 a special meaning: a transmitted checksum of zero means "the
//! sender computed no checksum". Therefore a computed checksum of `0x0000` is transmitted as
//! `0xffff` (its one's complement equivalent, "-0"), and a stored 0 must be left as 0 when a
//! field of the datagram is rewritten; do not run [`update16`]/[`update32`] on it. (Applying
//! the update to a stored `0xffff` is fine: it stands for the same value as `0x0000`.) If an
//! update of a real UDP checksum yields `0x0000`, store `0xffff` instead.

use core::net::Ipv4Addr;

/// Bytes summed per inner block of [`sum`]: the `u64` block accumulator then holds at most
/// `BLOCK / 4` words of at most `2^32 - 1`, i.e. stays below `2^46`, so it cannot overflow.
const BLOCK: usize = 1 << 16;

/// The one's complement partial sum of `data` taken as big-endian 16-bit words (an odd
/// trailing byte is padded with a zero byte, RFC 1071 §1). Not complemented.
///
/// Treat the result as an unfolded partial sum: [`combine`] it with others, then [`fold`] or
/// [`finish`] it. (This implementation happens to return it already folded, `<= 0xffff`, so a
/// handful of plain `+` additions cannot overflow either.) It is congruent to the plain sum of
/// the 16-bit words modulo `0xffff` and zero only if that plain sum is zero, so it equals the
/// fold of the naive sum exactly, including the `0x0000` / `0xffff` distinction.
///
/// It sums 32-bit big-endian words into a 64-bit accumulator (a loop the compiler vectorises;
/// `2^16 ≡ 1 (mod 0xffff)` makes the word size irrelevant, RFC 1071 §2 (B), (C)) and folds once
/// at the end.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    // Short buffers (headers, small packets: the fast path's case) skip the block loop.
    if data.len() < BLOCK {
        return u32::from(fold(fold64(sum_block(data))));
    }
    let mut acc: u64 = 0;
    for block in data.chunks(BLOCK) {
        acc = add64(acc, sum_block(block));
    }
    u32::from(fold(fold64(acc)))
}

/// The partial sum of up to `BLOCK` bytes as 32-bit big-endian words in a 64-bit accumulator
/// (cannot overflow: at most 2^14 words below 2^32).
#[inline(always)]
fn sum_block(block: &[u8]) -> u64 {
    let mut words = block.chunks_exact(4);
    let mut s: u64 = 0;
    for w in &mut words {
        s += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rem = words.remainder();
    if !rem.is_empty() {
        // Zero-padding on the right keeps every 16-bit word in place (RFC 1071 §1).
        let mut last = [0u8; 4];
        last[..rem.len()].copy_from_slice(rem);
        s += u64::from(u32::from_be_bytes(last));
    }
    s
}

/// [`sum`] for a fixed-size block whose length is a multiple of 4 (an IPv4 header without
/// options, a cached outer header): fully unrolled, no loop bookkeeping. Folded like [`sum`].
#[inline(always)]
pub fn sum_fixed<const N: usize>(data: &[u8; N]) -> u32 {
    const { assert!(N.is_multiple_of(4) && N <= 1024) };
    let mut s: u64 = 0;
    let mut i = 0;
    while i < N {
        s += u64::from(u32::from_be_bytes([
            data[i],
            data[i + 1],
            data[i + 2],
            data[i + 3],
        ]));
        i += 4;
    }
    u32::from(fold(fold64(s)))
}

/// True if the 20-byte IPv4 header `h` (no options) has a correct header checksum.
///
/// Correct means the one's complement sum of its ten 16-bit words folds to `0xffff`. With
/// `2^16 ≡ 1 (mod 0xffff)`, the plain sum `s` of the five native-endian 32-bit words (at most
/// `5 · (2^32 - 1)`, no carries to fold) is congruent to that sum of words — and so to its
/// fold — modulo `0xffff`, and the byte order does not matter (a one's complement sum of
/// byte-swapped words is the byte swap of the sum, RFC 1071 §2 (B); `0xffff` reads the same
/// either way). The fold is `0xffff` exactly when `s` is a non-zero multiple of `0xffff` (an
/// all-zero header sums, and folds, to 0): five loads, four adds and one multiply-compare,
/// no folding, no division — [`nonzero_multiple_of_ffff`].
#[inline(always)]
pub fn ipv4_header_ok(h: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    nonzero_multiple_of_ffff(w(0) + w(4) + w(8) + w(12) + w(16))
}

/// The inverse of `0xffff` modulo `2^64`.
const INV_FFFF: u64 = 0xfffe_fffe_fffe_ffff;
const _: () = assert!(INV_FFFF.wrapping_mul(0xffff) == 1);

/// `s != 0 && s % 0xffff == 0`, with one multiply. For odd `m`, `s` is a multiple of `m`
/// exactly when `t = s · m⁻¹ mod 2^64` is at most `(2^64 − 1) / m` (Granlund and Montgomery;
/// Hacker's Delight §10-17), and `t` is then `s / m`, which is 0 only for `s = 0`; so the two
/// conditions are one unsigned compare of `t − 1`. (LLVM computes the remainder instead: a
/// widening multiply and four more instructions.)
#[inline(always)]
fn nonzero_multiple_of_ffff(s: u64) -> bool {
    s.wrapping_mul(INV_FFFF).wrapping_sub(1) < u64::MAX / 0xffff
}

/// One's complement addition of two 64-bit partial sums (end-around carry). `2^64 ≡ 1`
/// modulo `0xffff`, so the carry out of bit 63 is added back at bit 0.
#[inline(always)]
fn add64(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // If the add overflowed, s <= 2^64 - 2, so adding the carry cannot overflow again.
    s + u64::from(carry)
}

/// Folds a 64-bit partial sum to 32 bits with end-around carry, preserving non-zero-ness.
#[inline(always)]
fn fold64(acc: u64) -> u32 {
    let s = (acc & 0xffff_ffff) + (acc >> 32); // <= 2^33 - 2
    let s = (s & 0xffff_ffff) + (s >> 32); // <= 2^32 - 1
    s as u32
}

/// Folds a partial sum to 16 bits with end-around carry (RFC 1071 §2 (C)). Not complemented.
///
/// A non-zero sum never folds to 0 (it folds to `0xffff`, one's complement "-0", instead).
#[inline]
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16); // <= 0x1fffe
    let s = (s & 0xffff) + (s >> 16); // <= 0xffff
    s as u16
}

/// Adds two partial sums in one's complement arithmetic (end-around carry on 32 bits, which is
/// sound because `2^32 ≡ 1 (mod 0xffff)`). The result is again a partial sum, not folded.
#[inline]
pub fn combine(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    // On overflow s <= 2^32 - 2, so adding the carry back cannot overflow.
    s + u32::from(carry)
}

/// The checksum field value for a partial sum: the complement of its fold.
#[inline]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// The Internet checksum of `data` (RFC 1071): `finish(sum(data))`.
///
/// Over data that already contains a correct checksum field this returns 0.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// The partial sum of the IPv4 pseudo header used by TCP (RFC 9293 §3.1) and UDP (RFC 768):
///
/// ```text
///  +--------+--------+--------+--------+
///  |           Source Address          |
///  +--------+--------+--------+--------+
///  |         Destination Address       |
///  +--------+--------+--------+--------+
///  |  zero  |  PTCL  |    TCP/UDP Length   |
///  +--------+--------+--------+--------+
/// ```
///
/// `length` is the length of the TCP segment or UDP datagram (header plus data).
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let s = src.to_bits();
    let d = dst.to_bits();
    // Six 16-bit words: the plain sum is < 6 * 2^16, no overflow.
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + u32::from(protocol) + u32::from(length)
}

/// Incrementally updates checksum `old_csum` after a 16-bit word of the covered data changed
/// from `old` to `new`, using RFC 1624 eqn. 3:
///
/// ```text
///     HC' = ~(~HC + ~m + m')
/// ```
///
/// Unlike RFC 1141's eqn. 2 (`HC' = HC - ~m - m'`), eqn. 3 never produces `0xffff` where a
/// full recomputation gives `0x0000` (RFC 1624 §3), so the result is always identical to
/// recomputing from scratch (for data that is not entirely zero). The word must sit at an even
/// offset of the covered data; for a word at an odd offset swap the bytes of `old` and `new`.
///
/// For UDP see the module docs: leave a stored 0 alone, and store a result of 0 as `0xffff`.
#[inline]
pub fn update16(old_csum: u16, old: u16, new: u16) -> u16 {
    apply_delta(old_csum, delta16(old, new))
}

/// Like [`update16`] for a 32-bit field (for example an IPv4 address) at an even offset: both
/// of its 16-bit halves are replaced in one step (RFC 1624 eqn. 3 applied to each word).
#[inline]
pub fn update32(old_csum: u16, old: u32, new: u32) -> u16 {
    apply_delta(old_csum, delta32(old, new))
}

/// The partial-sum change of replacing the two 16-bit words of `old` with those of `new`
/// (`~m + m'` of RFC 1624 eqn. 3 for each word). Changes to several fields add up (their sum
/// stays below 2^20 for the few fields a NAT rewrites) and go to [`apply_delta`] once.
#[inline(always)]
pub fn delta32(old: u32, new: u32) -> u32 {
    let not_old = !old;
    (not_old >> 16) + (not_old & 0xffff) + (new >> 16) + (new & 0xffff)
}

/// Like [`delta32`] for one 16-bit word.
#[inline(always)]
pub fn delta16(old: u16, new: u16) -> u32 {
    u32::from(!old) + u32::from(new)
}

/// Updates checksum `old_csum` by a sum of deltas ([`delta32`], [`delta16`]): RFC 1624 eqn. 3,
/// `HC' = ~(~HC + Σ(~m + m'))`, for all the changed words at once. Equal to applying
/// [`update16`]/[`update32`] field by field (a property test checks it). A field that did not
/// change contributes `0xffff`, one's complement zero, and changes nothing.
#[inline(always)]
pub fn apply_delta(old_csum: u16, delta: u32) -> u16 {
    !fold(u32::from(!old_csum) + delta)
}

/// The checksum field for a header whose other words sum to `base` (folded) and that has one
/// more 16-bit word, `word`: [`finish`] of the sum, with one end-around carry (`base + word`
/// stays below `2^17`). The encapsulation's outer header: the template's sum plus the length.
#[inline(always)]
pub fn finish_with(base: u16, word: u16) -> u16 {
    let s = u32::from(base) + u32::from(word);
    !(((s & 0xffff) + (s >> 16)) as u16)
}

/// [`apply_delta`] with the delta folded already ([`fold`] of the sum): the same checksum, with
/// one end-around carry instead of two (`~HC + delta` stays below `2^17`).
#[inline(always)]
pub fn apply_folded(old_csum: u16, delta: u16) -> u16 {
    // `~HC` is the sum of the other words, folded: the same one-carry finish.
    finish_with(!old_csum, delta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook definition: add 16-bit big-endian words in a wide integer.
    fn naive_sum(data: &[u8]) -> u64 {
        let mut s = 0u64;
        let mut i = 0;
        while i < data.len() {
            let hi = u64::from(data[i]) << 8;
            let lo = data.get(i + 1).map_or(0, |&b| u64::from(b));
            s += hi | lo;
            i += 2;
        }
        s
    }

    /// Folds a wide sum the slow way, one carry at a time.
    fn naive_fold(mut s: u64) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    fn naive_checksum(data: &[u8]) -> u16 {
        !naive_fold(naive_sum(data))
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2 (after folding).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn ipv4_header_ok_edges() {
        // All zeros sums to 0, not "-0": wrong. All ones is ten 0xffff words: right.
        assert!(!ipv4_header_ok(&[0; 20]));
        assert!(ipv4_header_ok(&[0xff; 20]));
        // A real header (RFC 1071-style example, checksum 0xb861), and each single-bit flip of
        // it, which a one's complement sum always catches.
        let h: [u8; 20] = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(ipv4_header_ok(&h));
        for bit in 0..160 {
            let mut x = h;
            x[bit / 8] ^= 1 << (bit % 8);
            assert!(!ipv4_header_ok(&x), "bit {bit}");
        }
    }

    #[test]
    fn empty_and_odd() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(checksum(&[]), 0xffff);
        // An odd byte is the high half of a zero-padded word.
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34]), 0x1234);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn fold_end_around_carry() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0x1_0000), 0x0001);
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(u32::MAX), 0xffff);
        assert_eq!(fold(0xffff_0000), 0xffff);
    }

    #[test]
    fn combine_keeps_carry() {
        assert_eq!(combine(u32::MAX, 1), 1);
        assert_eq!(
            fold(combine(u32::MAX, u32::MAX)),
            naive_fold(2 * u64::from(u32::MAX))
        );
    }

    #[test]
    fn all_ones_data_is_not_zero() {
        // 0xffff words sum to "-0": folded 0xffff, not 0.
        let data = [0xffu8; 64];
        assert_eq!(fold(sum(&data)), 0xffff);
        assert_eq!(checksum(&data), 0);
    }

    #[test]
    fn large_input_crosses_blocks() {
        let data: Vec<u8> = (0..(3 * BLOCK + 5)).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(fold(sum(&data)), naive_fold(naive_sum(&data)));
        let ones = vec![0xffu8; 2 * BLOCK + 1];
        assert_eq!(fold(sum(&ones)), naive_fold(naive_sum(&ones)));
    }

    #[test]
    fn pseudo_header_by_hand() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        // 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 0x0011 + 0x001c
        assert_eq!(
            pseudo_header(src, dst, 17, 28),
            0x0a00 + 1 + 0x0a00 + 2 + 0x11 + 0x1c
        );
        let bytes = [10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 28];
        assert_eq!(fold(pseudo_header(src, dst, 17, 28)), fold(sum(&bytes)));
    }

    #[test]
    fn rfc1624_section3_example() {
        // RFC 1624 §3: the sum of the other header words is 0xcd7a and m = 0x5555, so
        // HC = ~(0xcd7a + 0x5555) = 0xdd2f. m changes to m' = 0x3285: recomputation gives
        // ~(0xcd7a + 0x3285) = ~0xffff = 0x0000. Eqn. 2 would wrongly give 0xffff.
        let hc = !fold(0xcd7a + 0x5555);
        assert_eq!(hc, 0xdd2f);
        assert_eq!(update16(hc, 0x5555, 0x3285), 0x0000);
        // And back: 0x0000 -> 0xdd2f.
        assert_eq!(update16(0x0000, 0x3285, 0x5555), 0xdd2f);
    }

    #[test]
    fn update_identity_and_zero_word() {
        // Changing a word to itself keeps the checksum, including the 0x0000 checksum.
        for hc in [0x0000u16, 0x0001, 0x7fff, 0xfffe] {
            for m in [0x0000u16, 0xffff, 0x1234] {
                assert_eq!(update16(hc, m, m), hc, "hc={hc:#x} m={m:#x}");
            }
        }
        // 0x0000 and 0xffff are the same one's complement value, so swapping one for the other
        // keeps the checksum.
        assert_eq!(update16(0x1234, 0x0000, 0xffff), 0x1234);
        assert_eq!(update16(0x1234, 0xffff, 0x0000), 0x1234);
    }

    /// A "header" of `words` 16-bit words whose first word is non-zero (like an IP header's
    /// version/IHL byte), so that it is never all-zero.
    fn header_strategy() -> impl Strategy<Value = Vec<u16>> {
        (
            1u16..=0xffff,
            proptest::collection::vec(any::<u16>(), 3..40),
        )
            .prop_map(|(w0, mut v)| {
                v.insert(0, w0);
                v
            })
    }

    fn to_bytes(words: &[u16]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// Computes the checksum with the word at `csum_at` zeroed.
    fn full(words: &[u16], csum_at: usize) -> u16 {
        let mut w = words.to_vec();
        w[csum_at] = 0;
        checksum(&to_bytes(&w))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn sum_fixed_matches_sum(data in proptest::array::uniform20(any::<u8>())) {
            prop_assert_eq!(sum_fixed(&data), sum(&data));
        }

        #[test]
        fn sum_matches_naive(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let fast = sum(&data);
            let slow = naive_sum(&data);
            prop_assert_eq!(u64::from(fast) % 0xffff, slow % 0xffff);
            prop_assert_eq!(fast, u32::from(naive_fold(slow)));
            prop_assert_eq!(fold(fast), naive_fold(slow));
            prop_assert_eq!(checksum(&data), naive_checksum(&data));
        }

        #[test]
        fn sum_of_split_is_combined(data in proptest::collection::vec(any::<u8>(), 0..600), at in 0usize..300) {
            // Splitting at an even offset and combining the partial sums is the same sum.
            let at = (at * 2).min(data.len() & !1);
            let (a, b) = data.split_at(at);
            prop_assert_eq!(fold(combine(sum(a), sum(b))), fold(sum(&data)));
        }

        #[test]
        fn ones_heavy_data_matches_naive(n in 0usize..2000, zeros in proptest::collection::vec(0usize..2000, 0..4)) {
            // Mostly 0xff bytes: the sums sit right at the 0xffff / 0x0000 boundary.
            let mut data = vec![0xffu8; n];
            for z in zeros { if z < n { data[z] = 0; } }
            prop_assert_eq!(fold(sum(&data)), naive_fold(naive_sum(&data)));
        }

        #[test]
        fn update16_equals_recompute(words in header_strategy(), csum_sel in any::<usize>(), field_sel in any::<usize>(), new in any::<u16>()) {
            let n = words.len();
            let csum_at = 1 + csum_sel % (n - 1); // never the non-zero first word
            let mut field_at = 1 + field_sel % (n - 1);
            if field_at == csum_at { field_at = if csum_at + 1 < n { csum_at + 1 } else { 1 }; }
            prop_assume!(field_at != csum_at);
            let mut w = words.clone();
            w[csum_at] = full(&words, csum_at);
            let old = w[field_at];
            w[field_at] = new;
            let expect = full(&w, csum_at);
            prop_assert_eq!(update16(w[csum_at], old, new), expect);
            // The updated packet verifies.
            let mut v = w.clone();
            v[csum_at] = expect;
            prop_assert_eq!(checksum(&to_bytes(&v)), 0);
        }

        #[test]
        fn update32_equals_recompute(words in header_strategy(), csum_sel in any::<usize>(), new in any::<u32>()) {
            // The 32-bit field sits at words 1..3 (like an address); the checksum elsewhere.
            let n = words.len();
            let csum_at = 3 + csum_sel % (n - 3);
            let mut w = words.clone();
            w[csum_at] = full(&words, csum_at);
            let old = (u32::from(w[1]) << 16) | u32::from(w[2]);
            w[1] = (new >> 16) as u16;
            w[2] = new as u16;
            prop_assert_eq!(update32(w[csum_at], old, new), full(&w, csum_at));
        }

        #[test]
        fn combined_delta_equals_field_by_field(words in header_strategy(), csum_sel in any::<usize>(), a in any::<u32>(), b in any::<u32>(), p in any::<u16>(), same in any::<[bool; 3]>()) {
            // A NAT rewrite: two 32-bit fields (words 1..3, 3..5) and a 16-bit one (word 5)
            // replaced, some of them by themselves, the checksum after them; one delta sum
            // must give what three eqn. 3 updates and the full recomputation give.
            prop_assume!(words.len() > 7);
            let n = words.len();
            let csum_at = 6 + csum_sel % (n - 6);
            let mut w = words.clone();
            w[csum_at] = full(&w, csum_at);
            let old_a = (u32::from(w[1]) << 16) | u32::from(w[2]);
            let old_b = (u32::from(w[3]) << 16) | u32::from(w[4]);
            let old_p = w[5];
            let (a, b, p) = (if same[0] { old_a } else { a }, if same[1] { old_b } else { b }, if same[2] { old_p } else { p });
            let stepwise = update16(update32(update32(w[csum_at], old_a, a), old_b, b), old_p, p);
            let delta = delta32(old_a, a) + delta32(old_b, b) + delta16(old_p, p);
            let combined = apply_delta(w[csum_at], delta);
            prop_assert_eq!(apply_folded(w[csum_at], fold(delta)), combined);
            prop_assert_eq!(finish_with(fold(delta), w[csum_at]), finish(delta + u32::from(w[csum_at])));
            w[1] = (a >> 16) as u16;
            w[2] = a as u16;
            w[3] = (b >> 16) as u16;
            w[4] = b as u16;
            w[5] = p;
            prop_assert_eq!(combined, stepwise);
            prop_assert_eq!(combined, full(&w, csum_at));
        }

        #[test]
        fn update16_corner_values(words in header_strategy(), csum_sel in any::<usize>(), old in prop::sample::select(vec![0u16, 0xffff, 1, 0xfffe]), new in prop::sample::select(vec![0u16, 0xffff, 1, 0xfffe])) {
            // Fields flipping between 0x0000 and 0xffff, where eqn. 2 goes wrong.
            let n = words.len();
            let csum_at = 2 + csum_sel % (n - 2);
            let mut w = words.clone();
            w[1] = old;
            w[csum_at] = full(&w, csum_at);
            w[1] = new;
            prop_assert_eq!(update16(w[csum_at], old, new), full(&w, csum_at));
        }
    }

    #[test]
    fn update_hits_zero_checksum() {
        // Construct a header whose recomputed checksum is exactly 0x0000 after the change and
        // check that the update agrees (the RFC 1624 §3 situation).
        let mut w = vec![0x4500u16, 0x0000, 0x1111];
        // Pick w[1] so that the sum of all words is 0xffff: checksum 0x0000 (with csum word 0).
        let rest = u32::from(w[0]) + u32::from(w[2]);
        let target = 0xffffu32 - rest;
        w.push(0); // checksum word
        let old = w[1];
        let hc = full(&w, 3);
        w[1] = target as u16;
        assert_eq!(full(&w, 3), 0x0000);
        assert_eq!(update16(hc, old, target as u16), 0x0000);
    }

    #[test]
    fn nonzero_multiple_of_ffff_at_the_ends_of_the_header_sums() {
        // A header's sum is at most five 32-bit words: every value near both ends.
        let top = 5 * u64::from(u32::MAX);
        for s in (0..1 << 21).chain(top - (1 << 21)..=top) {
            assert_eq!(
                nonzero_multiple_of_ffff(s),
                s != 0 && s % 0xffff == 0,
                "{s}"
            );
        }
    }

    proptest! {
        #[test]
        fn nonzero_multiple_of_ffff_is_the_remainder_test(s in any::<u64>(), k in 0..=u64::MAX / 0xffff, d in 0u64..0xffff) {
            prop_assert_eq!(nonzero_multiple_of_ffff(s), s != 0 && s % 0xffff == 0);
            let m = k * 0xffff;
            prop_assert_eq!(nonzero_multiple_of_ffff(m), k != 0);
            prop_assert_eq!(nonzero_multiple_of_ffff(m.wrapping_add(d)), m.wrapping_add(d) != 0 && m.wrapping_add(d) % 0xffff == 0);
        }

        #[test]
        fn ipv4_header_ok_agrees_with_the_byte_wise_check(mut h in prop::array::uniform20(any::<u8>()), fix in any::<bool>()) {
            if fix {
                h[10] = 0;
                h[11] = 0;
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            prop_assert_eq!(ipv4_header_ok(&h), naive_fold(naive_sum(&h)) == 0xffff);
            if fix {
                prop_assert!(ipv4_header_ok(&h));
            }
        }
    }
}
