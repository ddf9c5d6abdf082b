//! The hashes DAOS's jump map is built on: isa-l's reflected CRC-64/ECMA-182
//! (`crc64_ecma_refl`), the two ways placement feeds it 64-bit words (`crc`, `jm_crc`), and
//! gurt's `d_hash_jump`.
//!
//! All of them are pure and total: any input gives a value, nothing panics.

use super::class::Oid;

/// CRC-64/ECMA-182's polynomial, bit-reversed (the "reflected" form isa-l's `_refl` variant uses).
const ECMA_POLY_REFLECTED: u64 = 0xC96C_5795_D787_0F42;

/// One step per byte value of the reflected CRC, computed at compile time.
const CRC64_TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut r = byte as u64;
        let mut bit = 0;
        while bit < 8 {
            r = if r & 1 == 1 {
                (r >> 1) ^ ECMA_POLY_REFLECTED
            } else {
                r >> 1
            };
            bit += 1;
        }
        table[byte] = r;
        byte += 1;
    }
    table
};

/// isa-l's `crc64_ecma_refl(seed, bytes)`: the running value starts as `!seed` and the result
/// is complemented, so a CRC can be continued by passing the previous result as `seed`.
pub fn crc64_ecma_refl(seed: u64, bytes: &[u8]) -> u64 {
    let r = bytes.iter().fold(!seed, |r, &b| {
        CRC64_TABLE[((r ^ u64::from(b)) & 0xff) as usize] ^ (r >> 8)
    });
    !r
}

/// `crc(data, init)` of DAOS's `pl_map.h`: the CRC of `data`'s 8 little-endian bytes, seeded
/// with `init`. The seed is a `u32` there, so callers passing a 64-bit value lose its high half
/// (layout version 1's rebuild key depends on that).
pub(crate) fn crc(data: u64, seed: u32) -> u64 {
    crc64_ecma_refl(u64::from(seed), &data.to_le_bytes())
}

/// The seed of [`jm_crc`] and the salt layout version 2 mixes into the object id.
pub(crate) const JM_CRC_SEED: u64 = 0xBABE_CAFE;
/// What layout version 2 mixes into the object id to make the object's key.
const JM_OID_SALT: u64 = 0xBABE_FACE;
/// What layout version 2 mixes into the object id to make its rebuild key.
pub(crate) const JM_REBUILD_SALT: u64 = 0xDEAD_2BAD;

/// `jm_crc(a, b, c)`: the CRC of the three words' 24 little-endian bytes, seeded with
/// [`JM_CRC_SEED`].
pub(crate) fn jm_crc(a: u64, b: u64, c: u64) -> u64 {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..16].copy_from_slice(&b.to_le_bytes());
    bytes[16..].copy_from_slice(&c.to_le_bytes());
    crc64_ecma_refl(JM_CRC_SEED, &bytes)
}

/// `jm_oid_hash`: the key an object's walk starts from. Layout version 1 xors the halves of the
/// id (which collides for many ids); version 2 hashes them.
pub(crate) fn oid_hash(layout_ver: u32, oid: Oid) -> u64 {
    if layout_ver <= 1 {
        oid.hi ^ oid.lo
    } else {
        jm_crc(oid.hi, oid.lo, JM_OID_SALT)
    }
}

/// The multiplier of the linear congruential step in `d_hash_jump`.
const JUMP_LCG_MUL: u64 = 2_862_933_555_777_941_757;

/// gurt's `d_hash_jump(key, buckets)` (Lamping and Veach's jump consistent hash): a bucket in
/// `0..buckets`. Like gurt's, it returns `u32::MAX` (its `(uint32_t)-1`) for 0 buckets.
///
/// The floating-point step is gurt's to the bit: `(z + 1) * (2^31 / ((key >> 33) + 1))` in
/// IEEE doubles, truncated to an integer.
pub fn d_hash_jump(mut key: u64, buckets: u32) -> u32 {
    let (mut z, mut y): (i64, i64) = (-1, 0);
    while y < i64::from(buckets) {
        z = y;
        key = key.wrapping_mul(JUMP_LCG_MUL).wrapping_add(1);
        // (key >> 33) + 1 is at most 2^31, and z + 1 at most 2^32: the product fits an i64.
        y = ((z + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    z as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_isa_l_crc64_ecma_refl() {
        // The catalogue check value of CRC-64/XZ (= reflected ECMA-182, init and xorout all ones).
        assert_eq!(crc64_ecma_refl(0, b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64_ecma_refl(0, b""), 0);
        // Continuing a CRC with the previous result as seed is the CRC of the concatenation.
        let whole = crc64_ecma_refl(7, b"123456789");
        assert_eq!(
            crc64_ecma_refl(crc64_ecma_refl(7, b"1234"), b"56789"),
            whole
        );
    }

    #[test]
    fn crc_truncates_its_seed_to_32_bits_and_jm_crc_hashes_24_bytes() {
        let data = 0x0123_4567_89ab_cdefu64;
        assert_eq!(crc(data, 5), crc64_ecma_refl(5, &data.to_le_bytes()));
        let mut bytes = Vec::new();
        for w in [1u64, 2, 3] {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(jm_crc(1, 2, 3), crc64_ecma_refl(0xBABE_CAFE, &bytes));
        let oid = Oid { hi: 9, lo: 12 };
        assert_eq!(oid_hash(1, oid), 9 ^ 12);
        assert_eq!(oid_hash(2, oid), jm_crc(9, 12, 0xBABE_FACE));
    }

    #[test]
    fn d_hash_jump_is_gurts() {
        // Values from the Python transcription checked against libgurt (20 000 inputs).
        let buckets = [0u32, 1, 7, 100, 1000];
        let cases: [(u64, [u32; 5]); 4] = [
            (0, [u32::MAX, 0, 0, 0, 0]),
            (1, [u32::MAX, 0, 6, 55, 549]),
            (0xdead_beef, [u32::MAX, 0, 5, 87, 285]),
            (0x1234_5678_9abc_def0, [u32::MAX, 0, 4, 33, 399]),
        ];
        for (key, want) in cases {
            let got: Vec<u32> = buckets.iter().map(|&n| d_hash_jump(key, n)).collect();
            assert_eq!(got, want, "key {key:#x}");
        }
        // Growing the bucket count moves a key only to the new bucket (consistency).
        for key in 0..2000u64 {
            let k = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for n in 1..40u32 {
                let (a, b) = (d_hash_jump(k, n), d_hash_jump(k, n + 1));
                assert!(a < n && (b == a || b == n), "key {k:#x} buckets {n}");
            }
        }
        assert!(d_hash_jump(u64::MAX, u32::MAX) < u32::MAX);
    }
}
