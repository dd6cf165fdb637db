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

/// Prints how many hypercalls this domain made, and how many of them it knows were refused
/// before any MAC decision (a call naming an object that does not exist has no target to decide
/// about), for a test to set against the hypervisor's count of MAC decisions. Call it last in
/// `main`: the count includes this line's console write (one hypercall: the console sends a line
/// at once) and the shutdown the runtime issues when `main` returns.
pub fn report_hypercalls(who: &str, undecided: u64) {
    let made = warden_rt::hypercall::made() + 2;
    warden_rt::println!(
        "{who}: {made} hypercalls made, {undecided} refused before a MAC decision, this line and the shutdown included"
    );
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
