//! Inter-domain hypercalls (event channels, grants, audit read): numbers, argument words,
//! error codes, and the layout constants both sides must agree on.
//!
//! These calls use the numbers `IPC_BASE..` so the base [`crate::Call`] set can grow without
//! collisions. Every one is checked by the MAC policy before it acts (class and permission per
//! call are listed on each variant). On failure `RAX` is a [`crate::Status`]: `Denied` when the
//! policy refused, `InvalidArgument` when the request itself is wrong, in which case `RDX`
//! holds an [`IpcError`] saying exactly what was wrong.

/// First IPC call number.
pub const IPC_BASE: u64 = 16;

/// Inter-domain hypercall numbers (`RAX`). Arguments in `RDI`, `RSI`, `RDX`, `R10`, `R8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum IpcCall {
    /// `RDI` = remote domain id. Allocates an unbound port only that domain may bind.
    /// Checks `evtchn { alloc }` caller -> remote. Value: the port.
    EvtchnAlloc = 16,
    /// `RDI` = remote domain id, `RSI` = its unbound port. Checks `evtchn { bind }` caller ->
    /// remote (and the port must have been allocated for the caller). Value: the local port.
    EvtchnBind = 17,
    /// `RDI` = local port. Checks `evtchn { send }` caller -> peer. Sets the peer's pending bit.
    EvtchnSend = 18,
    /// `RDI` = local port. Checks `evtchn { close }` caller -> peer.
    EvtchnClose = 19,
    /// `RDI` = port mask (bit i = port i), `RSI` = timeout in microseconds (`u64::MAX` = none).
    /// Returns at once if a selected port is pending, else blocks. Checks `domain { block }`
    /// on itself. Value: the pending ports of the mask, now cleared (0 = timed out).
    EvtchnWait = 20,
    /// `RDI` = grantee domain id, `RSI` = guest frame number of the caller's page, `RDX` =
    /// [`GRANT_READ_ONLY`] or [`GRANT_READ_WRITE`]. Checks `grant { offer }` caller -> grantee.
    /// Value: the grant reference.
    GrantOffer = 21,
    /// `RDI` = granter domain id, `RSI` = grant reference, `RDX` = guest-physical address in
    /// the grant window, `R10` = access wanted. Checks `grant { map_ro }` or `{ map_rw }`
    /// caller -> granter.
    GrantMap = 22,
    /// `RDI` = granter domain id, `RSI` = grant reference. Checks `grant { unmap }` caller ->
    /// granter.
    GrantUnmap = 23,
    /// `RDI` = grant reference. Checks `grant { revoke }` caller -> grantee. Refused with
    /// [`IpcError::StillMapped`] while the grantee has the page mapped.
    GrantRevoke = 24,
    /// `RDI` = buffer address, `RSI` = its length, `RDX` = first sequence number wanted.
    /// Checks `hypervisor { audit_read }`. Writes an [`AUDIT_HEADER_LEN`]-byte header then
    /// whole [`AUDIT_RECORD_LEN`]-byte records (format: `warden_ipc::audit`). Value: records written.
    AuditRead = 25,
}

impl IpcCall {
    pub const ALL: [IpcCall; 10] = [
        IpcCall::EvtchnAlloc,
        IpcCall::EvtchnBind,
        IpcCall::EvtchnSend,
        IpcCall::EvtchnClose,
        IpcCall::EvtchnWait,
        IpcCall::GrantOffer,
        IpcCall::GrantMap,
        IpcCall::GrantUnmap,
        IpcCall::GrantRevoke,
        IpcCall::AuditRead,
    ];

    pub const fn from_raw(raw: u64) -> Option<IpcCall> {
        if raw < IPC_BASE || raw >= IPC_BASE + Self::ALL.len() as u64 {
            return None;
        }
        Some(Self::ALL[(raw - IPC_BASE) as usize])
    }

    /// The name used in diagnostics and audit records.
    pub const fn name(self) -> &'static str {
        match self {
            IpcCall::EvtchnAlloc => "evtchn_alloc",
            IpcCall::EvtchnBind => "evtchn_bind",
            IpcCall::EvtchnSend => "evtchn_send",
            IpcCall::EvtchnClose => "evtchn_close",
            IpcCall::EvtchnWait => "evtchn_wait",
            IpcCall::GrantOffer => "grant_offer",
            IpcCall::GrantMap => "grant_map",
            IpcCall::GrantUnmap => "grant_unmap",
            IpcCall::GrantRevoke => "grant_revoke",
            IpcCall::AuditRead => "audit_read",
        }
    }
}

/// Grant access flags.
pub const GRANT_READ_ONLY: u64 = 0;
pub const GRANT_READ_WRITE: u64 = 1;

/// Ports per domain (port 0 is never allocated); the pending mask is one `u64`.
pub const EVTCHN_PORTS: u64 = 64;
/// Guest-physical window where granted pages are mapped: `GRANT_WINDOW + i * 4096` for
/// `i < GRANT_WINDOW_PAGES`. It lies above every domain's memory and below 4 GiB, so the
/// domain's identity-mapped page tables already cover it.
pub const GRANT_WINDOW: u64 = 0xC000_0000;
pub const GRANT_WINDOW_PAGES: u64 = 64;

// The window lies above the largest domain (256 MiB, the manifest limit) and below 4 GiB.
const _: () = assert!(GRANT_WINDOW >= 256 << 20 && GRANT_WINDOW + GRANT_WINDOW_PAGES * 4096 <= 4 << 30);

/// A page shared between two domains through a grant: plain atomic words, so that both sides
/// may access it concurrently from safe code. The granter declares one as a page-aligned
/// `static` (its address, divided by 4096, is the frame it offers); the grantee sees the same
/// frame at its mapping address.
#[derive(Debug)]
#[repr(C, align(4096))]
pub struct SharedPage {
    pub words: [core::sync::atomic::AtomicU64; 512],
}

impl SharedPage {
    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

    pub const fn new() -> Self {
        SharedPage { words: [Self::ZERO; 512] }
    }
}

impl Default for SharedPage {
    fn default() -> Self {
        Self::new()
    }
}

/// Audit-read buffer layout.
pub const AUDIT_HEADER_LEN: usize = 32;
pub const AUDIT_RECORD_LEN: usize = 96;

/// Why an IPC request was wrong (`RDX` when `RAX` is `InvalidArgument`). Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum IpcError {
    /// The domain id is out of range, the caller's own, or not running.
    BadDomain = 1,
    /// Channels and grants need two different domains.
    SelfPeer = 2,
    /// Port 0 or a port number beyond [`EVTCHN_PORTS`].
    BadPort = 3,
    /// The port is not allocated.
    PortNotInUse = 4,
    /// The port belongs to a channel the caller is not an end of (bound already, or allocated
    /// for another domain).
    ForeignPort = 5,
    /// Send on a port nobody has bound yet.
    NotBound = 6,
    /// The other end closed the channel.
    PeerClosed = 7,
    NoFreePort = 8,
    /// A grant reference that was never handed out (forged).
    BadRef = 9,
    /// A grant reference that was revoked.
    StaleRef = 10,
    /// A grant reference naming another grantee.
    ForeignRef = 11,
    /// A read-write mapping of a read-only grant.
    AccessExceedsGrant = 12,
    AlreadyMapped = 13,
    NotMapped = 14,
    /// Revoke while the grantee still maps the page (revoke never forces an unmap).
    StillMapped = 15,
    /// The offered frame is not the caller's memory.
    BadFrame = 16,
    /// The map address is not a page of the grant window.
    BadMapAddress = 17,
    /// The caller already maps something at that address.
    MapAddressInUse = 18,
    NoFreeRef = 19,
    /// An access flag word other than read-only / read-write.
    BadFlags = 20,
    /// A buffer pointer or length is unusable.
    BadBuffer = 21,
}

impl IpcError {
    pub const ALL: [IpcError; 21] = [
        IpcError::BadDomain,
        IpcError::SelfPeer,
        IpcError::BadPort,
        IpcError::PortNotInUse,
        IpcError::ForeignPort,
        IpcError::NotBound,
        IpcError::PeerClosed,
        IpcError::NoFreePort,
        IpcError::BadRef,
        IpcError::StaleRef,
        IpcError::ForeignRef,
        IpcError::AccessExceedsGrant,
        IpcError::AlreadyMapped,
        IpcError::NotMapped,
        IpcError::StillMapped,
        IpcError::BadFrame,
        IpcError::BadMapAddress,
        IpcError::MapAddressInUse,
        IpcError::NoFreeRef,
        IpcError::BadFlags,
        IpcError::BadBuffer,
    ];

    pub const fn from_raw(raw: u64) -> Option<IpcError> {
        if raw == 0 || raw > Self::ALL.len() as u64 {
            return None;
        }
        Some(Self::ALL[(raw - 1) as usize])
    }

    pub const fn name(self) -> &'static str {
        match self {
            IpcError::BadDomain => "bad domain",
            IpcError::SelfPeer => "peer is the caller",
            IpcError::BadPort => "bad port",
            IpcError::PortNotInUse => "port not in use",
            IpcError::ForeignPort => "foreign port",
            IpcError::NotBound => "port not bound",
            IpcError::PeerClosed => "peer closed",
            IpcError::NoFreePort => "no free port",
            IpcError::BadRef => "bad grant reference",
            IpcError::StaleRef => "stale grant reference",
            IpcError::ForeignRef => "grant is for another domain",
            IpcError::AccessExceedsGrant => "access exceeds grant",
            IpcError::AlreadyMapped => "already mapped",
            IpcError::NotMapped => "not mapped",
            IpcError::StillMapped => "still mapped",
            IpcError::BadFrame => "bad frame",
            IpcError::BadMapAddress => "bad map address",
            IpcError::MapAddressInUse => "map address in use",
            IpcError::NoFreeRef => "no free grant reference",
            IpcError::BadFlags => "bad flags",
            IpcError::BadBuffer => "bad buffer",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipc_numbers_round_trip_and_do_not_overlap_base_calls() {
        for (i, c) in IpcCall::ALL.iter().enumerate() {
            assert_eq!(*c as u64, IPC_BASE + i as u64, "{c:?}");
            assert_eq!(IpcCall::from_raw(*c as u64), Some(*c));
            assert_eq!(crate::Call::from_raw(*c as u64), None, "{c:?} collides with a base call");
        }
        assert_eq!(IpcCall::from_raw(IPC_BASE - 1), None);
        assert_eq!(IpcCall::from_raw(IPC_BASE + IpcCall::ALL.len() as u64), None);
        assert_eq!(IpcCall::from_raw(u64::MAX), None);
    }

    #[test]
    fn error_codes_round_trip() {
        for (i, e) in IpcError::ALL.iter().enumerate() {
            assert_eq!(*e as u64, i as u64 + 1);
            assert_eq!(IpcError::from_raw(*e as u64), Some(*e));
        }
        assert_eq!(IpcError::from_raw(0), None);
        assert_eq!(IpcError::from_raw(IpcError::ALL.len() as u64 + 1), None);
    }
}
