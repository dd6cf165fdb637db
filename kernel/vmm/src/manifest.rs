//! The boot manifest: the text module `cargo xtask` builds from a scenario's `[[domain]]` tables.
//!
//! ```text
//! warden-manifest 1
//! domain name=hello image=hello memory_mib=4 label=guest_t priority=5
//! ```
//! One `domain` line per domain, `key=value` words without spaces; blank lines and lines
//! starting with `#` are ignored. Known keys are validated here; other keys are kept (later
//! subsystems read them with [`DomainSpec::get`]).

use heapless::Vec;

/// Most domains one manifest may declare.
pub const MAX_DOMAINS: usize = 16;
/// The largest `category=` a manifest may give.
pub const MAX_CATEGORY: u32 = (1 << 31) - 1;
/// Most `key=value` words on one line.
pub const MAX_KEYS: usize = 16;
/// Longest name, label or image name.
pub const MAX_NAME: usize = 31;
/// Domain memory bounds in MiB.
pub const MIN_MEMORY_MIB: u64 = 3;
pub const MAX_MEMORY_MIB: u64 = 256;
/// Defaults for keys a line leaves out.
pub const DEFAULT_MEMORY_MIB: u64 = 4;
pub const DEFAULT_PRIORITY: u8 = 5;
pub const DEFAULT_LABEL: &str = "domain_t";

/// What a scenario documents as a domain's end; the hypervisor reports success only if every
/// domain's actual end matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Shuts down with reason "done" (the default).
    Shutdown,
    /// Shuts down with reason "failure" or "panic".
    Failure,
    /// Stopped for touching guest-physical memory it does not own.
    MemoryViolation,
    /// Stopped for a forbidden MSR write.
    MsrViolation,
    /// Stopped for port I/O.
    IoViolation,
    /// Stopped after a triple fault.
    TripleFault,
    /// Stopped for invalid vCPU state (VMRUN refused it).
    InvalidState,
    /// Stopped for an instruction domains may never execute (SVM, debug registers, ...).
    ForbiddenInstruction,
    /// Stopped for a control-register write the rule refuses.
    CrViolation,
    /// Stopped for an intercepted #DB or #AC.
    Exception,
    /// Still running when every other domain has ended (e.g. a spinner).
    Running,
}

impl Expected {
    pub const ALL: [(&'static str, Expected); 11] = [
        ("shutdown", Expected::Shutdown),
        ("failure", Expected::Failure),
        ("memory-violation", Expected::MemoryViolation),
        ("msr-violation", Expected::MsrViolation),
        ("io-violation", Expected::IoViolation),
        ("triple-fault", Expected::TripleFault),
        ("invalid-state", Expected::InvalidState),
        ("forbidden-instruction", Expected::ForbiddenInstruction),
        ("cr-violation", Expected::CrViolation),
        ("exception", Expected::Exception),
        ("running", Expected::Running),
    ];

    pub fn parse(s: &str) -> Option<Expected> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|&(_, e)| e)
    }

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, e)| *e == self).map_or("?", |(n, _)| n)
    }
}

/// One validated `domain` line (borrowing the manifest text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec<'a> {
    pub name: &'a str,
    /// The `name=` of the image module to load.
    pub image: &'a str,
    pub memory_mib: u64,
    pub label: &'a str,
    /// 0 (lowest) ..= 255 (highest).
    pub priority: u8,
    pub expected: Expected,
    /// Free-form argument string handed to the domain in its start-info page.
    pub args: &'a str,
    /// `category=N`: the domain's category for the policy's `separate` rules (domains of one
    /// category are one tenant). `None`: a category of its own, shared with no other domain.
    pub category: Option<u32>,
    pairs: Vec<(&'a str, &'a str), MAX_KEYS>,
}

impl<'a> DomainSpec<'a> {
    /// The raw value of any key on the line.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }
}

/// Why a manifest was refused; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// The first line is not `warden-manifest 1`.
    BadHeader,
    /// Not valid UTF-8.
    NotText,
    /// A line starts with something other than `domain`.
    UnknownDirective { line: usize },
    /// A word is not `key=value` with a non-empty key and value.
    BadPair { line: usize },
    DuplicateKey { line: usize, key: KeyName },
    MissingKey { line: usize, key: &'static str },
    /// A value is malformed or out of range; `key` names it.
    BadValue { line: usize, key: &'static str },
    TooManyKeys { line: usize },
    TooManyDomains,
    DuplicateName { line: usize },
}

/// A short copy of an offending key, for diagnostics.
pub type KeyName = heapless::String<MAX_NAME>;

impl core::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ManifestError::BadHeader => f.write_str("first line must be `warden-manifest 1`"),
            ManifestError::NotText => f.write_str("manifest is not UTF-8 text"),
            ManifestError::UnknownDirective { line } => write!(f, "line {line}: expected `domain key=value ...`"),
            ManifestError::BadPair { line } => write!(f, "line {line}: every word must be key=value"),
            ManifestError::DuplicateKey { line, key } => write!(f, "line {line}: key `{key}` given twice"),
            ManifestError::MissingKey { line, key } => write!(f, "line {line}: missing `{key}=`"),
            ManifestError::BadValue { line, key } => write!(f, "line {line}: bad value for `{key}`"),
            ManifestError::TooManyKeys { line } => write!(f, "line {line}: more than {MAX_KEYS} keys"),
            ManifestError::TooManyDomains => write!(f, "more than {MAX_DOMAINS} domains"),
            ManifestError::DuplicateName { line } => write!(f, "line {line}: domain name already used"),
        }
    }
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn parse_line(line_no: usize, rest: &str) -> Result<DomainSpec<'_>, ManifestError> {
    let line = line_no;
    let mut pairs: Vec<(&str, &str), MAX_KEYS> = Vec::new();
    for word in rest.split_ascii_whitespace() {
        let (k, v) = word.split_once('=').ok_or(ManifestError::BadPair { line })?;
        if k.is_empty() || v.is_empty() {
            return Err(ManifestError::BadPair { line });
        }
        if pairs.iter().any(|(pk, _)| *pk == k) {
            let mut key = KeyName::new();
            for c in k.chars().take(MAX_NAME) {
                let _ = key.push(c);
            }
            return Err(ManifestError::DuplicateKey { line, key });
        }
        pairs.push((k, v)).map_err(|_| ManifestError::TooManyKeys { line })?;
    }
    let get = |k: &str| pairs.iter().find(|(pk, _)| *pk == k).map(|&(_, v)| v);
    let ident = |key: &'static str, default: Option<&'static str>| -> Result<&str, ManifestError> {
        match get(key) {
            Some(v) if is_ident(v) => Ok(v),
            Some(_) => Err(ManifestError::BadValue { line, key }),
            None => default.ok_or(ManifestError::MissingKey { line, key }),
        }
    };
    let number = |key: &'static str, default: u64, lo: u64, hi: u64| -> Result<u64, ManifestError> {
        match get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or(ManifestError::BadValue { line, key }),
        }
    };
    let name = ident("name", None)?;
    let image = ident("image", None)?;
    let label = ident("label", Some(DEFAULT_LABEL))?;
    let memory_mib = number("memory_mib", DEFAULT_MEMORY_MIB, MIN_MEMORY_MIB, MAX_MEMORY_MIB)?;
    let priority = number("priority", u64::from(DEFAULT_PRIORITY), 0, 255)? as u8;
    let expected = match get("outcome") {
        None => Expected::Shutdown,
        Some(v) => Expected::parse(v).ok_or(ManifestError::BadValue { line, key: "outcome" })?,
    };
    let args = get("args").unwrap_or("");
    if args.len() >= warden_abi::ARGS_LEN {
        return Err(ManifestError::BadValue { line, key: "args" });
    }
    // Numbers at and above 2^31 are the hypervisor's: the categories of domains without one.
    let category = match get("category") {
        None => None,
        Some(_) => Some(number("category", 0, 0, u64::from(MAX_CATEGORY))? as u32),
    };
    Ok(DomainSpec { name, image, memory_mib, label, priority, expected, args, category, pairs })
}

/// Parses and validates a whole manifest.
pub fn parse(bytes: &[u8]) -> Result<Vec<DomainSpec<'_>, MAX_DOMAINS>, ManifestError> {
    let text = core::str::from_utf8(bytes).map_err(|_| ManifestError::NotText)?;
    // Multiboot modules are page-padded by some loaders: trailing NULs are not content.
    let text = text.trim_end_matches('\0');
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    match lines.next() {
        Some((_, h)) if h.split_ascii_whitespace().eq(["warden-manifest", "1"]) => {}
        _ => return Err(ManifestError::BadHeader),
    }
    let mut out: Vec<DomainSpec<'_>, MAX_DOMAINS> = Vec::new();
    for (line, l) in lines {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let rest = match l.split_once(|c: char| c.is_ascii_whitespace()) {
            Some(("domain", rest)) => rest,
            _ => return Err(ManifestError::UnknownDirective { line }),
        };
        let spec = parse_line(line, rest)?;
        if out.iter().any(|d| d.name == spec.name) {
            return Err(ManifestError::DuplicateName { line });
        }
        out.push(spec).map_err(|_| ManifestError::TooManyDomains)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example_with_defaults() {
        let m = b"warden-manifest 1\n\
                  # comment\n\
                  domain name=hello image=hello memory_mib=4 label=guest_t priority=5\n\
                  \n\
                  domain name=spin image=spinner outcome=running args=x:1,y:2 vtpm=yes\n";
        let d = parse(m).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].name, d[0].image, d[0].memory_mib, d[0].label, d[0].priority), ("hello", "hello", 4, "guest_t", 5));
        assert_eq!(d[0].expected, Expected::Shutdown);
        assert_eq!((d[1].label, d[1].memory_mib, d[1].priority), (DEFAULT_LABEL, DEFAULT_MEMORY_MIB, DEFAULT_PRIORITY));
        assert_eq!((d[1].expected, d[1].args), (Expected::Running, "x:1,y:2"));
        assert_eq!(d[1].get("vtpm"), Some("yes"));
        assert_eq!(d[1].get("nope"), None);
        assert_eq!((d[0].category, d[1].category), (None, None), "no category unless given");
    }

    #[test]
    fn categories_are_numbers_below_the_hypervisors_own() {
        let cases: &[(&[u8], Result<Option<u32>, ManifestError>)] = &[
            (b"warden-manifest 1\ndomain name=a image=a category=0\n", Ok(Some(0))),
            (b"warden-manifest 1\ndomain name=a image=a category=7\n", Ok(Some(7))),
            (b"warden-manifest 1\ndomain name=a image=a category=2147483647\n", Ok(Some(MAX_CATEGORY))),
            (b"warden-manifest 1\ndomain name=a image=a category=2147483648\n", Err(ManifestError::BadValue { line: 2, key: "category" })),
            (b"warden-manifest 1\ndomain name=a image=a category=-1\n", Err(ManifestError::BadValue { line: 2, key: "category" })),
            (b"warden-manifest 1\ndomain name=a image=a category=tenant\n", Err(ManifestError::BadValue { line: 2, key: "category" })),
        ];
        for (m, want) in cases {
            let got = parse(m).map(|d| d[0].category);
            assert_eq!(&got, want, "{:?}", core::str::from_utf8(m));
        }
    }

    #[test]
    fn empty_manifest_and_padding() {
        assert_eq!(parse(b"warden-manifest 1\n").unwrap().len(), 0);
        assert_eq!(parse(b"warden-manifest 1\ndomain name=a image=b\n\0\0\0").unwrap().len(), 1);
    }

    #[test]
    fn malformed_manifests_are_refused_with_a_located_error() {
        let key = |s: &str| KeyName::try_from(s).unwrap();
        let cases: &[(&[u8], ManifestError)] = &[
            (b"", ManifestError::BadHeader),
            (b"warden-manifest 2\n", ManifestError::BadHeader),
            (b"\xff\xfe", ManifestError::NotText),
            (b"warden-manifest 1\nvm name=a image=a\n", ManifestError::UnknownDirective { line: 2 }),
            (b"warden-manifest 1\ndomain\n", ManifestError::UnknownDirective { line: 2 }),
            (b"warden-manifest 1\ndomain name=a image\n", ManifestError::BadPair { line: 2 }),
            (b"warden-manifest 1\ndomain name= image=a\n", ManifestError::BadPair { line: 2 }),
            (b"warden-manifest 1\ndomain =a image=a\n", ManifestError::BadPair { line: 2 }),
            (b"warden-manifest 1\ndomain name=a name=b image=a\n", ManifestError::DuplicateKey { line: 2, key: key("name") }),
            (b"warden-manifest 1\ndomain image=a\n", ManifestError::MissingKey { line: 2, key: "name" }),
            (b"warden-manifest 1\ndomain name=a\n", ManifestError::MissingKey { line: 2, key: "image" }),
            (b"warden-manifest 1\ndomain name=A image=a\n", ManifestError::BadValue { line: 2, key: "name" }),
            (b"warden-manifest 1\ndomain name=a image=a/b\n", ManifestError::BadValue { line: 2, key: "image" }),
            (b"warden-manifest 1\ndomain name=a image=a memory_mib=0\n", ManifestError::BadValue { line: 2, key: "memory_mib" }),
            (b"warden-manifest 1\ndomain name=a image=a memory_mib=99999999999999999999999\n",
                ManifestError::BadValue { line: 2, key: "memory_mib" }),
            (b"warden-manifest 1\ndomain name=a image=a memory_mib=-4\n", ManifestError::BadValue { line: 2, key: "memory_mib" }),
            (b"warden-manifest 1\ndomain name=a image=a priority=256\n", ManifestError::BadValue { line: 2, key: "priority" }),
            (b"warden-manifest 1\ndomain name=a image=a outcome=win\n", ManifestError::BadValue { line: 2, key: "outcome" }),
            (b"warden-manifest 1\ndomain name=a image=a\ndomain name=a image=b\n", ManifestError::DuplicateName { line: 3 }),
            (b"warden-manifest 1\ndomain name=a image=a k1=1 k2=1 k3=1 k4=1 k5=1 k6=1 k7=1 k8=1 k9=1 k10=1 k11=1 k12=1 k13=1 k14=1 k15=1\n",
                ManifestError::TooManyKeys { line: 2 }),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).map(|v| v.len()), Err(want.clone()), "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn too_many_domains_and_long_args() {
        let mut m = String::from("warden-manifest 1\n");
        for i in 0..=MAX_DOMAINS {
            m.push_str(&format!("domain name=d{i} image=x\n"));
        }
        assert_eq!(parse(m.as_bytes()).map(|v| v.len()), Err(ManifestError::TooManyDomains));
        let long = format!("warden-manifest 1\ndomain name=a image=a args={}\n", "x".repeat(600));
        assert_eq!(parse(long.as_bytes()).map(|v| v.len()), Err(ManifestError::BadValue { line: 2, key: "args" }));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic generator: every input is an error or a valid list, never a panic.
        let mut x: u64 = 0x1234_5678;
        let alphabet = b"warden-manifest 1\ndomain name=image= memory_mib=4 priority=9 outcome=running #\0\xff";
        for _ in 0..2000 {
            let len = (x % 120) as usize;
            let mut buf = std::vec::Vec::with_capacity(len + 18);
            buf.extend_from_slice(b"warden-manifest 1\n");
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            if let Ok(ds) = parse(&buf) {
                assert!(ds.iter().all(|d| is_ident(d.name) && is_ident(d.image)));
            }
        }
    }
}
