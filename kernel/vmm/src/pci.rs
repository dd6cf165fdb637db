//! PCI functions assigned to a domain: the manifest's device address, probing a function's
//! BARs through a config-space trait, and the filter every config access of the owning domain
//! passes (BARs and expansion ROM emulated, command register masked, header otherwise
//! read-only, capabilities passed through).

use core::fmt;

/// Command register bits a domain may set: memory decode, bus mastering (DMA), INTx disable.
/// I/O decode stays off: the domain owns no ports.
pub const COMMAND_ALLOWED: u32 = 1 << 1 | 1 << 2 | 1 << 10;
const COMMAND_MEMORY: u32 = 1 << 1;
/// Offsets of the header registers the filter treats specially.
const REG_COMMAND: u8 = 0x04;
const REG_HEADER: u8 = 0x0c;
const REG_BAR0: u8 = 0x10;
const REG_ROM: u8 = 0x30;
/// Config space reachable through the legacy mechanism.
pub const CONFIG_BYTES: u32 = 256;
/// Smallest BAR that can be mapped without exposing a neighbour: one page.
const PAGE: u64 = 4096;

/// A PCI function address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bdf {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Bdf {
    /// Parses `BB:DD.F` (hex, as `lspci` and QEMU print it).
    pub fn parse(s: &str) -> Option<Bdf> {
        let (bus, rest) = s.split_once(':')?;
        let (device, function) = rest.split_once('.')?;
        let hex = |t: &str, max: u8| {
            (!t.is_empty() && t.len() <= 2)
                .then(|| u8::from_str_radix(t, 16).ok())
                .flatten()
                .filter(|v| *v <= max)
        };
        Some(Bdf {
            bus: hex(bus, 0xff)?,
            device: hex(device, 31)?,
            function: hex(function, 7)?,
        })
    }

    /// `bus << 8 | device << 3 | function`.
    pub fn packed(self) -> u16 {
        u16::from(self.bus) << 8 | u16::from(self.device) << 3 | u16::from(self.function)
    }

    /// The 0xCF8 address of register `offset` (configuration mechanism #1).
    pub fn cf8(self, offset: u8) -> u32 {
        1 << 31 | u32::from(self.packed()) << 8 | u32::from(offset & 0xfc)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{:x}",
            self.bus, self.device, self.function
        )
    }
}

/// Dword access to configuration space (the hypervisor: ports 0xCF8/0xCFC; tests: a fake).
pub trait ConfigSpace {
    fn read(&mut self, bdf: Bdf, offset: u8) -> u32;
    fn write(&mut self, bdf: Bdf, offset: u8, value: u32);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    Memory32,
    /// Occupies this slot and the next.
    Memory64,
    Io,
}

/// One implemented BAR as firmware assigned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    pub kind: BarKind,
    pub base: u64,
    pub size: u64,
    /// The low 4 bits of the register (type, prefetchable) for memory BARs; 2 for I/O.
    flags: u32,
}

impl Bar {
    /// Whether this BAR can be given to a domain: memory, at least a page, page-aligned, below
    /// 4 GiB (domains identity-map only the low 4 GiB) and assigned by firmware.
    pub fn mappable(&self) -> bool {
        self.kind != BarKind::Io
            && self.base != 0
            && self.size >= PAGE
            && self.base % PAGE == 0
            && self
                .base
                .checked_add(self.size)
                .is_some_and(|end| end <= 1 << 32)
    }
}

/// Why a function cannot be assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// No function answers at this address.
    Absent,
    /// Not a type-0 (endpoint) header: bridges are never assigned.
    NotEndpoint(u8),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Absent => f.write_str("no PCI function at this address"),
            ProbeError::NotEndpoint(t) => write!(f, "header type {t:#x} is not an endpoint"),
        }
    }
}

/// A probed function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    /// `bars[i]` describes the BAR whose register is at `0x10 + 4 * i`; the upper half of a
    /// 64-bit BAR is `None`.
    pub bars: [Option<Bar>; 6],
}

/// Probes `bdf`: ids, header type and every BAR's base and size. Decoding is switched off
/// while the BARs are sized and restored afterwards (nothing else has touched the device).
pub fn probe(cs: &mut impl ConfigSpace, bdf: Bdf) -> Result<Device, ProbeError> {
    let id = cs.read(bdf, 0);
    if id & 0xffff == 0xffff {
        return Err(ProbeError::Absent);
    }
    let header = (cs.read(bdf, REG_HEADER) >> 16) as u8 & 0x7f;
    if header != 0 {
        return Err(ProbeError::NotEndpoint(header));
    }
    let command = cs.read(bdf, REG_COMMAND);
    cs.write(bdf, REG_COMMAND, command & !0x3 & 0xffff);
    let mut bars = [None; 6];
    let mut i = 0;
    while i < 6 {
        let reg = REG_BAR0 + 4 * i as u8;
        let orig = cs.read(bdf, reg);
        cs.write(bdf, reg, u32::MAX);
        let mask = cs.read(bdf, reg);
        cs.write(bdf, reg, orig);
        if orig & 1 == 1 {
            let size_mask = mask & !0x3;
            if size_mask != 0 {
                let size = u64::from((!size_mask).wrapping_add(1) & 0xffff);
                bars[i] = Some(Bar {
                    kind: BarKind::Io,
                    base: u64::from(orig & !0x3),
                    size,
                    flags: orig & 0x3,
                });
            }
            i += 1;
            continue;
        }
        let is64 = (orig >> 1) & 0x3 == 2 && i < 5;
        let (base, size_mask) = if is64 {
            let hreg = reg + 4;
            let horig = cs.read(bdf, hreg);
            cs.write(bdf, hreg, u32::MAX);
            let hmask = cs.read(bdf, hreg);
            cs.write(bdf, hreg, horig);
            (
                u64::from(horig) << 32 | u64::from(orig & !0xf),
                u64::from(hmask) << 32 | u64::from(mask & !0xf),
            )
        } else {
            (
                u64::from(orig & !0xf),
                0xffff_ffff_0000_0000 | u64::from(mask & !0xf),
            )
        };
        if mask & !0xf != 0 {
            let kind = if is64 {
                BarKind::Memory64
            } else {
                BarKind::Memory32
            };
            bars[i] = Some(Bar {
                kind,
                base,
                size: (!size_mask).wrapping_add(1),
                flags: orig & 0xf,
            });
        }
        i += if is64 { 2 } else { 1 };
    }
    cs.write(bdf, REG_COMMAND, command & 0xffff);
    Ok(Device {
        bdf,
        vendor: id as u16,
        device: (id >> 16) as u16,
        bars,
    })
}

/// Command register bits cleared when a domain holding the function ends: I/O decode, memory
/// decode and bus mastering.
pub const COMMAND_QUIESCE: u32 = 0x7;

/// Stops `bdf` before its holder's frames are reused: clears bus mastering (no more DMA into
/// memory the next owner will get) and memory and I/O decode (the BARs answer nobody), and
/// leaves the rest of the command register and the status bits (write-one-to-clear) alone.
/// Returns the command register as read back afterwards.
pub fn quiesce(cs: &mut impl ConfigSpace, bdf: Bdf) -> u16 {
    let command = cs.read(bdf, REG_COMMAND) & 0xffff;
    cs.write(bdf, REG_COMMAND, command & !COMMAND_QUIESCE);
    cs.read(bdf, REG_COMMAND) as u16
}

/// What a filtered write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Write this value to the device.
    Pass(u32),
    /// Emulated or refused: the device is not touched.
    Absorb,
}

/// A function assigned to a domain, with the config-space state the filter emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assigned {
    pub device: Device,
    /// BAR registers the domain wrote all-ones to (the next read returns the size mask).
    sizing: [bool; 6],
}

/// A config access the filter refuses outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadOffset;

fn check_offset(offset: u64) -> Result<u8, BadOffset> {
    if offset < u64::from(CONFIG_BYTES) && offset % 4 == 0 {
        Ok(offset as u8)
    } else {
        Err(BadOffset)
    }
}

impl Assigned {
    pub fn new(device: Device) -> Assigned {
        Assigned {
            device,
            sizing: [false; 6],
        }
    }

    /// BAR slot of register `offset` and the BAR describing it (with whether it is the upper
    /// half of a 64-bit BAR).
    fn bar_at(&self, offset: u8) -> Option<(usize, Option<(Bar, bool)>)> {
        if !(REG_BAR0..REG_BAR0 + 24).contains(&offset) {
            return None;
        }
        let slot = usize::from((offset - REG_BAR0) / 4);
        let bar = match self.device.bars[slot] {
            Some(b) => Some((b, false)),
            None if slot > 0 => self.device.bars[slot - 1]
                .filter(|b| b.kind == BarKind::Memory64)
                .map(|b| (b, true)),
            None => None,
        };
        Some((slot, bar))
    }

    /// The value the domain reads at `offset`, given what the device holds there (`hw`).
    pub fn read(&self, offset: u64, hw: u32) -> Result<u32, BadOffset> {
        let offset = check_offset(offset)?;
        if offset == REG_ROM {
            return Ok(0);
        }
        let Some((slot, bar)) = self.bar_at(offset) else {
            return Ok(hw);
        };
        let Some((bar, upper)) = bar else {
            return Ok(0);
        };
        if !self.sizing[slot] {
            return Ok(hw);
        }
        let mask = !(bar.size - 1);
        Ok(match (bar.kind, upper) {
            (BarKind::Io, _) => (mask as u32 & 0xffff_fffc) | bar.flags,
            (_, false) => (mask as u32 & !0xf) | bar.flags,
            (_, true) => (mask >> 32) as u32,
        })
    }

    /// What to do with the domain's write of `value` at `offset`.
    pub fn write(&mut self, offset: u64, value: u32) -> Result<Write, BadOffset> {
        let offset = check_offset(offset)?;
        if let Some((slot, _)) = self.bar_at(offset) {
            self.sizing[slot] = value == u32::MAX;
            return Ok(Write::Absorb);
        }
        Ok(match offset {
            // Status bits are write-one-to-clear and harmless; the command keeps allowed bits.
            REG_COMMAND => Write::Pass(value & (0xffff_0000 | COMMAND_ALLOWED)),
            o if o < 0x40 => Write::Absorb,
            _ => Write::Pass(value),
        })
    }

    /// Whether a command value (as filtered) turns on memory decode.
    pub fn decodes_memory(command: u32) -> bool {
        command & COMMAND_MEMORY != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config space with one function: real BAR sizing behaviour (writes of all-ones read
    /// back as the size mask, other writes set the base).
    struct FakeBus {
        regs: [u32; 64],
        /// Size masks of the 6 BAR registers (0 = not implemented).
        masks: [u32; 6],
        at: Bdf,
        writes: usize,
    }

    impl ConfigSpace for FakeBus {
        fn read(&mut self, bdf: Bdf, offset: u8) -> u32 {
            if bdf != self.at {
                return u32::MAX;
            }
            self.regs[usize::from(offset / 4)]
        }
        fn write(&mut self, bdf: Bdf, offset: u8, value: u32) {
            assert_eq!(bdf, self.at);
            self.writes += 1;
            let r = usize::from(offset / 4);
            if (4..10).contains(&r) {
                let m = self.masks[r - 4];
                let low = self.regs[r] & !m; // type bits (or the low bits under the mask) stay
                self.regs[r] = if value == u32::MAX {
                    m | (self.regs[r] & 0xf & !m)
                } else {
                    (value & m) | (low & 0xf)
                };
                return;
            }
            if r == 1 {
                // Status bits are write-one-to-clear.
                self.regs[1] = (self.regs[1] & 0xffff_0000 & !value) | (value & 0xffff);
                return;
            }
            self.regs[r] = value;
        }
    }

    const NIC: Bdf = Bdf {
        bus: 0,
        device: 3,
        function: 0,
    };

    /// A virtio-net-like function: BAR1 4 KiB memory at 0xfebd1000, BAR4 64-bit prefetchable
    /// 16 KiB at 0xfe000000, BAR0 an I/O BAR of 32 ports at 0xc000.
    fn nic() -> FakeBus {
        let mut regs = [0u32; 64];
        regs[0] = 0x1041 << 16 | 0x1af4;
        regs[1] = 0x0010_0007;
        regs[3] = 0; // header type 0
        regs[4] = 0xc000 | 1;
        regs[5] = 0xfebd_1000;
        regs[8] = 0xfe00_0000 | 0xc; // 64-bit, prefetchable
        regs[9] = 0;
        regs[0x10] = 0xdead_beef; // device-specific register
        let masks = [
            0xffff_ffe0 | 1,
            0xffff_f000,
            0,
            0,
            0xffff_c000 | 0xc,
            0xffff_ffff,
        ];
        FakeBus {
            regs,
            masks,
            at: NIC,
            writes: 0,
        }
    }

    /// A holder's end: bus mastering and both decodes off, every other command bit kept, the
    /// status register's write-one-to-clear bits untouched, nothing else written.
    #[test]
    fn quiesce_stops_dma_and_decoding_and_keeps_the_rest() {
        // (command before, command after)
        let cases: &[(u32, u16)] = &[
            (0x0007, 0x0000),
            (0x0406, 0x0400), // INTx disable stays
            (0x0000, 0x0000),
            (0x0147, 0x0140), // SERR# and parity response stay
        ];
        for &(before, after) in cases {
            let mut bus = nic();
            bus.regs[1] = 0xffff_0000 | before;
            let regs = bus.regs;
            assert_eq!(quiesce(&mut bus, NIC), after, "{before:#x}");
            assert_eq!(
                bus.regs[1],
                0xffff_0000 | u32::from(after),
                "status bits kept"
            );
            assert_eq!(bus.regs[2..], regs[2..], "nothing else written");
            assert_eq!(bus.writes, 1);
        }
    }

    #[test]
    fn bdf_parses_and_packs() {
        assert_eq!(Bdf::parse("00:03.0"), Some(NIC));
        assert_eq!(Bdf::parse("ff:1f.7").map(Bdf::packed), Some(0xffff));
        assert_eq!(NIC.cf8(0x13), 0x8000_1810);
        assert_eq!(NIC.to_string(), "00:03.0");
        for bad in [
            "",
            "00:03",
            "00:20.0",
            "00:03.8",
            "100:03.0",
            "0:3.x",
            "00-03.0",
            "00:03.0.1",
            ":.",
            "00:3.-1",
        ] {
            assert_eq!(Bdf::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn probe_finds_every_bar_and_restores_the_device() {
        let mut bus = nic();
        let before = bus.regs;
        let d = probe(&mut bus, NIC).unwrap();
        assert_eq!((d.vendor, d.device), (0x1af4, 0x1041));
        let io = d.bars[0].unwrap();
        assert_eq!(
            (io.kind, io.base, io.size, io.mappable()),
            (BarKind::Io, 0xc000, 32, false)
        );
        let b1 = d.bars[1].unwrap();
        assert_eq!(
            (b1.kind, b1.base, b1.size, b1.mappable()),
            (BarKind::Memory32, 0xfebd_1000, 4096, true)
        );
        assert_eq!(d.bars[2..4], [None, None]);
        let b4 = d.bars[4].unwrap();
        assert_eq!(
            (b4.kind, b4.base, b4.size, b4.mappable()),
            (BarKind::Memory64, 0xfe00_0000, 0x4000, true)
        );
        assert_eq!(
            d.bars[5], None,
            "the upper half of a 64-bit BAR is not a BAR"
        );
        assert_eq!(bus.regs, before, "probing left the device as it found it");
    }

    #[test]
    fn probe_refuses_absent_functions_and_bridges() {
        let mut bus = nic();
        assert_eq!(
            probe(
                &mut bus,
                Bdf {
                    bus: 0,
                    device: 4,
                    function: 0
                }
            ),
            Err(ProbeError::Absent)
        );
        bus.regs[3] = 1 << 16;
        assert_eq!(probe(&mut bus, NIC), Err(ProbeError::NotEndpoint(1)));
        assert_eq!(bus.writes, 0);
    }

    #[test]
    fn bars_that_cannot_be_isolated_are_not_mappable() {
        let bar = |base, size| Bar {
            kind: BarKind::Memory32,
            base,
            size,
            flags: 0,
        };
        assert!(bar(0xfe00_0000, 0x1000).mappable());
        assert!(!bar(0xfe00_0000, 0x800).mappable(), "smaller than a page");
        assert!(!bar(0xfe00_0800, 0x1000).mappable(), "not page-aligned");
        assert!(!bar(0, 0x1000).mappable(), "unassigned");
        assert!(!bar(0xffff_f000, 0x2000).mappable(), "crosses 4 GiB");
        assert!(
            !Bar {
                kind: BarKind::Memory64,
                base: 1 << 32,
                size: 0x1000,
                flags: 0
            }
            .mappable()
        );
    }

    #[test]
    fn the_filter_emulates_bar_sizing_and_never_moves_a_bar() {
        let mut bus = nic();
        let mut a = Assigned::new(probe(&mut bus, NIC).unwrap());
        // (offset, value written, what the device gets, what the domain then reads)
        let cases: &[(u64, u32, Write, u32)] = &[
            (0x14, u32::MAX, Write::Absorb, 0xffff_f000),
            (0x14, 0xfebd_1000, Write::Absorb, 0xfebd_1000),
            (0x14, 0x1234_5000, Write::Absorb, 0xfebd_1000),
            (0x20, u32::MAX, Write::Absorb, 0xffff_c00c),
            (0x24, u32::MAX, Write::Absorb, 0xffff_ffff),
            (0x24, 0, Write::Absorb, 0),
            (0x10, u32::MAX, Write::Absorb, 0xffff_ffe1),
            (0x18, u32::MAX, Write::Absorb, 0),
            (0x30, u32::MAX, Write::Absorb, 0),
            (0x00, 0, Write::Absorb, 0x1041_1af4),
            (0x0c, 0x00ff_0000, Write::Absorb, 0),
            (0x3c, 0x0b, Write::Absorb, 0),
            (0x04, 0xffff_ffff, Write::Pass(0xffff_0406), 0x0010_0007),
            (0x40, 0x1234_5678, Write::Pass(0x1234_5678), 0),
        ];
        for &(off, value, want, read_back) in cases {
            assert_eq!(
                a.write(off, value),
                Ok(want),
                "write {value:#x} at {off:#x}"
            );
            let hw = bus.read(NIC, off as u8);
            if want == Write::Absorb || off < 0x40 && off != 4 {
                assert_eq!(a.read(off, hw), Ok(read_back), "read at {off:#x}");
            }
        }
        assert_eq!(a.read(0x40, 7), Ok(7), "capabilities read through");
    }

    #[test]
    fn unaligned_and_out_of_range_offsets_are_refused() {
        let mut a = Assigned::new(probe(&mut nic(), NIC).unwrap());
        for off in [1, 2, 3, 0x41, 256, 4096, u64::MAX] {
            assert_eq!(a.read(off, 0), Err(BadOffset));
            assert_eq!(a.write(off, 0), Err(BadOffset));
        }
        assert!(Assigned::decodes_memory(0x6) && !Assigned::decodes_memory(0x4));
    }
}
