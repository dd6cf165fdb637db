//! Helpers of the boot benchmarks (`cargo xtask bench NAME`): reading figures from a result line
//! and failing with a message.

use std::process::ExitCode;

/// The number after `key=` among the whitespace-separated words of a result line.
#[must_use]
pub fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Prints `bench: MSG` on stderr and returns the failure status.
pub fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("bench: {msg}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields() {
        let l = "bench-ipc: iterations=2000 evtchn_roundtrip=3674 x=y";
        assert_eq!(field(l, "iterations"), Some(2000));
        assert_eq!(field(l, "evtchn_roundtrip"), Some(3674));
        assert_eq!(field(l, "x"), None);
        assert_eq!(field(l, "missing"), None);
    }
}
