//! Introspection and checkpoint/restore mechanism calls (numbers `INTROSPECT_BASE..` = 64..79):
//! what a deprivileged checkpoint service needs to capture a paused domain (its memory page by
//! page, its vCPU record) and to rebuild it as a new domain that continues where it stopped.
//! The hypervisor offers the mechanism only; the image format, encryption and signing live in
//! the service (docs/checkpoint.md).
//!
//! Every call is decided by the MAC policy at one check site (class `introspect`, permission on
//! each variant; the target is the named domain's current label, for `RestoreCreate` the label
//! of the domain to be). On failure `RAX` is a [`crate::Status`]: `Denied` (audited as the
//! policy says), `BadAddress` for an unusable buffer, `InvalidArgument` with `RDX` holding an
//! [`IntrospectError`] code or a [`crate::lifecycle::LifecycleError`] code (numbers below 32).
//! A refused call changes nothing.
//!
//! # Checkpoint and restore
//! Capture: `DomainPause` (lifecycle) → [`IntrospectCall::TargetInfo`] →
//! [`IntrospectCall::ReadPage`] for every page → [`IntrospectCall::GetVcpu`]. Restore:
//! [`IntrospectCall::RestoreCreate`] (a new domain in state building, memory zeroed) →
//! [`IntrospectCall::RestorePage`] for every non-zero page → [`IntrospectCall::SetVcpu`] (the
//! record is checked; the domain is measured and becomes built) → `DomainUnpause` (lifecycle:
//! Chinese Wall admission) — the domain continues at the instruction where the original stopped.

use core::mem::size_of;

use crate::NAME_LEN;

/// First introspection call number.
pub const INTROSPECT_BASE: u64 = 64;

/// Introspection hypercall numbers (`RAX`). Arguments in `RDI`, `RSI`, `RDX`, `R10`, `R8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum IntrospectCall {
    /// `RDI` = domain id, `RSI` = address of a [`TargetInfo`]-sized buffer the caller can write.
    /// Checks `introspect { checkpoint }` caller -> domain.
    TargetInfo = 64,
    /// `RDI` = domain id, `RSI` = page index (below `memory_bytes / 4096`), `RDX` = address of a
    /// 4096-byte buffer the caller can write. Checks `introspect { checkpoint }`. The target
    /// must be paused ([`IntrospectError::Running`] otherwise).
    ReadPage = 65,
    /// `RDI` = domain id, `RSI` = address of a [`VcpuRecord::SIZE`]-byte buffer the caller can
    /// write. Checks `introspect { getvcpu }`. The target must be paused.
    GetVcpu = 66,
    /// `RDI` = address of a [`crate::lifecycle::CreateRequest`]. Checks `introspect { restore }`
    /// caller -> the label, the Chinese Wall and the domain table exactly as `DomainCreate`
    /// does. Value: the new domain id, in state building and *restoring*, its memory zeroed.
    RestoreCreate = 67,
    /// `RDI` = domain id, `RSI` = page index, `RDX` = address of 4096 bytes in the caller's
    /// memory. Checks `introspect { restore }`. Only while the domain is restoring.
    RestorePage = 68,
    /// `RDI` = domain id, `RSI` = address of a [`VcpuRecord`]. Checks `introspect { setvcpu }`.
    /// Only while the domain is restoring; the record is checked ([`VcpuProblem`] in `RDX`
    /// as `IntrospectError::BadVcpu as u64 | problem << 8`). Measures the restored domain
    /// (memory and vCPU digests) and makes it built: `DomainUnpause` then starts it.
    SetVcpu = 69,
    /// `RDI` = domain id. Checks `introspect { dirtylog }`. Starts (or restarts) tracking the
    /// pages the domain writes: its nested page tables are rebuilt with 4 KiB read-only leaves,
    /// and the first write to each page is recorded and made writable again. Refused for a
    /// domain holding channels or grants ([`IntrospectError::InFlight`]).
    DirtyStart = 70,
    /// `RDI` = domain id, `RSI` = address of a bitmap buffer the caller can write, `RDX` = its
    /// length in bytes (at least one bit per page: `memory_bytes / 4096 / 8`). Checks
    /// `introspect { dirtylog }`. Writes the bitmap of pages written since tracking started
    /// or since the last fetch (bit `p % 8` of byte `p / 8` for page `p`), clears it and
    /// write-protects those pages again. Value: the number of pages set.
    DirtyFetch = 71,
}

impl IntrospectCall {
    pub const ALL: [IntrospectCall; 8] = [
        IntrospectCall::TargetInfo,
        IntrospectCall::ReadPage,
        IntrospectCall::GetVcpu,
        IntrospectCall::RestoreCreate,
        IntrospectCall::RestorePage,
        IntrospectCall::SetVcpu,
        IntrospectCall::DirtyStart,
        IntrospectCall::DirtyFetch,
    ];

    pub const fn from_raw(raw: u64) -> Option<IntrospectCall> {
        Some(match raw {
            64 => IntrospectCall::TargetInfo,
            65 => IntrospectCall::ReadPage,
            66 => IntrospectCall::GetVcpu,
            67 => IntrospectCall::RestoreCreate,
            68 => IntrospectCall::RestorePage,
            69 => IntrospectCall::SetVcpu,
            70 => IntrospectCall::DirtyStart,
            71 => IntrospectCall::DirtyFetch,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            IntrospectCall::TargetInfo => "introspect_target_info",
            IntrospectCall::ReadPage => "checkpoint_read_page",
            IntrospectCall::GetVcpu => "introspect_get_vcpu",
            IntrospectCall::RestoreCreate => "restore_create",
            IntrospectCall::RestorePage => "restore_page",
            IntrospectCall::SetVcpu => "introspect_set_vcpu",
            IntrospectCall::DirtyStart => "dirty_log_start",
            IntrospectCall::DirtyFetch => "dirty_log_fetch",
        }
    }
}

/// Why an introspection call was refused (`RDX` with `Status::InvalidArgument`). Numbers start
/// at 32 so that they never collide with the lifecycle errors the same calls can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum IntrospectError {
    /// The target is running: pause it first (lifecycle `DomainPause`).
    Running = 32,
    /// A page index at or beyond the domain's memory.
    PageOutOfRange = 33,
    /// The vCPU record was refused (the [`VcpuProblem`] is in bits 8.. of `RDX`).
    BadVcpu = 34,
    /// The target has event channels or grants: they are not captured, so it is refused.
    InFlight = 35,
    /// The domain is not being restored (restore calls), or it is (capture calls).
    NotRestoring = 36,
    /// The target maps boot images (a window the restore could not recreate faithfully).
    HasWindows = 37,
    /// Dirty logging was not started for the domain.
    NotTracking = 38,
    /// The bitmap buffer is shorter than one bit per page.
    ShortBitmap = 39,
    /// The domain holds a PCI device or has (or serves) a vTPM: state a checkpoint does not
    /// capture, and mappings dirty logging would drop.
    Attached = 40,
}

impl IntrospectError {
    pub const ALL: [IntrospectError; 9] = [
        IntrospectError::Running,
        IntrospectError::PageOutOfRange,
        IntrospectError::BadVcpu,
        IntrospectError::InFlight,
        IntrospectError::NotRestoring,
        IntrospectError::HasWindows,
        IntrospectError::NotTracking,
        IntrospectError::ShortBitmap,
        IntrospectError::Attached,
    ];

    /// The error in `RDX`'s low byte, if it is one of these.
    pub const fn from_raw(raw: u64) -> Option<IntrospectError> {
        let low = raw & 0xff;
        if low < 32 || low >= 32 + Self::ALL.len() as u64 {
            return None;
        }
        Some(Self::ALL[(low - 32) as usize])
    }

    pub const fn name(self) -> &'static str {
        match self {
            IntrospectError::Running => "target is running (pause it first)",
            IntrospectError::PageOutOfRange => "page index out of range",
            IntrospectError::BadVcpu => "vCPU record refused",
            IntrospectError::InFlight => "event channels or grants in flight",
            IntrospectError::NotRestoring => "domain is not (or is) being restored",
            IntrospectError::HasWindows => "domain maps boot images",
            IntrospectError::NotTracking => "dirty logging not started",
            IntrospectError::ShortBitmap => "bitmap shorter than one bit per page",
            IntrospectError::Attached => "domain holds a device or a vTPM",
        }
    }
}

/// Why a [`VcpuRecord`] was refused (`RDX >> 8` with [`IntrospectError::BadVcpu`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum VcpuProblem {
    /// `version` is not [`VcpuRecord::VERSION`].
    Version = 1,
    /// CR0 with a bit the `crwrite` rule refuses (or without PE/PG).
    Cr0 = 2,
    /// CR4 with a bit the `crwrite` rule refuses (or without PAE).
    Cr4 = 3,
    /// EFER other than long mode active with NXE (SVME, in particular, is the hypervisor's).
    Efer = 4,
    /// A non-canonical RIP, or an address register (segment base, descriptor table, syscall
    /// target) that is not canonical.
    NotCanonical = 5,
    /// RFLAGS with a reserved bit, or with IOPL or VM (no ports, no virtual-8086).
    Rflags = 6,
    /// A CS that is not 64-bit code (L set, D clear, present), or CPL other than CS.DPL.
    CodeSegment = 7,
    /// CR3 outside the domain's memory or with reserved low bits.
    Cr3 = 8,
    /// A PAT with a reserved memory type, or DR6/DR7 with reserved or breakpoint bits.
    Msr = 9,
    /// MXCSR with bits FXRSTOR would refuse (#GP), or a pending event other than the #GP the
    /// hypervisor injects.
    Fpu = 10,
}

impl VcpuProblem {
    pub const ALL: [VcpuProblem; 10] = [
        VcpuProblem::Version,
        VcpuProblem::Cr0,
        VcpuProblem::Cr4,
        VcpuProblem::Efer,
        VcpuProblem::NotCanonical,
        VcpuProblem::Rflags,
        VcpuProblem::CodeSegment,
        VcpuProblem::Cr3,
        VcpuProblem::Msr,
        VcpuProblem::Fpu,
    ];

    pub const fn from_raw(raw: u64) -> Option<VcpuProblem> {
        if raw == 0 || raw > Self::ALL.len() as u64 {
            return None;
        }
        Some(Self::ALL[(raw - 1) as usize])
    }

    /// The `RDX` detail of a refusal for this problem.
    pub const fn detail(self) -> u64 {
        IntrospectError::BadVcpu as u64 | (self as u64) << 8
    }
}

/// What [`IntrospectCall::TargetInfo`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct TargetInfo {
    pub domain_id: u32,
    /// A [`crate::lifecycle::DomainState`] value.
    pub state: u32,
    pub memory_bytes: u64,
    pub priority: u32,
    /// 1 if the domain holds event channels or grants (capture is then refused).
    pub in_flight: u32,
    pub name: [u8; NAME_LEN],
    pub label: [u8; NAME_LEN],
}

impl TargetInfo {
    pub const SIZE: usize = size_of::<TargetInfo>();

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut w = Writer {
            out: [0u8; Self::SIZE],
            at: 0,
        };
        w.u32(self.domain_id);
        w.u32(self.state);
        w.u64(self.memory_bytes);
        w.u32(self.priority);
        w.u32(self.in_flight);
        w.bytes(&self.name);
        w.bytes(&self.label);
        w.out
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut r = Reader { inp: b, at: 0 };
        TargetInfo {
            domain_id: r.u32(),
            state: r.u32(),
            memory_bytes: r.u64(),
            priority: r.u32(),
            in_flight: r.u32(),
            name: r.array(),
            label: r.array(),
        }
    }
}

/// A segment register as the VMCB holds it (`attrib`: the packed 12-bit form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct SegmentRecord {
    pub selector: u16,
    pub attrib: u16,
    pub limit: u32,
    pub base: u64,
}

/// Index of each segment in [`VcpuRecord::segments`].
pub mod seg {
    pub const ES: usize = 0;
    pub const CS: usize = 1;
    pub const SS: usize = 2;
    pub const DS: usize = 3;
    pub const FS: usize = 4;
    pub const GS: usize = 5;
    pub const GDTR: usize = 6;
    pub const LDTR: usize = 7;
    pub const IDTR: usize = 8;
    pub const TR: usize = 9;
    pub const COUNT: usize = 10;
}

/// Index of each general register in [`VcpuRecord::gprs`] (the encoding's register numbers).
pub mod gpr {
    pub const RAX: usize = 0;
    pub const RCX: usize = 1;
    pub const RDX: usize = 2;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RBP: usize = 5;
    pub const RSI: usize = 6;
    pub const RDI: usize = 7;
    // R8..R15 are 8..15.
}

/// A domain's vCPU as [`IntrospectCall::GetVcpu`] reads it and [`IntrospectCall::SetVcpu`]
/// sets it: the general registers, the VMCB's state-save fields a domain can change, the
/// x87/SSE FXSAVE area, and the domain's TSC (the time it sees: its TSC stands still while it
/// is out, and a restored domain's TSC continues from this value). Serialised little-endian in
/// field order, [`Self::SIZE`] bytes, versioned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C)]
pub struct VcpuRecord {
    /// [`Self::VERSION`].
    pub version: u32,
    /// Current privilege level (the VMCB's CPL).
    pub cpl: u32,
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15 ([`gpr`]).
    pub gprs: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    /// EFER as the domain reads it (without SVME).
    pub efer: u64,
    pub dr6: u64,
    pub dr7: u64,
    pub pat: u64,
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub sfmask: u64,
    pub kernel_gs_base: u64,
    /// The domain's TSC when it was captured.
    pub tsc: u64,
    /// An event the hypervisor was about to inject (the VMCB's EVENT_INJ; 0 for none).
    pub event_inj: u64,
    pub segments: [SegmentRecord; seg::COUNT],
    /// The FXSAVE image (x87, MXCSR, XMM0-15).
    pub fx: [u8; 512],
}

impl Default for VcpuRecord {
    fn default() -> Self {
        VcpuRecord {
            version: Self::VERSION,
            cpl: 0,
            gprs: [0; 16],
            rip: 0,
            rflags: 2,
            cr0: 0,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            efer: 0,
            dr6: 0,
            dr7: 0,
            pat: 0,
            star: 0,
            lstar: 0,
            cstar: 0,
            sfmask: 0,
            kernel_gs_base: 0,
            tsc: 0,
            event_inj: 0,
            segments: [SegmentRecord::default(); seg::COUNT],
            fx: [0; 512],
        }
    }
}

impl VcpuRecord {
    pub const VERSION: u32 = 1;
    /// 8 + 16 * 8 + 17 * 8 + 10 * 16 + 512.
    pub const SIZE: usize = 8 + 16 * 8 + 17 * 8 + seg::COUNT * 16 + 512;

    /// MXCSR in the FXSAVE image (bytes 24..28).
    pub fn mxcsr(&self) -> u32 {
        u32::from_le_bytes([self.fx[24], self.fx[25], self.fx[26], self.fx[27]])
    }

    fn words(&self) -> [u64; 17] {
        [
            self.rip,
            self.rflags,
            self.cr0,
            self.cr2,
            self.cr3,
            self.cr4,
            self.efer,
            self.dr6,
            self.dr7,
            self.pat,
            self.star,
            self.lstar,
            self.cstar,
            self.sfmask,
            self.kernel_gs_base,
            self.tsc,
            self.event_inj,
        ]
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut w = Writer {
            out: [0u8; Self::SIZE],
            at: 0,
        };
        w.u32(self.version);
        w.u32(self.cpl);
        for g in self.gprs {
            w.u64(g);
        }
        for v in self.words() {
            w.u64(v);
        }
        for s in &self.segments {
            w.bytes(&s.selector.to_le_bytes());
            w.bytes(&s.attrib.to_le_bytes());
            w.u32(s.limit);
            w.u64(s.base);
        }
        w.bytes(&self.fx);
        w.out
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut r = Reader { inp: b, at: 0 };
        let version = r.u32();
        let cpl = r.u32();
        let mut gprs = [0u64; 16];
        for g in &mut gprs {
            *g = r.u64();
        }
        let mut v = [0u64; 17];
        for x in &mut v {
            *x = r.u64();
        }
        let mut segments = [SegmentRecord::default(); seg::COUNT];
        for s in &mut segments {
            let sel: [u8; 2] = r.array();
            let attr: [u8; 2] = r.array();
            *s = SegmentRecord {
                selector: u16::from_le_bytes(sel),
                attrib: u16::from_le_bytes(attr),
                limit: r.u32(),
                base: r.u64(),
            };
        }
        let fx = r.array();
        VcpuRecord {
            version,
            cpl,
            gprs,
            rip: v[0],
            rflags: v[1],
            cr0: v[2],
            cr2: v[3],
            cr3: v[4],
            cr4: v[5],
            efer: v[6],
            dr6: v[7],
            dr7: v[8],
            pat: v[9],
            star: v[10],
            lstar: v[11],
            cstar: v[12],
            sfmask: v[13],
            kernel_gs_base: v[14],
            tsc: v[15],
            event_inj: v[16],
            segments,
            fx,
        }
    }
}

struct Writer<const N: usize> {
    out: [u8; N],
    at: usize,
}

impl<const N: usize> Writer<N> {
    fn bytes(&mut self, b: &[u8]) {
        self.out[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

struct Reader<'a> {
    inp: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn array<const M: usize>(&mut self) -> [u8; M] {
        let mut b = [0u8; M];
        b.copy_from_slice(&self.inp[self.at..self.at + M]);
        self.at += M;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_stay_in_the_introspection_range() {
        for c in IntrospectCall::ALL {
            assert_eq!(IntrospectCall::from_raw(c as u64), Some(c));
            assert!((64..80).contains(&(c as u64)), "{}", c.name());
        }
        assert_eq!(IntrospectCall::from_raw(63), None);
        assert_eq!(IntrospectCall::from_raw(72), None);
        for e in IntrospectError::ALL {
            assert_eq!(IntrospectError::from_raw(e as u64), Some(e));
        }
        for p in VcpuProblem::ALL {
            assert_eq!(VcpuProblem::from_raw(p as u64), Some(p));
            assert_eq!(
                IntrospectError::from_raw(p.detail()),
                Some(IntrospectError::BadVcpu)
            );
            assert_eq!(VcpuProblem::from_raw(p.detail() >> 8), Some(p));
        }
        // Lifecycle errors (1..=15) are not introspection errors.
        assert_eq!(IntrospectError::from_raw(3), None);
    }

    #[test]
    fn records_round_trip_through_their_bytes() {
        let mut v = VcpuRecord::default();
        for (i, g) in v.gprs.iter_mut().enumerate() {
            *g = 0x1111_0000_0000_0000 * (i as u64 % 15 + 1) + i as u64;
        }
        v.rip = 0x20_1234;
        v.tsc = u64::MAX - 5;
        v.event_inj = 0x8000_0b0d;
        v.segments[seg::TR] = SegmentRecord {
            selector: 0x28,
            attrib: 0x8b,
            limit: 0x67,
            base: 0xffff_8000_0000_1000,
        };
        v.fx[24] = 0x80;
        v.fx[25] = 0x1f;
        v.fx[511] = 0xee;
        let b = v.to_bytes();
        assert_eq!(VcpuRecord::from_bytes(&b), v);
        assert_eq!(v.mxcsr(), 0x1f80);
        // Field order is the layout: the version first, the FXSAVE image last.
        assert_eq!(&b[..4], &VcpuRecord::VERSION.to_le_bytes());
        assert_eq!(b[VcpuRecord::SIZE - 1], 0xee);

        let t = TargetInfo {
            domain_id: 3,
            state: 2,
            memory_bytes: 4 << 20,
            priority: 9,
            in_flight: 1,
            name: crate::to_fixed("counter"),
            label: crate::to_fixed("counter_t"),
        };
        assert_eq!(TargetInfo::from_bytes(&t.to_bytes()), t);
    }
}
