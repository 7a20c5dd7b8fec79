//! Which shard owns a call: `owner = hash(Call-ID) % shards`.
//!
//! The hash is fixed (no per-process key) so that every shard, every restart and the tests
//! agree on the owner of a Call-ID. It is FxHash-style (rotate, xor, multiply per 8-byte
//! word) followed by the murmur3 64-bit finaliser, so that the low bits used by `% shards`
//! depend on every input byte. Call-IDs are compared byte for byte (RFC 3261 20.8: Call-ID
//! is case-sensitive), so the hash is too.

/// FxHash's multiplier (a 64-bit odd constant derived from the golden ratio).
const WORD_MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

/// Hash of a Call-ID value. Stable across processes, builds and platforms (words are read
/// little-endian).
pub fn call_id_hash(call_id: &[u8]) -> u64 {
    let mut hash = call_id.len() as u64;
    let mut words = call_id.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        hash = mix_word(hash, u64::from_le_bytes(bytes));
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut bytes = [0u8; 8];
        for (to, from) in bytes.iter_mut().zip(tail) {
            *to = *from;
        }
        hash = mix_word(hash, u64::from_le_bytes(bytes));
    }
    finalise(hash)
}

/// The shard (0..shards) that owns the call with this Call-ID.
pub fn owner(call_id: &[u8], shards: usize) -> usize {
    assert!(shards > 0, "a server has at least one shard");
    (call_id_hash(call_id) % shards as u64) as usize
}

#[inline]
fn mix_word(hash: u64, word: u64) -> u64 {
    (hash.rotate_left(5) ^ word).wrapping_mul(WORD_MULTIPLIER)
}

/// murmur3's fmix64: every output bit depends on every input bit.
#[inline]
fn finalise(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable() {
        // Pinned values (cross-checked with an independent Python implementation of the
        // same algorithm when written): changing the hash moves calls between shards across a rolling
        // restart and breaks anyone who computed owners offline. Change them only on purpose.
        assert_eq!(call_id_hash(b""), 0);
        assert_eq!(
            call_id_hash(b"a84b4c76e66710@pc33.atlanta.com"),
            PINNED_ATLANTA
        );
        assert_eq!(call_id_hash(b"x"), PINNED_X);
        // Same input, same output; the length takes part (a zero tail byte is not nothing).
        assert_eq!(call_id_hash(b"abc"), call_id_hash(b"abc"));
        assert_ne!(call_id_hash(b"abc"), call_id_hash(b"abc\0"));
        assert_ne!(call_id_hash(b"abcdefgh"), call_id_hash(b"abcdefgh\0"));
        // Case matters (Call-ID is case-sensitive).
        assert_ne!(call_id_hash(b"ABC@host"), call_id_hash(b"abc@host"));
    }

    const PINNED_ATLANTA: u64 = 0x805f_6a6d_7394_68e2;
    const PINNED_X: u64 = 0x6963_2f66_8dcb_e821;

    #[test]
    fn owner_is_in_range_and_single_shard_owns_everything() {
        for i in 0..1000u32 {
            let id = format!("call-{i}@example.net");
            assert_eq!(owner(id.as_bytes(), 1), 0);
            for shards in 2..=9 {
                assert!(owner(id.as_bytes(), shards) < shards);
            }
        }
    }

    #[test]
    fn owner_spreads_sequential_call_ids_evenly() {
        // UAs generate Call-IDs that differ in a few characters (counters, timestamps):
        // they must still spread evenly. 20,000 ids per shard count; each shard must get
        // within 5% of its fair share (the binomial standard deviation is < 1%).
        let n = 20_000usize;
        for shards in [2usize, 3, 4, 6, 8, 16] {
            let mut per_shard = vec![0usize; shards];
            for i in 0..n {
                let id = format!("{i:08x}-4a1c@10.0.0.7");
                per_shard[owner(id.as_bytes(), shards)] += 1;
            }
            let fair = n / shards;
            for (shard, count) in per_shard.iter().enumerate() {
                let deviation = count.abs_diff(fair) as f64 / fair as f64;
                assert!(
                    deviation < 0.05,
                    "{shards} shards: shard {shard} got {count} of {n} (fair {fair})"
                );
            }
        }
    }

    #[test]
    fn one_bit_changes_flip_about_half_the_output_bits() {
        // Avalanche: flipping one input bit flips ~32 of 64 output bits on average.
        let base = b"3848276298220188511@atlanta.example.com".to_vec();
        let mut total_flipped = 0u32;
        let mut trials = 0u32;
        for byte in 0..base.len() {
            for bit in 0..8 {
                let mut changed = base.clone();
                changed[byte] ^= 1 << bit;
                total_flipped += (call_id_hash(&base) ^ call_id_hash(&changed)).count_ones();
                trials += 1;
            }
        }
        let mean = f64::from(total_flipped) / f64::from(trials);
        assert!((28.0..36.0).contains(&mean), "mean flipped bits {mean}");
    }
}
