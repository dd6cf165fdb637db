//! The start-info page a domain receives in `RDI`, and the `DomainInfo` record: `#[repr(C)]`
//! plain-integer layouts (no padding, every bit pattern valid), serialised field by field so the
//! hypervisor never needs a pointer cast.

use core::mem::{offset_of, size_of};

/// `StartInfo::magic`: "WRDNSTRT" little-endian.
pub const START_INFO_MAGIC: u64 = u64::from_le_bytes(*b"WRDNSTRT");
/// Bytes of a NUL-padded name or label.
pub const NAME_LEN: usize = 32;
/// Bytes of the NUL-padded argument string (the manifest's `args=` value; room for a
/// management domain's operator list: three compressed P-256 keys in hex with roles and names).
pub const ARGS_LEN: usize = 512;

/// What the hypervisor tells a domain at start. All addresses are guest-physical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct StartInfo {
    pub magic: u64,
    /// [`crate::Version::encode`] of the hypervisor's ABI.
    pub abi_version: u32,
    pub domain_id: u32,
    /// Backed guest-physical memory is `[0, memory_bytes)` minus the unmapped null page.
    pub memory_bytes: u64,
    pub start_info_gpa: u64,
    /// The loaded ELF image's extent (page-aligned).
    pub image_start: u64,
    pub image_end: u64,
    /// The stack; the page below `stack_bottom` is an unmapped guard page.
    pub stack_bottom: u64,
    pub stack_top: u64,
    /// Free memory the domain may use as it likes (the runtime's heap).
    pub heap_start: u64,
    pub heap_end: u64,
    pub priority: u32,
    /// 1 = the console is the `ConsoleWrite` hypercall.
    pub console: u32,
    pub name: [u8; NAME_LEN],
    pub label: [u8; NAME_LEN],
    pub args: [u8; ARGS_LEN],
}

/// What the `DomainInfo` hypercall writes into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct DomainInfo {
    pub domain_id: u32,
    pub priority: u32,
    pub memory_bytes: u64,
    /// Timer ticks this domain has been running for.
    pub cpu_ticks: u64,
    /// VM exits this domain has caused so far (including this call).
    pub exits: u64,
    pub name: [u8; NAME_LEN],
    pub label: [u8; NAME_LEN],
}

/// Copies `s` into a NUL-padded fixed field, truncating at the field size.
pub fn to_fixed<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out
}

/// The text of a NUL-padded fixed field up to its first NUL (or `""` if it is not UTF-8).
pub fn fixed_str(field: &[u8]) -> &str {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    core::str::from_utf8(&field[..end]).unwrap_or("")
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

fn get<const N: usize>(inp: &[u8], at: usize) -> [u8; N] {
    let mut b = [0u8; N];
    b.copy_from_slice(&inp[at..at + N]);
    b
}

impl StartInfo {
    pub const SIZE: usize = size_of::<StartInfo>();

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(&mut o, offset_of!(StartInfo, magic), &self.magic.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, abi_version), &self.abi_version.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, domain_id), &self.domain_id.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, memory_bytes), &self.memory_bytes.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, start_info_gpa), &self.start_info_gpa.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, image_start), &self.image_start.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, image_end), &self.image_end.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, stack_bottom), &self.stack_bottom.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, stack_top), &self.stack_top.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, heap_start), &self.heap_start.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, heap_end), &self.heap_end.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, priority), &self.priority.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, console), &self.console.to_le_bytes());
        put(&mut o, offset_of!(StartInfo, name), &self.name);
        put(&mut o, offset_of!(StartInfo, label), &self.label);
        put(&mut o, offset_of!(StartInfo, args), &self.args);
        o
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        StartInfo {
            magic: u64::from_le_bytes(get(b, offset_of!(StartInfo, magic))),
            abi_version: u32::from_le_bytes(get(b, offset_of!(StartInfo, abi_version))),
            domain_id: u32::from_le_bytes(get(b, offset_of!(StartInfo, domain_id))),
            memory_bytes: u64::from_le_bytes(get(b, offset_of!(StartInfo, memory_bytes))),
            start_info_gpa: u64::from_le_bytes(get(b, offset_of!(StartInfo, start_info_gpa))),
            image_start: u64::from_le_bytes(get(b, offset_of!(StartInfo, image_start))),
            image_end: u64::from_le_bytes(get(b, offset_of!(StartInfo, image_end))),
            stack_bottom: u64::from_le_bytes(get(b, offset_of!(StartInfo, stack_bottom))),
            stack_top: u64::from_le_bytes(get(b, offset_of!(StartInfo, stack_top))),
            heap_start: u64::from_le_bytes(get(b, offset_of!(StartInfo, heap_start))),
            heap_end: u64::from_le_bytes(get(b, offset_of!(StartInfo, heap_end))),
            priority: u32::from_le_bytes(get(b, offset_of!(StartInfo, priority))),
            console: u32::from_le_bytes(get(b, offset_of!(StartInfo, console))),
            name: get(b, offset_of!(StartInfo, name)),
            label: get(b, offset_of!(StartInfo, label)),
            args: get(b, offset_of!(StartInfo, args)),
        }
    }

    pub fn name(&self) -> &str {
        fixed_str(&self.name)
    }

    pub fn label(&self) -> &str {
        fixed_str(&self.label)
    }

    pub fn args(&self) -> &str {
        fixed_str(&self.args)
    }
}

impl DomainInfo {
    pub const SIZE: usize = size_of::<DomainInfo>();

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(&mut o, offset_of!(DomainInfo, domain_id), &self.domain_id.to_le_bytes());
        put(&mut o, offset_of!(DomainInfo, priority), &self.priority.to_le_bytes());
        put(&mut o, offset_of!(DomainInfo, memory_bytes), &self.memory_bytes.to_le_bytes());
        put(&mut o, offset_of!(DomainInfo, cpu_ticks), &self.cpu_ticks.to_le_bytes());
        put(&mut o, offset_of!(DomainInfo, exits), &self.exits.to_le_bytes());
        put(&mut o, offset_of!(DomainInfo, name), &self.name);
        put(&mut o, offset_of!(DomainInfo, label), &self.label);
        o
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        DomainInfo {
            domain_id: u32::from_le_bytes(get(b, offset_of!(DomainInfo, domain_id))),
            priority: u32::from_le_bytes(get(b, offset_of!(DomainInfo, priority))),
            memory_bytes: u64::from_le_bytes(get(b, offset_of!(DomainInfo, memory_bytes))),
            cpu_ticks: u64::from_le_bytes(get(b, offset_of!(DomainInfo, cpu_ticks))),
            exits: u64::from_le_bytes(get(b, offset_of!(DomainInfo, exits))),
            name: get(b, offset_of!(DomainInfo, name)),
            label: get(b, offset_of!(DomainInfo, label)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StartInfo {
        StartInfo {
            magic: START_INFO_MAGIC,
            abi_version: crate::ABI_VERSION.encode(),
            domain_id: 3,
            memory_bytes: 4 << 20,
            start_info_gpa: 0x5000,
            image_start: 0x20_0000,
            image_end: 0x21_3000,
            stack_bottom: 0x8000,
            stack_top: 0x10000,
            heap_start: 0x21_3000,
            heap_end: 0x40_0000,
            priority: 7,
            console: 1,
            name: to_fixed("printer"),
            label: to_fixed("guest_t"),
            args: to_fixed("lines=5"),
        }
    }

    #[test]
    fn layouts_have_no_padding() {
        // Every byte of the page is a field byte: the hypervisor's serialisation and the guest's
        // `#[repr(C)]` view agree only if nothing is left to the compiler.
        assert_eq!(StartInfo::SIZE, 9 * 8 + 4 * 4 + 2 * NAME_LEN + ARGS_LEN);
        assert_eq!(DomainInfo::SIZE, 2 * 4 + 3 * 8 + 2 * NAME_LEN);
        const { assert!(StartInfo::SIZE <= 4096) };
    }

    #[test]
    fn start_info_round_trips_and_is_little_endian() {
        let s = sample();
        let b = s.to_bytes();
        assert_eq!(StartInfo::from_bytes(&b), s);
        assert_eq!(&b[0..8], b"WRDNSTRT");
        assert_eq!(b[offset_of!(StartInfo, domain_id)], 3);
        assert_eq!((s.name(), s.label(), s.args()), ("printer", "guest_t", "lines=5"));
    }

    #[test]
    fn domain_info_round_trips() {
        let d = DomainInfo {
            domain_id: 9,
            priority: 2,
            memory_bytes: 8 << 20,
            cpu_ticks: 77,
            exits: 1234,
            name: to_fixed("a"),
            label: to_fixed("b"),
        };
        assert_eq!(DomainInfo::from_bytes(&d.to_bytes()), d);
    }

    #[test]
    fn fixed_fields_truncate_and_stop_at_nul() {
        let f: [u8; 4] = to_fixed("abcdef");
        assert_eq!(&f, b"abcd");
        assert_eq!(fixed_str(&f), "abcd");
        assert_eq!(fixed_str(b"ab\0cd"), "ab");
        assert_eq!(fixed_str(&[0xff, 0]), "");
    }
}
