//! The Multiboot v1 information structure: memory map, modules and command line, validated.
//!
//! The bootloader is trusted to be honest but not to be tidy: every pointer and length is checked
//! against the addressable limit before it is read, and anything out of shape is a typed error.

use crate::mem::PhysMem;
use heapless::{String, Vec};

/// The value in EAX when a Multiboot v1 loader enters the kernel.
pub const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;

/// The most memory-map entries kept.
pub const MAX_REGIONS: usize = 32;
/// The most modules accepted.
pub const MAX_MODULES: usize = 16;
/// The longest command line or module string accepted, in bytes.
pub const MAX_STRING: usize = 256;

#[cfg(test)]
const FLAG_MEM: u32 = 1 << 0;
const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MODS: u32 = 1 << 3;
const FLAG_MMAP: u32 = 1 << 6;
const INFO_SIZE: u64 = 88;

/// What can be wrong with the boot information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultibootError {
    /// EAX did not hold the Multiboot v1 magic.
    BadMagic(u32),
    /// A structure or string lies (partly) beyond addressable memory.
    OutOfRange { what: &'static str, addr: u64 },
    /// The loader gave no memory map.
    NoMemoryMap,
    /// A memory-map entry's size field is too small to hold an entry.
    BadMapEntry { offset: u64 },
    /// More entries than this kernel keeps.
    TooMany { what: &'static str },
    /// A module ends before it starts.
    BadModule { index: usize },
    /// A string has no terminating NUL within the limit.
    UnterminatedString { what: &'static str },
    /// A string is not UTF-8.
    NotUtf8 { what: &'static str },
}

impl core::fmt::Display for MultibootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic(m) => write!(f, "not started by a Multiboot v1 loader (magic {m:#x})"),
            Self::OutOfRange { what, addr } => write!(f, "{what} at {addr:#x} is beyond addressable memory"),
            Self::NoMemoryMap => f.write_str("the boot loader gave no memory map"),
            Self::BadMapEntry { offset } => write!(f, "memory map entry at offset {offset} is malformed"),
            Self::TooMany { what } => write!(f, "too many {what}"),
            Self::BadModule { index } => write!(f, "module {index} ends before it starts"),
            Self::UnterminatedString { what } => write!(f, "{what} is not NUL-terminated within {MAX_STRING} bytes"),
            Self::NotUtf8 { what } => write!(f, "{what} is not UTF-8"),
        }
    }
}

/// The type of a memory-map region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// Usable RAM.
    Available,
    /// ACPI tables, reclaimable after reading.
    AcpiReclaimable,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Defective RAM.
    Bad,
    /// Anything else: reserved.
    Reserved(u32),
}

/// One memory-map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Start address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// What the region is.
    pub kind: RegionKind,
}

impl Region {
    /// End address (exclusive), saturating.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// One boot module: a file the loader placed in memory, with its string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The module's string: its path (Multiboot v1 under QEMU) and its arguments.
    pub string: String<MAX_STRING>,
}

impl Module {
    /// The value of a `key=value` word in the module string. A first word that looks like a
    /// path (QEMU's Multiboot v1 loader puts the file's path there; GRUB's `module2` does not)
    /// is not an argument, as on the command line ([`crate::cmdline::CmdLine`]).
    pub fn arg(&self, key: &str) -> Option<&str> {
        let mut words = self.string.split_ascii_whitespace().peekable();
        if words.peek().is_some_and(|w| w.contains('/')) {
            words.next();
        }
        words.find_map(|w| {
            let (k, v) = w.split_once('=')?;
            (k == key).then_some(v)
        })
    }
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    /// Whether the module is empty.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The validated boot information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// The memory map.
    pub regions: Vec<Region, MAX_REGIONS>,
    /// Boot modules in load order.
    pub modules: Vec<Module, MAX_MODULES>,
    /// The kernel command line (starts with the kernel's path under QEMU's Multiboot v1 loader;
    /// GRUB's `multiboot2` passes the arguments alone).
    pub cmdline: String<MAX_STRING>,
    /// Physical ranges the boot information itself occupies (to keep out of the allocator).
    pub occupied: Vec<(u64, u64), 8>,
}

fn check_range(what: &'static str, addr: u64, len: u64, limit: u64) -> Result<(), MultibootError> {
    match addr.checked_add(len) {
        Some(end) if end <= limit => Ok(()),
        _ => Err(MultibootError::OutOfRange { what, addr }),
    }
}

fn read_string(
    mem: &impl PhysMem,
    what: &'static str,
    addr: u64,
    limit: u64,
) -> Result<(String<MAX_STRING>, u64), MultibootError> {
    let mut bytes = [0u8; MAX_STRING];
    let mut n = 0;
    loop {
        if n == MAX_STRING {
            return Err(MultibootError::UnterminatedString { what });
        }
        check_range(what, addr + n as u64, 1, limit)?;
        let mut b = [0u8];
        mem.read(addr + n as u64, &mut b);
        if b[0] == 0 {
            break;
        }
        bytes[n] = b[0];
        n += 1;
    }
    let s = core::str::from_utf8(&bytes[..n]).map_err(|_| MultibootError::NotUtf8 { what })?;
    let mut out = String::new();
    // Cannot fail: `n < MAX_STRING`.
    let _ = out.push_str(s);
    Ok((out, n as u64 + 1))
}

/// Parses and validates the structure at `info` given the loader's `magic`. Nothing at or
/// beyond `limit` is read.
pub fn parse(mem: &impl PhysMem, magic: u32, info: u64, limit: u64) -> Result<BootInfo, MultibootError> {
    if magic != BOOTLOADER_MAGIC {
        return Err(MultibootError::BadMagic(magic));
    }
    check_range("the boot information", info, INFO_SIZE, limit)?;
    let flags = mem.read_u32(info);
    let mut out = BootInfo { regions: Vec::new(), modules: Vec::new(), cmdline: String::new(), occupied: Vec::new() };
    let _ = out.occupied.push((info, info + INFO_SIZE));

    if flags & FLAG_MMAP == 0 {
        // The legacy mem_lower/mem_upper fields (FLAG_MEM) are not enough to place anything.
        return Err(MultibootError::NoMemoryMap);
    }
    let map_len = u64::from(mem.read_u32(info + 44));
    let map_addr = u64::from(mem.read_u32(info + 48));
    check_range("the memory map", map_addr, map_len, limit)?;
    let _ = out.occupied.push((map_addr, map_addr + map_len));
    let mut off = 0;
    while off < map_len {
        if map_len - off < 24 {
            return Err(MultibootError::BadMapEntry { offset: off });
        }
        let size = u64::from(mem.read_u32(map_addr + off));
        if size < 20 || size > map_len - off - 4 {
            return Err(MultibootError::BadMapEntry { offset: off });
        }
        let start = mem.read_u64(map_addr + off + 4);
        let len = mem.read_u64(map_addr + off + 12);
        let kind = match mem.read_u32(map_addr + off + 20) {
            1 => RegionKind::Available,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::Bad,
            other => RegionKind::Reserved(other),
        };
        out.regions
            .push(Region { start, len, kind })
            .map_err(|_| MultibootError::TooMany { what: "memory map entries" })?;
        off += size + 4;
    }

    if flags & FLAG_CMDLINE != 0 {
        let addr = u64::from(mem.read_u32(info + 16));
        let (s, n) = read_string(mem, "the command line", addr, limit)?;
        out.cmdline = s;
        let _ = out.occupied.push((addr, addr + n));
    }

    if flags & FLAG_MODS != 0 {
        let count = u64::from(mem.read_u32(info + 20));
        let addr = u64::from(mem.read_u32(info + 24));
        if count > MAX_MODULES as u64 {
            return Err(MultibootError::TooMany { what: "modules" });
        }
        check_range("the module list", addr, count * 16, limit)?;
        let _ = out.occupied.push((addr, addr + count * 16));
        for i in 0..count {
            let e = addr + i * 16;
            let start = u64::from(mem.read_u32(e));
            let end = u64::from(mem.read_u32(e + 4));
            if end < start {
                return Err(MultibootError::BadModule { index: i as usize });
            }
            check_range("a module", start, end - start, limit)?;
            let (string, _) = read_string(mem, "a module string", u64::from(mem.read_u32(e + 8)), limit)?;
            // Cannot overflow: `count <= MAX_MODULES`.
            let _ = out.modules.push(Module { start, end, string });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::FakeMem;

    const INFO: u64 = 0x1000;
    const MMAP: u64 = 0x2000;
    const MODS: u64 = 0x3000;
    const STRS: u64 = 0x4000;
    const LIMIT: u64 = 0x10000;

    /// A well-formed structure: two regions, a command line, two modules.
    fn good() -> FakeMem {
        let mut m = FakeMem::new(LIMIT as usize);
        let w32 = |m: &mut FakeMem, a: u64, v: u32| m.write(a, &v.to_le_bytes());
        w32(&mut m, INFO, FLAG_MEM | FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP);
        w32(&mut m, INFO + 16, STRS as u32);
        m.write(STRS, b"/boot/warden test_fault=pf\0");
        w32(&mut m, INFO + 20, 2);
        w32(&mut m, INFO + 24, MODS as u32);
        for (i, (s, e, str_off)) in [(0x8000u32, 0x8100u32, 0x100u64), (0x9000, 0x9000, 0x200)].iter().enumerate() {
            let base = MODS + i as u64 * 16;
            w32(&mut m, base, *s);
            w32(&mut m, base + 4, *e);
            w32(&mut m, base + 8, (STRS + str_off) as u32);
        }
        m.write(STRS + 0x100, b"/x/manifest kind=manifest\0");
        m.write(STRS + 0x200, b"/x/hello.elf kind=image name=hello\0");
        w32(&mut m, INFO + 44, 48);
        w32(&mut m, INFO + 48, MMAP as u32);
        for (i, (start, len, kind)) in [(0u64, 0x9fc00u64, 1u32), (0x100000, 0x7f00000, 1)].iter().enumerate() {
            let e = MMAP + i as u64 * 24;
            w32(&mut m, e, 20);
            m.write(e + 4, &start.to_le_bytes());
            m.write(e + 12, &len.to_le_bytes());
            w32(&mut m, e + 20, *kind);
        }
        m
    }

    #[test]
    fn parses_a_well_formed_structure() {
        let info = parse(&good(), BOOTLOADER_MAGIC, INFO, LIMIT).unwrap();
        assert_eq!(info.regions.len(), 2);
        assert_eq!(info.regions[1], Region { start: 0x100000, len: 0x7f00000, kind: RegionKind::Available });
        assert_eq!(info.cmdline.as_str(), "/boot/warden test_fault=pf");
        assert_eq!(info.modules.len(), 2);
        assert_eq!(info.modules[0].arg("kind"), Some("manifest"));
        assert_eq!(info.modules[1].arg("name"), Some("hello"));
        assert_eq!(info.modules[1].arg("kind"), Some("image"));
        // GRUB's module2 strings hold the arguments alone; a path-looking first word is skipped.
        let m = |s: &str| Module { start: 0, end: 0, string: String::try_from(s).unwrap() };
        assert_eq!(m("kind=policy").arg("kind"), Some("policy"));
        assert_eq!(m("/boot/p kind=policy").arg("kind"), Some("policy"));
        assert_eq!(m("/boot/kind=x kind=policy").arg("kind"), Some("policy"));
        assert_eq!(m("kind=image name=a").arg("name"), Some("a"));
        assert!(info.modules[1].is_empty());
        assert_eq!(info.modules[0].len(), 0x100);
        assert!(info.occupied.contains(&(MMAP, MMAP + 48)));
    }

    /// Each malformation, applied to the good structure, gives its own error.
    #[test]
    fn malformed_input_gives_typed_errors() {
        type Patch = fn(&mut FakeMem);
        let cases: &[(&str, Patch, MultibootError)] = &[
            ("no mmap", |m| m.write(INFO, &(FLAG_MEM).to_le_bytes()), MultibootError::NoMemoryMap),
            ("mmap beyond limit", |m| m.write(INFO + 48, &0xfff0u32.to_le_bytes()), MultibootError::OutOfRange { what: "the memory map", addr: 0xfff0 }),
            ("mmap entry size 4", |m| m.write(MMAP, &4u32.to_le_bytes()), MultibootError::BadMapEntry { offset: 0 }),
            ("mmap entry overruns", |m| m.write(MMAP + 24, &40u32.to_le_bytes()), MultibootError::BadMapEntry { offset: 24 }),
            ("mmap length not whole", |m| m.write(INFO + 44, &50u32.to_le_bytes()), MultibootError::BadMapEntry { offset: 48 }),
            ("too many modules", |m| m.write(INFO + 20, &17u32.to_le_bytes()), MultibootError::TooMany { what: "modules" }),
            ("module list beyond limit", |m| m.write(INFO + 24, &0xfffcu32.to_le_bytes()), MultibootError::OutOfRange { what: "the module list", addr: 0xfffc }),
            ("module backwards", |m| m.write(MODS + 4, &0x7000u32.to_le_bytes()), MultibootError::BadModule { index: 0 }),
            ("module beyond limit", |m| m.write(MODS + 4, &0x20000u32.to_le_bytes()), MultibootError::OutOfRange { what: "a module", addr: 0x8000 }),
            ("unterminated cmdline", |m| m.write(STRS, &[b'a'; 256]), MultibootError::UnterminatedString { what: "the command line" }),
            ("cmdline not utf8", |m| m.write(STRS, &[0xff, 0xfe, 0]), MultibootError::NotUtf8 { what: "the command line" }),
            ("cmdline runs off the end", |m| m.write(INFO + 16, &(LIMIT as u32 - 2).to_le_bytes()), MultibootError::OutOfRange { what: "the command line", addr: LIMIT }),
        ];
        for (name, patch, want) in cases {
            let mut m = good();
            if *name == "cmdline runs off the end" {
                m.write(LIMIT - 2, b"ab");
            }
            patch(&mut m);
            assert_eq!(parse(&m, BOOTLOADER_MAGIC, INFO, LIMIT), Err(*want), "case {name}");
        }
        assert_eq!(parse(&good(), 0x1234, INFO, LIMIT), Err(MultibootError::BadMagic(0x1234)));
        assert!(matches!(parse(&good(), BOOTLOADER_MAGIC, LIMIT - 8, LIMIT), Err(MultibootError::OutOfRange { .. })));
    }

    #[test]
    fn random_bytes_never_panic() {
        // A tiny deterministic generator: the structure and everything it points to is noise.
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            let mut m = FakeMem::new(LIMIT as usize);
            let mut bytes = [0u8; 512];
            for b in bytes.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            // Keep pointers small often enough to reach the deeper checks.
            for i in (0..bytes.len()).step_by(4) {
                if bytes[i] & 1 == 0 {
                    bytes[i + 2] = 0;
                    bytes[i + 3] = 0;
                }
            }
            m.write(INFO, &bytes);
            m.write(0, &bytes);
            let _ = parse(&m, BOOTLOADER_MAGIC, INFO, LIMIT);
        }
    }
}
