//! The hypervisor command line: `key` and `key=value` words after the kernel's path.

/// A parsed view over the command-line string (nothing is copied).
#[derive(Debug, Clone, Copy)]
pub struct CmdLine<'a> {
    words: &'a str,
}

impl<'a> CmdLine<'a> {
    /// Parses a Multiboot command line; the first word (the kernel's path) is skipped when it
    /// looks like a path.
    pub fn new(raw: &'a str) -> Self {
        let raw = raw.trim_start();
        let words = match raw.split_once(char::is_whitespace) {
            Some((first, rest)) if first.contains('/') => rest,
            None if raw.contains('/') => "",
            _ => raw,
        };
        Self { words }
    }

    /// Every word, in order.
    pub fn words(&self) -> impl Iterator<Item = &'a str> {
        self.words.split_ascii_whitespace()
    }

    /// Whether the bare word `key` (or `key=…`) is present.
    pub fn flag(&self, key: &str) -> bool {
        self.words().any(|w| w == key || w.split_once('=').is_some_and(|(k, _)| k == key))
    }

    /// The value of the last `key=value` word.
    pub fn value(&self, key: &str) -> Option<&'a str> {
        self.words().filter_map(|w| w.split_once('=')).filter(|(k, _)| *k == key).map(|(_, v)| v).last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flags_and_values() {
        let cases: &[(&str, &str, bool, Option<&str>)] = &[
            ("/boot/warden test_fault=pf require_tpm", "require_tpm", true, None),
            ("/boot/warden test_fault=pf require_tpm", "test_fault", true, Some("pf")),
            ("/boot/warden", "require_tpm", false, None),
            ("require_tpm x=1 x=2", "x", true, Some("2")),
            ("  /k  a=b=c", "a", true, Some("b=c")),
            ("", "a", false, None),
        ];
        for &(raw, key, flag, value) in cases {
            let c = CmdLine::new(raw);
            assert_eq!(c.flag(key), flag, "{raw:?} {key}");
            assert_eq!(c.value(key), value, "{raw:?} {key}");
        }
        assert_eq!(CmdLine::new("/boot/warden a b").words().count(), 2);
    }
}
