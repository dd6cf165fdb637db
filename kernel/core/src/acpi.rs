//! ACPI tables the hypervisor needs: the RSDP, RSDT/XSDT, and typed MADT, `TPM2` and HPET.
//!
//! The tables are firmware data in RAM and are read through [`PhysMem`] with every address and
//! length checked against the caller's limit and every checksum verified, once; the rest of the
//! hypervisor sees only the typed [`Acpi`] summary.

use crate::mem::PhysMem;
use heapless::Vec;

/// The most tables listed by the RSDT/XSDT that are kept.
pub const MAX_TABLES: usize = 32;
/// The most local APICs kept from the MADT.
pub const MAX_LAPICS: usize = 64;
/// The most I/O APICs kept from the MADT.
pub const MAX_IOAPICS: usize = 8;
/// The longest table whose checksum is verified (a larger one is refused).
pub const MAX_TABLE_LEN: u32 = 1 << 20;

const HEADER_LEN: u32 = 36;

/// What can be wrong with the ACPI tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// The RSDP does not start with `RSD PTR `.
    BadRsdpSignature,
    /// The RSDP is shorter than its revision requires.
    ShortRsdp { len: usize },
    /// An RSDP checksum (the v1 20 bytes or the extended one) does not sum to zero.
    RsdpChecksum { extended: bool },
    /// No RSDP was found in the BIOS areas.
    NoRsdp,
    /// A table lies (partly) beyond addressable memory.
    OutOfRange { what: [u8; 4], addr: u64 },
    /// A table has another signature than where it was looked up.
    WrongSignature { want: [u8; 4], found: [u8; 4] },
    /// A table's length is shorter than its fixed part or longer than [`MAX_TABLE_LEN`].
    BadLength { what: [u8; 4], len: u32 },
    /// A table's bytes do not sum to zero.
    Checksum { what: [u8; 4] },
    /// A MADT entry is shorter than 2 bytes, shorter than its type needs, or runs past the table.
    BadMadtEntry { offset: u32 },
    /// More of something than this kernel keeps.
    TooMany { what: &'static str },
}

/// A signature as text, for messages.
fn sig(s: &[u8; 4]) -> &str {
    core::str::from_utf8(s).unwrap_or("????")
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadRsdpSignature => f.write_str("the RSDP has no \"RSD PTR \" signature"),
            Self::ShortRsdp { len } => write!(
                f,
                "the RSDP is {len} bytes, shorter than its revision needs"
            ),
            Self::RsdpChecksum { extended: false } => f.write_str("the RSDP checksum is wrong"),
            Self::RsdpChecksum { extended: true } => {
                f.write_str("the RSDP extended checksum is wrong")
            }
            Self::NoRsdp => f.write_str("no RSDP in the EBDA or the BIOS area"),
            Self::OutOfRange { what, addr } => write!(
                f,
                "table {} at {addr:#x} is beyond addressable memory",
                sig(what)
            ),
            Self::WrongSignature { want, found } => {
                write!(f, "expected table {} but found {}", sig(want), sig(found))
            }
            Self::BadLength { what, len } => {
                write!(f, "table {} has an impossible length {len}", sig(what))
            }
            Self::Checksum { what } => write!(f, "table {} has a wrong checksum", sig(what)),
            Self::BadMadtEntry { offset } => {
                write!(f, "MADT entry at offset {offset} is malformed")
            }
            Self::TooMany { what } => write!(f, "too many {what}"),
        }
    }
}

/// The validated Root System Description Pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rsdp {
    /// 0 for ACPI 1.0, 2 and above for ACPI 2.0+.
    pub revision: u8,
    /// The RSDT's address.
    pub rsdt: u32,
    /// The XSDT's address (ACPI 2.0+, non-zero).
    pub xsdt: Option<u64>,
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

impl Rsdp {
    /// Validates an RSDP given as bytes (a Multiboot2 tag's copy, or read from memory).
    pub fn parse(bytes: &[u8]) -> Result<Self, AcpiError> {
        if bytes.len() < 20 {
            return Err(AcpiError::ShortRsdp { len: bytes.len() });
        }
        if &bytes[..8] != b"RSD PTR " {
            return Err(AcpiError::BadRsdpSignature);
        }
        if sum(&bytes[..20]) != 0 {
            return Err(AcpiError::RsdpChecksum { extended: false });
        }
        let revision = bytes[15];
        let rsdt = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        if revision < 2 {
            return Ok(Self {
                revision,
                rsdt,
                xsdt: None,
            });
        }
        if bytes.len() < 36 {
            return Err(AcpiError::ShortRsdp { len: bytes.len() });
        }
        let len = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]) as usize;
        if !(36..=bytes.len()).contains(&len) {
            return Err(AcpiError::ShortRsdp { len: bytes.len() });
        }
        if sum(&bytes[..len]) != 0 {
            return Err(AcpiError::RsdpChecksum { extended: true });
        }
        let mut x = [0u8; 8];
        x.copy_from_slice(&bytes[24..32]);
        let xsdt = u64::from_le_bytes(x);
        Ok(Self {
            revision,
            rsdt,
            xsdt: (xsdt != 0).then_some(xsdt),
        })
    }

    /// Finds the RSDP the legacy way: on a 16-byte boundary in the first KiB of the EBDA, then
    /// in 0xE0000..0x100000. The first candidate whose signature and checksums hold wins.
    pub fn scan(mem: &impl PhysMem) -> Result<Self, AcpiError> {
        let ebda = u64::from(mem.read_u16(0x40e)) << 4;
        let areas = [(ebda, ebda + 1024), (0xe0000, 0x100000)];
        for (start, end) in areas {
            if start == 0 || end > 0x100000 {
                continue;
            }
            let mut a = start;
            while a + 36 <= end {
                let mut b = [0u8; 36];
                mem.read(a, &mut b);
                if &b[..8] == b"RSD PTR " {
                    let len = if b[15] >= 2 { 36 } else { 20 };
                    if let Ok(r) = Self::parse(&b[..len]) {
                        return Ok(r);
                    }
                }
                a += 16;
            }
        }
        Err(AcpiError::NoRsdp)
    }
}

/// One table the RSDT/XSDT lists, with its header checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRef {
    /// The four-character signature.
    pub signature: [u8; 4],
    /// Physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
}

/// The MADT's interrupt controllers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Madt {
    /// The local APIC's address (the 64-bit override if one is given).
    pub lapic_addr: u64,
    /// Whether legacy 8259 PICs are present (and must be masked).
    pub pcat_compat: bool,
    /// Enabled (or online-capable) local APICs: (processor UID, APIC ID).
    pub lapics: Vec<(u8, u8), MAX_LAPICS>,
    /// I/O APICs.
    pub ioapics: Vec<IoApic, MAX_IOAPICS>,
}

/// One I/O APIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApic {
    /// Its APIC ID.
    pub id: u8,
    /// Its register window.
    pub addr: u32,
    /// The first global system interrupt it serves.
    pub gsi_base: u32,
}

/// How the OS starts TPM commands, from the `TPM2` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMethod {
    /// 2: the ACPI start method.
    Acpi,
    /// 6: memory-mapped TIS (FIFO) at 0xFED40000.
    Tis,
    /// 7: the Command Response Buffer interface.
    Crb,
    /// 8: CRB with the ACPI start method.
    CrbAcpi,
    /// Anything else (11 is CRB with an Arm SMC, for example).
    Other(u32),
}

/// The `TPM2` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tpm2 {
    /// How commands are started.
    pub start_method: StartMethod,
    /// The CRB control area's address (0 or unused for TIS).
    pub control_area: u64,
    /// The event log area (LAML bytes at LASA), when the table is long enough to carry one and
    /// it is non-empty.
    pub log_area: Option<(u64, u32)>,
}

/// The HPET table: where the timer block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hpet {
    /// The register block's address (system memory).
    pub addr: u64,
    /// The HPET's sequence number.
    pub number: u8,
    /// The minimum clock tick in periodic mode.
    pub min_tick: u16,
}

/// What the hypervisor learned from ACPI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acpi {
    /// The RSDP the tables came from.
    pub rsdp: Rsdp,
    /// Every table the RSDT/XSDT lists, checksums verified.
    pub tables: Vec<TableRef, MAX_TABLES>,
    /// The MADT, if present.
    pub madt: Option<Madt>,
    /// The `TPM2` table, if present.
    pub tpm2: Option<Tpm2>,
    /// The HPET table, if present.
    pub hpet: Option<Hpet>,
}

/// Checks the header at `addr` (signature `want` if given, `min_len <= length <= MAX`, in range,
/// checksum) and returns the table's reference.
fn table(
    mem: &impl PhysMem,
    addr: u64,
    want: Option<[u8; 4]>,
    min_len: u32,
    limit: u64,
) -> Result<TableRef, AcpiError> {
    let what = want.unwrap_or(*b"????");
    let in_range = |len: u64| addr.checked_add(len).is_some_and(|end| end <= limit);
    if !in_range(u64::from(HEADER_LEN)) {
        return Err(AcpiError::OutOfRange { what, addr });
    }
    let mut signature = [0u8; 4];
    mem.read(addr, &mut signature);
    if let Some(want) = want
        && signature != want
    {
        return Err(AcpiError::WrongSignature {
            want,
            found: signature,
        });
    }
    let len = mem.read_u32(addr + 4);
    if len < min_len.max(HEADER_LEN) || len > MAX_TABLE_LEN {
        return Err(AcpiError::BadLength {
            what: signature,
            len,
        });
    }
    if !in_range(u64::from(len)) {
        return Err(AcpiError::OutOfRange {
            what: signature,
            addr,
        });
    }
    let mut total = 0u8;
    let mut buf = [0u8; 256];
    let mut done = 0u32;
    while done < len {
        let n = (len - done).min(buf.len() as u32) as usize;
        mem.read(addr + u64::from(done), &mut buf[..n]);
        total = total.wrapping_add(sum(&buf[..n]));
        done += n as u32;
    }
    if total != 0 {
        return Err(AcpiError::Checksum { what: signature });
    }
    Ok(TableRef {
        signature,
        addr,
        len,
    })
}

fn madt(mem: &impl PhysMem, t: &TableRef) -> Result<Madt, AcpiError> {
    let mut out = Madt {
        lapic_addr: u64::from(mem.read_u32(t.addr + 36)),
        pcat_compat: mem.read_u32(t.addr + 40) & 1 != 0,
        ..Madt::default()
    };
    let mut off = 44u32;
    while off < t.len {
        let bad = AcpiError::BadMadtEntry { offset: off };
        if t.len - off < 2 {
            return Err(bad);
        }
        let e = t.addr + u64::from(off);
        let mut head = [0u8; 2];
        mem.read(e, &mut head);
        let [kind, len] = head;
        if len < 2 || u32::from(len) > t.len - off {
            return Err(bad);
        }
        let need = match kind {
            0 => 8,
            1 => 12,
            5 => 12,
            _ => 2,
        };
        if len < need {
            return Err(bad);
        }
        match kind {
            0 => {
                let mut b = [0u8; 6];
                mem.read(e + 2, &mut b);
                let flags = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                // Bit 0: enabled; bit 1: online capable (may be enabled later).
                if flags & 0b11 != 0 {
                    out.lapics
                        .push((b[0], b[1]))
                        .map_err(|_| AcpiError::TooMany {
                            what: "local APICs",
                        })?;
                }
            }
            1 => {
                let mut b = [0u8; 1];
                mem.read(e + 2, &mut b);
                let io = IoApic {
                    id: b[0],
                    addr: mem.read_u32(e + 4),
                    gsi_base: mem.read_u32(e + 8),
                };
                out.ioapics
                    .push(io)
                    .map_err(|_| AcpiError::TooMany { what: "I/O APICs" })?;
            }
            5 => out.lapic_addr = mem.read_u64(e + 4),
            _ => {}
        }
        off += u32::from(len);
    }
    Ok(out)
}

fn tpm2(mem: &impl PhysMem, t: &TableRef) -> Tpm2 {
    let start_method = match mem.read_u32(t.addr + 48) {
        2 => StartMethod::Acpi,
        6 => StartMethod::Tis,
        7 => StartMethod::Crb,
        8 => StartMethod::CrbAcpi,
        other => StartMethod::Other(other),
    };
    // TCG ACPI specification: 12 bytes of start-method parameters at 52, then LAML at 64 and
    // LASA at 68 in a table of 76 bytes or more.
    let log_area = if t.len >= 76 {
        let laml = mem.read_u32(t.addr + 64);
        let lasa = mem.read_u64(t.addr + 68);
        (laml != 0 && lasa != 0).then_some((lasa, laml))
    } else {
        None
    };
    Tpm2 {
        start_method,
        control_area: mem.read_u64(t.addr + 40),
        log_area,
    }
}

fn hpet(mem: &impl PhysMem, t: &TableRef) -> Hpet {
    let mut b = [0u8; 3];
    mem.read(t.addr + 52, &mut b);
    Hpet {
        addr: mem.read_u64(t.addr + 44),
        number: b[0],
        min_tick: u16::from_le_bytes([b[1], b[2]]),
    }
}

/// Reads the RSDT (or the XSDT when the RSDP gives one) and every table it lists, verifying each
/// checksum, and types the MADT, `TPM2` and HPET tables. Nothing at or beyond `limit` is read.
pub fn parse(mem: &impl PhysMem, rsdp: Rsdp, limit: u64) -> Result<Acpi, AcpiError> {
    let (root, entry) = match rsdp.xsdt {
        Some(x) => (table(mem, x, Some(*b"XSDT"), HEADER_LEN, limit)?, 8u32),
        None => (
            table(mem, u64::from(rsdp.rsdt), Some(*b"RSDT"), HEADER_LEN, limit)?,
            4,
        ),
    };
    let mut out = Acpi {
        rsdp,
        tables: Vec::new(),
        madt: None,
        tpm2: None,
        hpet: None,
    };
    let count = (root.len - HEADER_LEN) / entry;
    for i in 0..count {
        let at = root.addr + u64::from(HEADER_LEN + i * entry);
        let addr = if entry == 8 {
            mem.read_u64(at)
        } else {
            u64::from(mem.read_u32(at))
        };
        let mut signature = [0u8; 4];
        if addr.checked_add(4).is_some_and(|end| end <= limit) {
            mem.read(addr, &mut signature);
        }
        let min_len = match &signature {
            b"APIC" => 44,
            b"TPM2" => 52,
            b"HPET" => 56,
            _ => HEADER_LEN,
        };
        let t = table(mem, addr, None, min_len, limit)?;
        match &t.signature {
            b"APIC" if out.madt.is_none() => out.madt = Some(madt(mem, &t)?),
            b"TPM2" if out.tpm2.is_none() => out.tpm2 = Some(tpm2(mem, &t)),
            b"HPET" if out.hpet.is_none() => out.hpet = Some(hpet(mem, &t)),
            _ => {}
        }
        out.tables.push(t).map_err(|_| AcpiError::TooMany {
            what: "ACPI tables",
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::FakeMem;
    use std::vec::Vec as StdVec;

    const LIMIT: u64 = 0x20000;
    const RSDP_AT: u64 = 0xe0010;
    const XSDT: u64 = 0x10000;
    const MADT_AT: u64 = 0x10100;
    const TPM2_AT: u64 = 0x10200;
    const HPET_AT: u64 = 0x10300;
    const FACP_AT: u64 = 0x10400;

    /// A table: header (checksum fixed up) + body.
    fn make_table(signature: &[u8; 4], revision: u8, body: &[u8]) -> StdVec<u8> {
        let mut t = StdVec::new();
        t.extend_from_slice(signature);
        t.extend_from_slice(&(36 + body.len() as u32).to_le_bytes());
        t.push(revision);
        t.push(0);
        t.extend_from_slice(b"WARDEN");
        t.extend_from_slice(b"TESTTABL");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(b"WRDN");
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(body);
        t[9] = 0u8.wrapping_sub(sum(&t));
        t
    }

    fn rsdp_bytes(revision: u8, rsdt: u32, xsdt: u64) -> [u8; 36] {
        let mut r = [0u8; 36];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[9..15].copy_from_slice(b"WARDEN");
        r[15] = revision;
        r[16..20].copy_from_slice(&rsdt.to_le_bytes());
        r[20..24].copy_from_slice(&36u32.to_le_bytes());
        r[24..32].copy_from_slice(&xsdt.to_le_bytes());
        r[8] = 0u8.wrapping_sub(sum(&r[..20]));
        r[32] = 0u8.wrapping_sub(sum(&r));
        r
    }

    fn madt_body() -> StdVec<u8> {
        let mut b = StdVec::new();
        b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]); // LAPIC uid 0 id 0 enabled
        b.extend_from_slice(&[0, 8, 1, 1, 0, 0, 0, 0]); // LAPIC uid 1 id 1 disabled
        b.extend_from_slice(&[1, 12, 2, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]); // I/O APIC 2 @ fec00000
        b.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]); // ISO: IRQ0 -> GSI 2
        b.extend_from_slice(&[4, 6, 0xff, 0, 0, 1]); // LAPIC NMI
        b
    }

    /// QEMU's `TPM2` table shape: CRB, control area, 12 parameter bytes, LAML and LASA.
    fn tpm2_body(method: u32, long: bool) -> StdVec<u8> {
        let mut b = StdVec::new();
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&0xfed4_0040u64.to_le_bytes());
        b.extend_from_slice(&method.to_le_bytes());
        b.extend_from_slice(&[0; 12]);
        if long {
            b.extend_from_slice(&0x10000u32.to_le_bytes());
            b.extend_from_slice(&0x7fe_0000u64.to_le_bytes());
        }
        b
    }

    fn hpet_body() -> StdVec<u8> {
        let mut b = StdVec::new();
        b.extend_from_slice(&0x8086_a201u32.to_le_bytes());
        b.extend_from_slice(&[0, 0x40, 0, 0]);
        b.extend_from_slice(&0xfed0_0000u64.to_le_bytes());
        b.push(0);
        b.extend_from_slice(&0x80u16.to_le_bytes());
        b.push(0);
        b
    }

    /// A machine as QEMU q35 + OVMF describes it: RSDP v2 → XSDT → MADT, TPM2, HPET, FACP.
    fn machine(tpm2: &[u8]) -> FakeMem {
        let mut m = FakeMem::new(0x100000);
        m.write(RSDP_AT, &rsdp_bytes(2, 0, XSDT));
        let mut x = StdVec::new();
        for a in [MADT_AT, TPM2_AT, HPET_AT, FACP_AT] {
            x.extend_from_slice(&a.to_le_bytes());
        }
        m.write(XSDT, &make_table(b"XSDT", 1, &x));
        m.write(MADT_AT, &make_table(b"APIC", 3, &madt_body()));
        m.write(TPM2_AT, tpm2);
        m.write(HPET_AT, &make_table(b"HPET", 1, &hpet_body()));
        m.write(FACP_AT, &make_table(b"FACP", 6, &[0; 40]));
        m
    }

    #[test]
    fn reads_a_q35_like_machine() {
        let m = machine(&make_table(b"TPM2", 4, &tpm2_body(7, true)));
        let rsdp = Rsdp::scan(&m).unwrap();
        assert_eq!(
            rsdp,
            Rsdp {
                revision: 2,
                rsdt: 0,
                xsdt: Some(XSDT)
            }
        );
        let acpi = parse(&m, rsdp, LIMIT).unwrap();
        let sigs: StdVec<&[u8; 4]> = acpi.tables.iter().map(|t| &t.signature).collect();
        assert_eq!(sigs, [b"APIC", b"TPM2", b"HPET", b"FACP"]);
        let madt = acpi.madt.unwrap();
        assert_eq!(madt.lapic_addr, 0xfee0_0000);
        assert!(madt.pcat_compat);
        assert_eq!(madt.lapics.as_slice(), &[(0, 0)]);
        assert_eq!(
            madt.ioapics.as_slice(),
            &[IoApic {
                id: 2,
                addr: 0xfec0_0000,
                gsi_base: 0
            }]
        );
        assert_eq!(
            acpi.tpm2,
            Some(Tpm2 {
                start_method: StartMethod::Crb,
                control_area: 0xfed4_0040,
                log_area: Some((0x7fe_0000, 0x10000))
            })
        );
        assert_eq!(
            acpi.hpet,
            Some(Hpet {
                addr: 0xfed0_0000,
                number: 0,
                min_tick: 0x80
            })
        );
    }

    /// Data-driven: the `TPM2` start methods and table lengths.
    #[test]
    fn tpm2_start_methods_and_log_area() {
        let cases = [
            (6, true, StartMethod::Tis, true),
            (7, false, StartMethod::Crb, false),
            (8, true, StartMethod::CrbAcpi, true),
            (2, false, StartMethod::Acpi, false),
            (11, true, StartMethod::Other(11), true),
        ];
        for (method, long, want, has_log) in cases {
            let m = machine(&make_table(b"TPM2", 4, &tpm2_body(method, long)));
            let t = parse(&m, Rsdp::scan(&m).unwrap(), LIMIT)
                .unwrap()
                .tpm2
                .unwrap();
            assert_eq!(t.start_method, want, "method {method}");
            assert_eq!(t.log_area.is_some(), has_log, "method {method}");
        }
    }

    #[test]
    fn an_acpi_1_rsdp_uses_the_rsdt() {
        let mut m = machine(&make_table(b"TPM2", 4, &tpm2_body(6, false)));
        m.write(RSDP_AT, &[0; 36]);
        let r = rsdp_bytes(0, 0x11000, 0);
        m.write(0xf0000, &r[..20]);
        let rsdt = make_table(
            b"RSDT",
            1,
            &[
                (TPM2_AT as u32).to_le_bytes(),
                (HPET_AT as u32).to_le_bytes(),
            ]
            .concat(),
        );
        m.write(0x11000, &rsdt);
        let rsdp = Rsdp::scan(&m).unwrap();
        assert_eq!(
            rsdp,
            Rsdp {
                revision: 0,
                rsdt: 0x11000,
                xsdt: None
            }
        );
        let acpi = parse(&m, rsdp, LIMIT).unwrap();
        assert_eq!(acpi.tables.len(), 2);
        assert!(acpi.madt.is_none());
        assert_eq!(acpi.tpm2.unwrap().start_method, StartMethod::Tis);
    }

    #[test]
    fn rsdp_errors() {
        let good = rsdp_bytes(2, 0, XSDT);
        assert!(Rsdp::parse(&good).is_ok());
        let mut bad_sig = good;
        bad_sig[0] = b'X';
        let mut bad_v1 = good;
        bad_v1[16] ^= 1;
        let mut bad_ext = good;
        bad_ext[24] ^= 1;
        let mut lying_len = good;
        lying_len[20] = 200;
        let cases: [(&str, &[u8], AcpiError); 5] = [
            ("bad signature", &bad_sig, AcpiError::BadRsdpSignature),
            (
                "v1 checksum",
                &bad_v1,
                AcpiError::RsdpChecksum { extended: false },
            ),
            (
                "extended checksum",
                &bad_ext,
                AcpiError::RsdpChecksum { extended: true },
            ),
            (
                "length beyond the copy",
                &lying_len,
                AcpiError::ShortRsdp { len: 36 },
            ),
            (
                "v2 cut to 20",
                &good[..20],
                AcpiError::ShortRsdp { len: 20 },
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(Rsdp::parse(bytes), Err(want), "{name}");
        }
        for cut in 0..20 {
            assert_eq!(
                Rsdp::parse(&good[..cut]),
                Err(AcpiError::ShortRsdp { len: cut })
            );
        }
        assert_eq!(Rsdp::scan(&FakeMem::new(0x100000)), Err(AcpiError::NoRsdp));
    }

    /// Each malformation of a table gives its own error.
    #[test]
    fn malformed_tables_give_typed_errors() {
        let rsdp = Rsdp {
            revision: 2,
            rsdt: 0,
            xsdt: Some(XSDT),
        };
        let tpm2 = make_table(b"TPM2", 4, &tpm2_body(7, true));
        type Patch = fn(&mut FakeMem);
        let cases: &[(&str, Patch, AcpiError)] = &[
            (
                "xsdt signature",
                |m| m.write(XSDT, b"RSDT"),
                AcpiError::WrongSignature {
                    want: *b"XSDT",
                    found: *b"RSDT",
                },
            ),
            (
                "xsdt checksum",
                |m| m.write(XSDT + 36, &[1]),
                AcpiError::Checksum { what: *b"XSDT" },
            ),
            (
                "madt length too short",
                |m| m.write(MADT_AT + 4, &40u32.to_le_bytes()),
                AcpiError::BadLength {
                    what: *b"APIC",
                    len: 40,
                },
            ),
            (
                "madt length huge",
                |m| m.write(MADT_AT + 4, &u32::MAX.to_le_bytes()),
                AcpiError::BadLength {
                    what: *b"APIC",
                    len: u32::MAX,
                },
            ),
            (
                "madt beyond memory",
                |m| m.write(MADT_AT + 4, &0x10000u32.to_le_bytes()),
                AcpiError::OutOfRange {
                    what: *b"APIC",
                    addr: MADT_AT,
                },
            ),
            (
                "table pointer beyond memory",
                |m| m.write(XSDT, &make_table(b"XSDT", 1, &0xfff_fff0u64.to_le_bytes())),
                AcpiError::OutOfRange {
                    what: *b"????",
                    addr: 0xfff_fff0,
                },
            ),
            (
                "tpm2 checksum",
                |m| m.write(TPM2_AT + 48, &6u32.to_le_bytes()),
                AcpiError::Checksum { what: *b"TPM2" },
            ),
        ];
        for (name, patch, want) in cases {
            let mut m = machine(&tpm2);
            patch(&mut m);
            assert_eq!(parse(&m, rsdp, LIMIT), Err(*want), "case {name}");
        }
        // MADT entries that lie about their length (checksums fixed so only the entry is wrong).
        let entry_cases: &[(&str, &[u8], u32)] = &[
            ("zero length", &[0, 0], 44),
            ("lapic of 4 bytes", &[0, 4, 0, 0], 44),
            ("past the table", &[1, 40, 0, 0], 44),
            ("one byte left", &[0, 8, 0, 0, 1, 0, 0, 0, 9], 52),
        ];
        for (name, entries, offset) in entry_cases {
            let mut body = 0xfee0_0000u32.to_le_bytes().to_vec();
            body.extend_from_slice(&[0; 4]);
            body.extend_from_slice(entries);
            let mut m = machine(&tpm2);
            m.write(MADT_AT, &make_table(b"APIC", 3, &body));
            assert_eq!(
                parse(&m, rsdp, LIMIT),
                Err(AcpiError::BadMadtEntry { offset: *offset }),
                "case {name}"
            );
        }
    }

    /// Every table cut at every length (by the end of memory, and by a length field that lies
    /// with the checksum fixed up) is an error or a smaller, still-typed result — never a panic.
    #[test]
    fn every_prefix_is_refused_or_a_shorter_table() {
        let rsdp = Rsdp {
            revision: 2,
            rsdt: 0,
            xsdt: Some(XSDT),
        };
        let tpm2 = make_table(b"TPM2", 4, &tpm2_body(7, true));
        for (at, full) in [
            (XSDT, 68u64),
            (MADT_AT, 44 + 8 + 8 + 12 + 10 + 6),
            (TPM2_AT, 76),
            (HPET_AT, 56),
        ] {
            for cut in 0..full {
                // Memory ends inside the table.
                let m = machine(&tpm2);
                assert!(
                    parse(&m, rsdp, at + cut).is_err(),
                    "table at {at:#x} cut by memory at {cut}"
                );
                // The length field says `cut`, the checksum agrees: too short for its kind.
                let mut m = machine(&tpm2);
                let mut t = std::vec![0u8; full as usize];
                m.read(at, &mut t);
                t[4..8].copy_from_slice(&(cut as u32).to_le_bytes());
                t[9] = 0;
                let c = 0u8.wrapping_sub(sum(&t[..cut.max(36) as usize]));
                t[9] = c;
                m.write(at, &t);
                let r = parse(&m, rsdp, LIMIT);
                if at == MADT_AT && cut >= 44 {
                    // A shorter MADT is well formed when it ends on an entry boundary.
                    let ok_cuts = [44, 52, 60, 72, 82];
                    assert_eq!(r.is_ok(), ok_cuts.contains(&cut), "MADT of {cut} bytes");
                } else if at == TPM2_AT && cut >= 52 {
                    // A `TPM2` table without LAML/LASA is well formed: it just has no log area.
                    assert_eq!(
                        r.unwrap().tpm2.unwrap().log_area,
                        None,
                        "TPM2 of {cut} bytes"
                    );
                } else if at == XSDT && cut >= 36 {
                    // A shorter XSDT lists fewer tables (a partial last entry is ignored).
                    assert_eq!(
                        r.unwrap().tables.len() as u64,
                        (cut - 36) / 8,
                        "XSDT of {cut} bytes"
                    );
                } else {
                    assert!(r.is_err(), "table at {at:#x} of {cut} bytes");
                }
            }
        }
    }

    /// Seeded random bit flips anywhere in the tables never panic or loop.
    #[test]
    fn random_bit_flips_never_panic() {
        let rsdp = Rsdp {
            revision: 2,
            rsdt: 0,
            xsdt: Some(XSDT),
        };
        let tpm2 = make_table(b"TPM2", 4, &tpm2_body(7, true));
        let base = machine(&tpm2);
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1du64);
        let mut errors = 0;
        for _ in 0..5_000 {
            let mut m = base.clone();
            for _ in 0..1 + next() % 3 {
                let (table, len) = [(XSDT, 68), (MADT_AT, 88), (TPM2_AT, 76), (HPET_AT, 56)]
                    [(next() % 4) as usize];
                let at = table + next() % len;
                let mut b = [0u8];
                m.read(at, &mut b);
                b[0] ^= 1 << (next() % 8);
                m.write(at, &b);
            }
            errors += usize::from(parse(&m, rsdp, LIMIT).is_err());
            let mut r = rsdp_bytes(2, 0, XSDT);
            let bit = (next() % (36 * 8)) as usize;
            r[bit / 8] ^= 1 << (bit % 8);
            assert!(
                Rsdp::parse(&r).is_err(),
                "a one-bit flip in the RSDP must break a checksum"
            );
        }
        // A flip inside a table breaks its checksum; only flips that cancel out (a bit set in one
        // byte, the same bit cleared in another) can pass.
        assert!(errors > 4_500, "{errors} of 5000 flipped machines refused");
    }
}
