//! gurt's hashes (`src/gurt/hash.c`) and the key order they give DAOS's trees
//! (`hkey_common_gen`, `src/common/btree.c`): what a DAOS server's listings are sorted by,
//! and what its placement (jump hash) is built on. Values checked against DAOS's libgurt.

/// `MUR_PRIME`.
const MUR_PRIME: u64 = 0xc6a4_a793_5bd1_e995;
/// `MUR_ROTATE`.
const MUR_ROTATE: u32 = 47;
/// `BTR_MUR_SEED`: the seed of DAOS's tree keys.
pub const BTR_MUR_SEED: u32 = 0xC0FFEE;
/// `KH_INLINE_MAX`: keys up to this length are ordered by their bytes, longer ones by hash.
pub const KH_INLINE_MAX: usize = 15;

/// `d_hash_murmur64`.
pub fn murmur64(key: &[u8], seed: u32) -> u64 {
    let len = key.len() as u32;
    let mut mur = u64::from(seed) ^ u64::from(len).wrapping_mul(MUR_PRIME);
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let mut k = u64::from_le_bytes(w.try_into().unwrap_or_default());
        k = k.wrapping_mul(MUR_PRIME);
        k ^= k >> MUR_ROTATE;
        k = k.wrapping_mul(MUR_PRIME);
        mur ^= k;
        mur = mur.wrapping_mul(MUR_PRIME);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        for (i, &b) in rest.iter().enumerate().rev() {
            mur ^= u64::from(b) << (8 * i);
        }
        mur = mur.wrapping_mul(MUR_PRIME);
    }
    mur ^= mur >> MUR_ROTATE;
    mur = mur.wrapping_mul(MUR_PRIME);
    mur ^= mur >> MUR_ROTATE;
    mur
}

/// `d_hash_string_u32` (djb2 over the bytes).
pub fn string_u32(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &b| {
        (h << 5).wrapping_add(h).wrapping_add(u32::from(b))
    })
}

/// `d_hash_jump`: the bucket of `key` among `buckets` (jump consistent hash).
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let (mut z, mut y): (i64, i64) = (-1, 0);
    while y < i64::from(buckets) {
        z = y;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        y = ((z + 1) as f64 * ((1i64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    z as u32
}

/// A key's place in DAOS's trees (`struct ktr_hkey` as two u64 compared in order): a key
/// of up to 15 bytes by its length and bytes, a longer one by its length and hashes. Keys
/// with equal places are ordered by their bytes.
pub fn key_order(key: &[u8]) -> (u64, u64) {
    let mut h = [0u8; 16];
    if key.len() <= KH_INLINE_MAX {
        h[0] = ((key.len() as u8) << 2) | 1;
        h[1..1 + key.len()].copy_from_slice(key);
    } else {
        h[..4].copy_from_slice(&((key.len() as u32) << 2).to_le_bytes());
        h[4..8].copy_from_slice(&string_u32(key).to_le_bytes());
        h[8..].copy_from_slice(&murmur64(key, BTR_MUR_SEED).to_le_bytes());
    }
    (
        u64::from_le_bytes(h[..8].try_into().unwrap_or_default()),
        u64::from_le_bytes(h[8..].try_into().unwrap_or_default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by DAOS v2.6.4's libgurt (`d_hash_murmur64(k, len, 0xC0FFEE)`,
    /// `d_hash_string_u32`, `d_hash_jump`), called from a C program outside the repository.
    #[test]
    fn the_hashes_are_libgurts() {
        let cases: [(&str, u64, u32); 6] = [
            ("", 0x5e84_70e4_a492_2e8e, 0x1505),
            ("a", 0x4c91_8fe1_1a32_e466, 0x2b606),
            ("Name", 0xc229_7425_2d37_2140, 0x7c89_8026),
            ("AVeryLongName", 0x32c1_4b70_3285_8e12, 0x0b0e_f67d),
            ("0123456789abcdefg", 0x628d_aab2_2e28_3ce3, 0x7608_53ce),
            (
                "hello world, a longer key of bytes",
                0xdc81_6248_de9a_40d4,
                0x1cf9_bc3a,
            ),
        ];
        for (k, mur, s) in cases {
            assert_eq!(murmur64(k.as_bytes(), BTR_MUR_SEED), mur, "murmur64 {k:?}");
            assert_eq!(string_u32(k.as_bytes()), s, "string_u32 {k:?}");
        }
        let jumps: [(u64, [u32; 5]); 4] = [
            (0, [0, 0, 0, 0, 0]),
            (1, [0, 0, 6, 55, 549]),
            (0xdead_beef, [0, 1, 5, 87, 285]),
            (0x1234_5678_9abc_def0, [0, 0, 4, 33, 399]),
        ];
        for (key, want) in jumps {
            for (b, w) in [1, 2, 7, 100, 1000].into_iter().zip(want) {
                assert_eq!(jump(key, b), w, "jump({key:#x}, {b})");
            }
        }
    }

    #[test]
    fn short_keys_order_by_length_first_and_long_ones_after() {
        // DAOS's daos_test CONT4 lists "Name" before "AVeryLongName" (names with their NUL).
        assert!(key_order(b"Name\0") < key_order(b"AVeryLongName\0"));
        // Inline keys: the length byte leads, then the bytes from the first.
        let (a, b) = key_order(b"ab");
        assert_eq!(a, u64::from_le_bytes([9, b'a', b'b', 0, 0, 0, 0, 0]));
        assert_eq!(b, 0);
        // Hashed keys: length << 2, then the string hash, then murmur64.
        let k = b"0123456789abcdefg";
        let (a, b) = key_order(k);
        assert_eq!(a, (17u64 << 2) | (u64::from(string_u32(k)) << 32));
        assert_eq!(b, murmur64(k, BTR_MUR_SEED));
    }
}
