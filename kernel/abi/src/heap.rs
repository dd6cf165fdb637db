//! Bump-allocation arithmetic used by the domain runtime's heap (pure, so it is host-tested).

/// Carves `size` bytes aligned to `align` (a power of two) out of `[cursor, end)`.
/// Returns the block's start and the new cursor, or `None` when the block does not fit or the
/// arithmetic would overflow.
pub fn bump(cursor: u64, end: u64, size: u64, align: u64) -> Option<(u64, u64)> {
    if !align.is_power_of_two() {
        return None;
    }
    let start = cursor.checked_add(align - 1)? & !(align - 1);
    let next = start.checked_add(size)?;
    (next <= end).then_some((start, next))
}

#[cfg(test)]
mod tests {
    use super::bump;

    #[test]
    fn bump_cases() {
        // (cursor, end, size, align) -> expected
        type Case = ((u64, u64, u64, u64), Option<(u64, u64)>);
        let cases: &[Case] = &[
            ((0x1000, 0x2000, 16, 8), Some((0x1000, 0x1010))),
            ((0x1001, 0x2000, 16, 8), Some((0x1008, 0x1018))),
            ((0x1001, 0x2000, 0, 1), Some((0x1001, 0x1001))),
            ((0x1ff0, 0x2000, 16, 16), Some((0x1ff0, 0x2000))),
            ((0x1ff0, 0x2000, 17, 16), None),
            ((0x1000, 0x2000, 8, 3), None),
            ((u64::MAX - 2, u64::MAX, 1, 8), None),
            ((0x1000, u64::MAX, u64::MAX, 1), None),
        ];
        for &((c, e, s, a), want) in cases {
            assert_eq!(bump(c, e, s, a), want, "bump({c:#x}, {e:#x}, {s}, {a})");
        }
    }
}
