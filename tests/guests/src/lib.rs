//! Helpers shared by the test domains (argument parsing).
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
