//! The Merkle root over an image's records: leaves `SHA-256(0x00 || record)`, nodes
//! `SHA-256(0x01 || left || right)`, an odd node carried up unchanged (never duplicated, so two
//! different record lists cannot share a root). The domain prefixes keep a leaf from passing
//! as a node.

use sha2::{Digest as _, Sha256};

/// The root over `leaves` (each a framed record); the root of no records is SHA-256 of "".
pub(crate) fn root<'a>(leaves: impl Iterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut level: alloc::vec::Vec<[u8; 32]> = leaves
        .map(|l| {
            Sha256::new()
                .chain_update([0u8])
                .chain_update(l)
                .finalize()
                .into()
        })
        .collect();
    if level.is_empty() {
        return Sha256::digest([]).into();
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => Sha256::new()
                    .chain_update([1u8])
                    .chain_update(l)
                    .chain_update(r)
                    .finalize()
                    .into(),
                [odd] => *odd,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::root;

    #[test]
    fn order_count_and_content_change_the_root() {
        let a: &[u8] = b"a";
        let b: &[u8] = b"b";
        let c: &[u8] = b"c";
        let base = root([a, b, c].into_iter());
        assert_ne!(base, root([b, a, c].into_iter()));
        assert_ne!(base, root([a, b].into_iter()));
        assert_ne!(base, root([a, b, c, c].into_iter()));
        assert_ne!(base, root([a, b, b"d".as_slice()].into_iter()));
        assert_eq!(base, root([a, b, c].into_iter()));
    }
}
