//! The Multiboot2 boot information: command line, modules, memory maps (basic and EFI), ACPI
//! RSDP copies and the EFI handover tags, validated once into the same [`BootInfo`] as v1.
//!
//! GRUB on a UEFI machine hands this structure over. Every tag is bounded by the structure's
//! total size, every length is checked before it is read, and the walk always advances (a tag is
//! at least 8 bytes), so a lying or truncated structure ends in a typed error, never a loop.

use crate::mem::PhysMem;
use crate::multiboot::{BootInfo, MAX_MODULES, MAX_STRING, Module, Region, RegionKind};
use heapless::{String, Vec};

/// The value in EAX when a Multiboot2 loader enters the kernel.
pub const BOOTLOADER_MAGIC: u32 = 0x36d7_6289;

/// The largest boot information accepted, in bytes (GRUB's is a few KiB with an EFI map).
pub const MAX_TOTAL_SIZE: u32 = 64 * 1024;
/// Bytes of an ACPI 2.0+ RSDP copy (the v1 copy is the first 20).
pub const RSDP_V2_LEN: usize = 36;
const RSDP_V1_LEN: usize = 20;

const TAG_END: u32 = 0;
const TAG_CMDLINE: u32 = 1;
const TAG_MODULE: u32 = 3;
const TAG_MMAP: u32 = 6;
const TAG_EFI64: u32 = 12;
const TAG_ACPI_OLD: u32 = 14;
const TAG_ACPI_NEW: u32 = 15;
const TAG_EFI_MMAP: u32 = 17;
const TAG_EFI_BS: u32 = 18;
const TAG_EFI64_IH: u32 = 20;

/// The smallest EFI memory descriptor (UEFI 2.x `EFI_MEMORY_DESCRIPTOR`).
const EFI_DESC_MIN: u32 = 40;
/// The smallest basic memory-map entry.
const MMAP_ENTRY_MIN: u32 = 24;

/// What can be wrong with the Multiboot2 boot information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Multiboot2Error {
    /// EAX did not hold the Multiboot2 magic.
    BadMagic(u32),
    /// The structure is not 8-byte aligned, as the specification requires.
    Misaligned(u64),
    /// The structure (or what a tag points to) lies beyond addressable memory.
    OutOfRange { what: &'static str, addr: u64 },
    /// The total size is smaller than a header and an end tag, not a multiple of 8, or too big.
    BadTotalSize(u32),
    /// A tag is shorter than its header or runs past the total size.
    BadTag { offset: u32, kind: u32 },
    /// A tag's body is too short or inconsistent for its type.
    BadTagBody { offset: u32, kind: u32 },
    /// The structure has no end tag within its total size.
    NoEndTag,
    /// Neither a basic nor an EFI memory map was given.
    NoMemoryMap,
    /// More of something than this kernel keeps.
    TooMany { what: &'static str },
    /// A module ends before it starts.
    BadModule { index: usize },
    /// A string has no NUL within its tag or is longer than the limit.
    UnterminatedString { what: &'static str },
    /// A string is not UTF-8.
    NotUtf8 { what: &'static str },
    /// A tag that may appear once appeared twice.
    Duplicate { kind: u32 },
}

impl core::fmt::Display for Multiboot2Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic(m) => write!(f, "not started by a Multiboot2 loader (magic {m:#x})"),
            Self::Misaligned(a) => {
                write!(f, "the boot information at {a:#x} is not 8-byte aligned")
            }
            Self::OutOfRange { what, addr } => {
                write!(f, "{what} at {addr:#x} is beyond addressable memory")
            }
            Self::BadTotalSize(n) => {
                write!(f, "the boot information's total size {n} is impossible")
            }
            Self::BadTag { offset, kind } => {
                write!(f, "tag {kind} at offset {offset} has a bad size")
            }
            Self::BadTagBody { offset, kind } => {
                write!(f, "tag {kind} at offset {offset} is malformed")
            }
            Self::NoEndTag => f.write_str("the boot information has no end tag"),
            Self::NoMemoryMap => f.write_str("the boot loader gave no memory map"),
            Self::TooMany { what } => write!(f, "too many {what}"),
            Self::BadModule { index } => write!(f, "module {index} ends before it starts"),
            Self::UnterminatedString { what } => {
                write!(
                    f,
                    "{what} is not NUL-terminated within its tag and {MAX_STRING} bytes"
                )
            }
            Self::NotUtf8 { what } => write!(f, "{what} is not UTF-8"),
            Self::Duplicate { kind } => write!(f, "tag {kind} appears twice"),
        }
    }
}

/// The EFI memory map the loader copied: where it is and how to walk it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EfiMemoryMap {
    /// Physical address of the first descriptor.
    pub addr: u64,
    /// Bytes of descriptors (a multiple of `desc_size`).
    pub len: u64,
    /// Bytes per descriptor (at least 40).
    pub desc_size: u32,
    /// The descriptor version the firmware reported.
    pub desc_version: u32,
}

/// What a UEFI loader said about the firmware, beside the v1-shaped [`BootInfo`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firmware {
    /// The RSDP copy (v2 preferred over v1), not yet validated: [`crate::acpi::Rsdp::parse`] does.
    pub rsdp: Option<Vec<u8, RSDP_V2_LEN>>,
    /// The 64-bit EFI system table's address.
    pub efi64_system_table: Option<u64>,
    /// The 64-bit EFI image handle (given when boot services are kept).
    pub efi64_image_handle: Option<u64>,
    /// Whether the loader left EFI boot services running.
    pub boot_services_kept: bool,
    /// The EFI memory map, when given.
    pub efi_mmap: Option<EfiMemoryMap>,
}

/// The validated Multiboot2 information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// What both Multiboot versions give: memory map, modules, command line, occupied ranges.
    pub boot: BootInfo,
    /// What only a Multiboot2 (UEFI) loader gives.
    pub firmware: Firmware,
}

/// Reads a NUL-terminated string from `addr` with at most `room` bytes available.
fn tag_string(
    mem: &impl PhysMem,
    what: &'static str,
    addr: u64,
    room: u64,
) -> Result<String<MAX_STRING>, Multiboot2Error> {
    let mut bytes = [0u8; MAX_STRING];
    let n = room.min(MAX_STRING as u64) as usize;
    mem.read(addr, &mut bytes[..n]);
    let len = bytes[..n]
        .iter()
        .position(|&b| b == 0)
        .ok_or(Multiboot2Error::UnterminatedString { what })?;
    let s = core::str::from_utf8(&bytes[..len]).map_err(|_| Multiboot2Error::NotUtf8 { what })?;
    let mut out = String::new();
    // Cannot fail: `len < MAX_STRING`.
    let _ = out.push_str(s);
    Ok(out)
}

fn efi_kind(efi_type: u32) -> RegionKind {
    // UEFI memory types: 7 conventional, 8 unusable, 9 ACPI reclaim, 10 ACPI NVS. Loader and
    // boot-services memory is not counted as free: with boot services kept it is still in use.
    match efi_type {
        7 => RegionKind::Available,
        8 => RegionKind::Bad,
        9 => RegionKind::AcpiReclaimable,
        10 => RegionKind::AcpiNvs,
        other => RegionKind::Reserved(other),
    }
}

/// Adds the regions of an EFI memory map (`map.len` bytes of `map.desc_size`-byte descriptors at
/// `map.addr`) to `out.regions`. Once boot services are exited (`exited`), loader and
/// boot-services memory (EFI types 1-4) is free as well; before, it is still the firmware's.
pub fn add_efi_regions(
    mem: &impl PhysMem,
    map: EfiMemoryMap,
    exited: bool,
    out: &mut BootInfo,
) -> Result<(), Multiboot2Error> {
    let bad = Multiboot2Error::BadTagBody { offset: 0, kind: TAG_EFI_MMAP };
    if map.desc_size < EFI_DESC_MIN || map.len % u64::from(map.desc_size) != 0 {
        return Err(bad);
    }
    let mut d = map.addr;
    while d < map.addr + map.len {
        let pages = mem.read_u64(d + 24);
        let len = pages.checked_mul(4096).ok_or(bad)?;
        let kind = match mem.read_u32(d) {
            1..=4 if exited => RegionKind::Available,
            t => efi_kind(t),
        };
        let start = mem.read_u64(d + 8);
        // Firmware maps are long (OVMF's has over 100 descriptors) and sorted: neighbours of
        // one kind are merged, so the map fits the regions this kernel keeps.
        match out.regions.last_mut() {
            Some(last) if last.kind == kind && last.end() == start => last.len = last.len.saturating_add(len),
            _ => push_region(out, Region { start, len, kind })?,
        }
        d += u64::from(map.desc_size);
    }
    Ok(())
}

fn push_region(out: &mut BootInfo, r: Region) -> Result<(), Multiboot2Error> {
    out.regions.push(r).map_err(|_| Multiboot2Error::TooMany {
        what: "memory map entries",
    })
}

/// Parses and validates the structure at `info` given the loader's `magic`. Nothing at or
/// beyond `limit` is read.
pub fn parse(
    mem: &impl PhysMem,
    magic: u32,
    info: u64,
    limit: u64,
) -> Result<Info, Multiboot2Error> {
    if magic != BOOTLOADER_MAGIC {
        return Err(Multiboot2Error::BadMagic(magic));
    }
    if info % 8 != 0 {
        return Err(Multiboot2Error::Misaligned(info));
    }
    let in_range = |what, addr: u64, len: u64| match addr.checked_add(len) {
        Some(end) if end <= limit => Ok(()),
        _ => Err(Multiboot2Error::OutOfRange { what, addr }),
    };
    in_range("the boot information", info, 8)?;
    let total = mem.read_u32(info);
    if total < 16 || total % 8 != 0 || total > MAX_TOTAL_SIZE {
        return Err(Multiboot2Error::BadTotalSize(total));
    }
    in_range("the boot information", info, u64::from(total))?;

    let mut boot = BootInfo {
        regions: Vec::new(),
        modules: Vec::new(),
        cmdline: String::new(),
        occupied: Vec::new(),
    };
    let _ = boot.occupied.push((info, info + u64::from(total)));
    let mut fw = Firmware::default();
    let mut efi_regions: Option<EfiMemoryMap> = None;
    let mut seen_mmap = false;
    let mut seen_cmdline = false;
    let mut ended = false;

    let mut off: u32 = 8;
    while total - off >= 8 {
        let at = info + u64::from(off);
        let kind = mem.read_u32(at);
        let size = mem.read_u32(at + 4);
        if size < 8 || size > total - off {
            return Err(Multiboot2Error::BadTag { offset: off, kind });
        }
        let body = at + 8;
        let body_len = u64::from(size - 8);
        let bad_body = Multiboot2Error::BadTagBody { offset: off, kind };
        match kind {
            TAG_END => {
                if size != 8 {
                    return Err(bad_body);
                }
                ended = true;
                break;
            }
            TAG_CMDLINE => {
                if seen_cmdline {
                    return Err(Multiboot2Error::Duplicate { kind });
                }
                seen_cmdline = true;
                boot.cmdline = tag_string(mem, "the command line", body, body_len)?;
            }
            TAG_MODULE => {
                if body_len < 8 {
                    return Err(bad_body);
                }
                let index = boot.modules.len();
                if index == MAX_MODULES {
                    return Err(Multiboot2Error::TooMany { what: "modules" });
                }
                let start = u64::from(mem.read_u32(body));
                let end = u64::from(mem.read_u32(body + 4));
                if end < start {
                    return Err(Multiboot2Error::BadModule { index });
                }
                in_range("a module", start, end - start)?;
                let string = tag_string(mem, "a module string", body + 8, body_len - 8)?;
                let _ = boot.modules.push(Module { start, end, string });
            }
            TAG_MMAP => {
                if seen_mmap {
                    return Err(Multiboot2Error::Duplicate { kind });
                }
                seen_mmap = true;
                if body_len < 8 {
                    return Err(bad_body);
                }
                let entry = mem.read_u32(body);
                if entry < MMAP_ENTRY_MIN
                    || entry % 8 != 0
                    || (body_len - 8) % u64::from(entry) != 0
                {
                    return Err(bad_body);
                }
                let mut e = body + 8;
                while e < body + body_len {
                    let start = mem.read_u64(e);
                    let len = mem.read_u64(e + 8);
                    let kind = match mem.read_u32(e + 16) {
                        1 => RegionKind::Available,
                        3 => RegionKind::AcpiReclaimable,
                        4 => RegionKind::AcpiNvs,
                        5 => RegionKind::Bad,
                        other => RegionKind::Reserved(other),
                    };
                    push_region(&mut boot, Region { start, len, kind })?;
                    e += u64::from(entry);
                }
            }
            TAG_EFI64 | TAG_EFI64_IH => {
                if body_len < 8 {
                    return Err(bad_body);
                }
                let slot = if kind == TAG_EFI64 {
                    &mut fw.efi64_system_table
                } else {
                    &mut fw.efi64_image_handle
                };
                if slot.replace(mem.read_u64(body)).is_some() {
                    return Err(Multiboot2Error::Duplicate { kind });
                }
            }
            TAG_ACPI_OLD | TAG_ACPI_NEW => {
                let want = if kind == TAG_ACPI_NEW {
                    RSDP_V2_LEN
                } else {
                    RSDP_V1_LEN
                };
                if body_len < want as u64 {
                    return Err(bad_body);
                }
                // A v2 copy wins over a v1 copy, whatever the order.
                let is_v2 = fw.rsdp.as_ref().is_some_and(|r| r.len() == RSDP_V2_LEN);
                if want == RSDP_V2_LEN || !is_v2 {
                    let mut bytes = [0u8; RSDP_V2_LEN];
                    mem.read(body, &mut bytes[..want]);
                    // Cannot fail: `want <= RSDP_V2_LEN`.
                    fw.rsdp = Vec::from_slice(&bytes[..want]).ok();
                }
            }
            TAG_EFI_MMAP => {
                if efi_regions.is_some() {
                    return Err(Multiboot2Error::Duplicate { kind });
                }
                if body_len < 8 {
                    return Err(bad_body);
                }
                let desc_size = mem.read_u32(body);
                let desc_version = mem.read_u32(body + 4);
                let len = body_len - 8;
                if desc_size < EFI_DESC_MIN || desc_size % 8 != 0 || len % u64::from(desc_size) != 0
                {
                    return Err(bad_body);
                }
                efi_regions = Some(EfiMemoryMap {
                    addr: body + 8,
                    len,
                    desc_size,
                    desc_version,
                });
            }
            TAG_EFI_BS => fw.boot_services_kept = true,
            // Boot loader name, framebuffer, ELF sections, SMBIOS, network, load base...: unused.
            _ => {}
        }
        // Stays within `total`: `off` and `total` are multiples of 8 and `size <= total - off`.
        off += size.next_multiple_of(8);
    }
    if !ended {
        return Err(Multiboot2Error::NoEndTag);
    }

    if let Some(map) = efi_regions {
        fw.efi_mmap = Some(map);
        if !seen_mmap {
            // Only when the loader gave no basic map: GRUB derives that one from this one.
            add_efi_regions(mem, map, !fw.boot_services_kept, &mut boot)?;
        }
    } else if !seen_mmap && !fw.boot_services_kept {
        return Err(Multiboot2Error::NoMemoryMap);
    }
    // With boot services kept, GRUB gives no memory map at all (it would change under the
    // firmware): the kernel reads it with GetMemoryMap before ExitBootServices and adds it
    // with [`add_efi_regions`]; until then `boot.regions` is empty.
    Ok(Info { boot, firmware: fw })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::FakeMem;
    use std::vec::Vec as StdVec;

    const INFO: u64 = 0x1000;
    const LIMIT: u64 = 0x10000;

    /// Builds a boot information structure tag by tag, as GRUB lays it out.
    struct Builder {
        bytes: StdVec<u8>,
    }

    impl Builder {
        fn new() -> Self {
            Self {
                bytes: std::vec![0; 8],
            }
        }
        fn tag(mut self, kind: u32, body: &[u8]) -> Self {
            self.bytes.extend_from_slice(&kind.to_le_bytes());
            self.bytes
                .extend_from_slice(&(8 + body.len() as u32).to_le_bytes());
            self.bytes.extend_from_slice(body);
            while self.bytes.len() % 8 != 0 {
                self.bytes.push(0);
            }
            self
        }
        fn finish(self) -> StdVec<u8> {
            let mut b = self.tag(TAG_END, &[]).bytes;
            let total = b.len() as u32;
            b[..4].copy_from_slice(&total.to_le_bytes());
            b
        }
    }

    fn cat(parts: &[&[u8]]) -> StdVec<u8> {
        parts.concat()
    }

    fn rsdp_v2() -> [u8; RSDP_V2_LEN] {
        let mut r = [0u8; RSDP_V2_LEN];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[15] = 2;
        r
    }

    /// What GRUB EFI gives with boot services kept: every tag this parser reads.
    fn good_bytes() -> StdVec<u8> {
        let mmap = cat(&[
            &24u32.to_le_bytes(),
            &0u32.to_le_bytes(),
            &0u64.to_le_bytes(),
            &0x9f000u64.to_le_bytes(),
            &1u32.to_le_bytes(),
            &0u32.to_le_bytes(),
            &0x100000u64.to_le_bytes(),
            &0x7f00000u64.to_le_bytes(),
            &1u32.to_le_bytes(),
            &0u32.to_le_bytes(),
            &0x7fe0000u64.to_le_bytes(),
            &0x20000u64.to_le_bytes(),
            &3u32.to_le_bytes(),
            &0u32.to_le_bytes(),
        ]);
        let efi_desc = cat(&[
            &7u32.to_le_bytes(),
            &0u32.to_le_bytes(),
            &0x100000u64.to_le_bytes(),
            &0u64.to_le_bytes(),
            &0x7f00u64.to_le_bytes(),
            &0xfu64.to_le_bytes(),
            &[0u8; 8],
        ]);
        let efi_mmap = cat(&[&48u32.to_le_bytes(), &1u32.to_le_bytes(), &efi_desc]);
        Builder::new()
            .tag(TAG_CMDLINE, b"/warden console=serial\0")
            .tag(2, b"GRUB 2.06\0")
            .tag(
                TAG_MODULE,
                &cat(&[
                    &0x8000u32.to_le_bytes(),
                    &0x8100u32.to_le_bytes(),
                    b"/m kind=manifest\0",
                ]),
            )
            .tag(
                TAG_MODULE,
                &cat(&[
                    &0x9000u32.to_le_bytes(),
                    &0x9000u32.to_le_bytes(),
                    b"/h kind=image name=hello\0",
                ]),
            )
            .tag(TAG_MMAP, &mmap)
            .tag(TAG_EFI64, &0x7f9e018u64.to_le_bytes())
            .tag(TAG_ACPI_OLD, &rsdp_v2()[..20])
            .tag(TAG_ACPI_NEW, &rsdp_v2())
            .tag(TAG_EFI_MMAP, &efi_mmap)
            .tag(TAG_EFI_BS, &[])
            .tag(TAG_EFI64_IH, &0x7e00000u64.to_le_bytes())
            .finish()
    }

    fn mem_with(bytes: &[u8]) -> FakeMem {
        let mut m = FakeMem::new(LIMIT as usize);
        m.write(INFO, bytes);
        m
    }

    #[test]
    fn parses_what_grub_efi_gives() {
        let bytes = good_bytes();
        let info = parse(&mem_with(&bytes), BOOTLOADER_MAGIC, INFO, LIMIT).unwrap();
        assert_eq!(info.boot.cmdline.as_str(), "/warden console=serial");
        assert_eq!(info.boot.modules.len(), 2);
        assert_eq!(
            (info.boot.modules[0].start, info.boot.modules[0].end),
            (0x8000, 0x8100)
        );
        assert_eq!(info.boot.modules[1].arg("name"), Some("hello"));
        assert_eq!(info.boot.regions.len(), 3);
        assert_eq!(
            info.boot.regions[2],
            Region {
                start: 0x7fe0000,
                len: 0x20000,
                kind: RegionKind::AcpiReclaimable
            }
        );
        assert_eq!(
            info.boot.occupied.as_slice(),
            &[(INFO, INFO + bytes.len() as u64)]
        );
        let fw = &info.firmware;
        assert_eq!(fw.rsdp.as_deref(), Some(&rsdp_v2()[..]));
        assert_eq!(fw.efi64_system_table, Some(0x7f9e018));
        assert_eq!(fw.efi64_image_handle, Some(0x7e00000));
        assert!(fw.boot_services_kept);
        let map = fw.efi_mmap.unwrap();
        assert_eq!((map.len, map.desc_size, map.desc_version), (48, 48, 1));
    }

    #[test]
    fn an_efi_map_alone_gives_the_regions() {
        let efi_desc = |kind: u32, start: u64, pages: u64| {
            cat(&[
                &kind.to_le_bytes(),
                &[0; 4],
                &start.to_le_bytes(),
                &[0; 8],
                &pages.to_le_bytes(),
                &[0; 8],
            ])
        };
        let body = cat(&[
            &40u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &efi_desc(7, 0x100000, 16),
            &efi_desc(4, 0x200000, 1),
            &efi_desc(9, 0x300000, 2),
        ]);
        let bytes = Builder::new().tag(TAG_EFI_MMAP, &body).finish();
        let info = parse(&mem_with(&bytes), BOOTLOADER_MAGIC, INFO, LIMIT).unwrap();
        assert_eq!(
            info.boot.regions.as_slice(),
            &[
                Region {
                    start: 0x100000,
                    len: 0x10000,
                    kind: RegionKind::Available
                },
                Region {
                    start: 0x200000,
                    len: 0x1000,
                    kind: RegionKind::Available // boot-services data: free, the loader exited boot services
                },
                Region {
                    start: 0x300000,
                    len: 0x2000,
                    kind: RegionKind::AcpiReclaimable
                },
            ]
        );
        assert!(!info.firmware.boot_services_kept);
        assert_eq!(info.firmware.rsdp, None);
    }

    /// With boot services kept GRUB gives no memory map: the kernel adds the one it reads,
    /// where loader and boot-services memory is free once boot services are exited.
    #[test]
    fn boot_services_kept_without_a_map_waits_for_the_kernels_map() {
        let bytes = Builder::new().tag(TAG_EFI_BS, &[]).tag(TAG_EFI64, &0x1000u64.to_le_bytes()).finish();
        let mut info = parse(&mem_with(&bytes), BOOTLOADER_MAGIC, INFO, LIMIT).unwrap();
        assert!(info.boot.regions.is_empty());
        let desc = |kind: u32, start: u64, pages: u64| {
            cat(&[&kind.to_le_bytes(), &[0; 4], &start.to_le_bytes(), &[0; 8], &pages.to_le_bytes(), &[0; 8]])
        };
        let map_bytes = cat(&[&desc(4, 0x100000, 1), &desc(9, 0x200000, 1), &desc(7, 0x300000, 2), &desc(3, 0x302000, 1)]);
        let mut m = FakeMem::new(LIMIT as usize);
        m.write(0x8000, &map_bytes);
        let map = EfiMemoryMap { addr: 0x8000, len: map_bytes.len() as u64, desc_size: 40, desc_version: 1 };
        add_efi_regions(&m, map, true, &mut info.boot).unwrap();
        let kinds: StdVec<RegionKind> = info.boot.regions.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [RegionKind::Available, RegionKind::AcpiReclaimable, RegionKind::Available]);
        // Conventional memory and the boot-services code right after it are merged.
        assert_eq!(info.boot.regions[2], Region { start: 0x300000, len: 0x3000, kind: RegionKind::Available });
        let mut before = info.boot.clone();
        before.regions.clear();
        add_efi_regions(&m, map, false, &mut before).unwrap();
        assert_eq!(before.regions[0].kind, RegionKind::Reserved(4));
        assert!(add_efi_regions(&m, EfiMemoryMap { desc_size: 16, ..map }, true, &mut before).is_err());
        assert!(add_efi_regions(&m, EfiMemoryMap { len: 41, ..map }, true, &mut before).is_err());
    }

    /// Each malformation, applied to a small good structure, gives its own error.
    #[test]
    fn malformed_input_gives_typed_errors() {
        let mmap = cat(&[
            &24u32.to_le_bytes(),
            &0u32.to_le_bytes(),
            &0u64.to_le_bytes(),
            &0x1000u64.to_le_bytes(),
            &1u32.to_le_bytes(),
            &[0; 4],
        ]);
        let module = |s: u32, e: u32, name: &[u8]| cat(&[&s.to_le_bytes(), &e.to_le_bytes(), name]);
        type Case = (&'static str, StdVec<u8>, Multiboot2Error);
        let cases: StdVec<Case> = std::vec![
            (
                "no memory map",
                Builder::new().tag(TAG_CMDLINE, b"x\0").finish(),
                Multiboot2Error::NoMemoryMap
            ),
            (
                "unterminated cmdline",
                Builder::new()
                    .tag(TAG_MMAP, &mmap)
                    .tag(TAG_CMDLINE, b"abc")
                    .finish(),
                Multiboot2Error::UnterminatedString {
                    what: "the command line"
                }
            ),
            (
                "cmdline not utf8",
                Builder::new()
                    .tag(TAG_MMAP, &mmap)
                    .tag(TAG_CMDLINE, &[0xff, 0])
                    .finish(),
                Multiboot2Error::NotUtf8 {
                    what: "the command line"
                }
            ),
            (
                "two cmdlines",
                Builder::new()
                    .tag(TAG_MMAP, &mmap)
                    .tag(TAG_CMDLINE, b"a\0")
                    .tag(TAG_CMDLINE, b"b\0")
                    .finish(),
                Multiboot2Error::Duplicate { kind: TAG_CMDLINE }
            ),
            (
                "two mmaps",
                Builder::new()
                    .tag(TAG_MMAP, &mmap)
                    .tag(TAG_MMAP, &mmap)
                    .finish(),
                Multiboot2Error::Duplicate { kind: TAG_MMAP }
            ),
            (
                "module backwards",
                Builder::new()
                    .tag(TAG_MMAP, &mmap)
                    .tag(TAG_MODULE, &module(0x9000, 0x8000, b"m\0"))
                    .finish(),
                Multiboot2Error::BadModule { index: 0 }
            ),
            (
                "module beyond limit",
                Builder::new()
                    .tag(TAG_MMAP, &mmap)
                    .tag(TAG_MODULE, &module(0x9000, 0x20000, b"m\0"))
                    .finish(),
                Multiboot2Error::OutOfRange {
                    what: "a module",
                    addr: 0x9000
                }
            ),
            (
                "module tag too short",
                Builder::new()
                    .tag(TAG_MMAP, &mmap)
                    .tag(TAG_MODULE, &[0; 4])
                    .finish(),
                Multiboot2Error::BadTagBody {
                    offset: 48,
                    kind: TAG_MODULE
                }
            ),
            (
                "mmap entry size 8",
                Builder::new()
                    .tag(TAG_MMAP, &cat(&[&8u32.to_le_bytes(), &[0; 12]]))
                    .finish(),
                Multiboot2Error::BadTagBody {
                    offset: 8,
                    kind: TAG_MMAP
                }
            ),
            (
                "mmap not whole entries",
                Builder::new().tag(TAG_MMAP, &mmap[..28]).finish(),
                Multiboot2Error::BadTagBody {
                    offset: 8,
                    kind: TAG_MMAP
                }
            ),
            (
                "efi desc size 16",
                Builder::new()
                    .tag(TAG_EFI_MMAP, &cat(&[&16u32.to_le_bytes(), &[0; 20]]))
                    .finish(),
                Multiboot2Error::BadTagBody {
                    offset: 8,
                    kind: TAG_EFI_MMAP
                }
            ),
            (
                "short rsdp v2",
                Builder::new()
                    .tag(TAG_MMAP, &mmap)
                    .tag(TAG_ACPI_NEW, &rsdp_v2()[..20])
                    .finish(),
                Multiboot2Error::BadTagBody {
                    offset: 48,
                    kind: TAG_ACPI_NEW
                }
            ),
            (
                "short efi64",
                Builder::new()
                    .tag(TAG_MMAP, &mmap)
                    .tag(TAG_EFI64, &[0; 4])
                    .finish(),
                Multiboot2Error::BadTagBody {
                    offset: 48,
                    kind: TAG_EFI64
                }
            ),
            (
                "end tag of size 16",
                Builder::new()
                    .tag(TAG_MMAP, &mmap)
                    .tag(TAG_END, &[0; 8])
                    .finish(),
                Multiboot2Error::BadTagBody {
                    offset: 48,
                    kind: TAG_END
                }
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(
                parse(&mem_with(&bytes), BOOTLOADER_MAGIC, INFO, LIMIT),
                Err(want),
                "case {name}"
            );
        }
        let good = good_bytes();
        let m = mem_with(&good);
        assert_eq!(
            parse(&m, 0x2bad_b002, INFO, LIMIT),
            Err(Multiboot2Error::BadMagic(0x2bad_b002))
        );
        assert_eq!(
            parse(&m, BOOTLOADER_MAGIC, INFO + 4, LIMIT),
            Err(Multiboot2Error::Misaligned(INFO + 4))
        );
        assert_eq!(
            parse(&m, BOOTLOADER_MAGIC, LIMIT, LIMIT),
            Err(Multiboot2Error::OutOfRange {
                what: "the boot information",
                addr: LIMIT
            })
        );
        // A tag whose size runs past the total, and a total size beyond memory.
        let mut lying = good.clone();
        lying[12..16].copy_from_slice(&0x1000u32.to_le_bytes());
        assert_eq!(
            parse(&mem_with(&lying), BOOTLOADER_MAGIC, INFO, LIMIT),
            Err(Multiboot2Error::BadTag {
                offset: 8,
                kind: TAG_CMDLINE
            })
        );
        let mut big = good.clone();
        big[..4].copy_from_slice(&0xf008u32.to_le_bytes());
        assert_eq!(
            parse(&mem_with(&big), BOOTLOADER_MAGIC, INFO, LIMIT),
            Err(Multiboot2Error::OutOfRange {
                what: "the boot information",
                addr: INFO
            })
        );
        let mut tag_size_4 = good;
        tag_size_4[12..16].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(
            parse(&mem_with(&tag_size_4), BOOTLOADER_MAGIC, INFO, LIMIT),
            Err(Multiboot2Error::BadTag {
                offset: 8,
                kind: TAG_CMDLINE
            })
        );
    }

    /// Every prefix of the good structure, cut either by its total size or by the end of
    /// memory, is an error (the end tag is the last 8 bytes, so no prefix is complete).
    #[test]
    fn every_prefix_is_an_error() {
        let good = good_bytes();
        for cut in 0..good.len() {
            let mut short = good.clone();
            short[..4].copy_from_slice(&(cut as u32).to_le_bytes());
            assert!(
                parse(&mem_with(&short), BOOTLOADER_MAGIC, INFO, LIMIT).is_err(),
                "total size {cut}"
            );
            let mut m = FakeMem::new(INFO as usize + cut);
            m.write(INFO, &good[..cut]);
            assert!(
                parse(&m, BOOTLOADER_MAGIC, INFO, INFO + cut as u64).is_err(),
                "memory ends after {cut}"
            );
        }
    }

    /// Seeded random bit flips never panic; and random flips in the tag headers mostly err.
    #[test]
    fn random_bit_flips_never_panic() {
        let good = good_bytes();
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15u64);
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..1 + next() % 4 {
                let bit = (next() % (bytes.len() as u64 * 8)) as usize;
                bytes[bit / 8] ^= 1 << (bit % 8);
            }
            let _ = parse(&mem_with(&bytes), BOOTLOADER_MAGIC, INFO, LIMIT);
        }
    }
}
