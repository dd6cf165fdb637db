//! Helpers shared by the test domains (argument parsing, benchmark timing).
#![no_std]
#![forbid(unsafe_code)]

/// The value of `key` in an argument string of `key:value` words separated by commas
/// or semicolons (the manifest's `args=` value), parsed as a number.
pub fn arg_u64(args: &str, key: &str) -> Option<u64> {
    args.split([',', ';']).find_map(|w| {
        let (k, v) = w.split_once(':')?;
        if k == key { v.parse().ok() } else { None }
    })
}

/// The TSC cost of one call of `f` (instructions under QEMU `-icount`): `n` calls per round,
/// the best of 5 rounds, so that a timer tick in one round does not count.
#[cfg(target_os = "none")]
pub fn per_call(n: u64, f: &mut dyn FnMut()) -> u64 {
    use warden_rt::abi::guest::rdtsc;
    (0..5)
        .map(|_| {
            let t0 = rdtsc();
            for _ in 0..n {
                f();
            }
            (rdtsc() - t0) / n.max(1)
        })
        .min()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::arg_u64;

    #[test]
    fn args() {
        assert_eq!(arg_u64("lines:20,x:1", "lines"), Some(20));
        assert_eq!(arg_u64("lines:20,x:1", "x"), Some(1));
        assert_eq!(arg_u64("lines:twenty", "lines"), None);
        assert_eq!(arg_u64("", "lines"), None);
    }
}
