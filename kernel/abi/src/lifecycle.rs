//! Domain lifecycle and host-management hypercalls (numbers `LIFECYCLE_BASE..`): list, query,
//! create, build, transition, pause/unpause, set priority, destroy, host shutdown and physical
//! information, with the `#[repr(C)]` records they exchange.
//!
//! Every call is checked by the MAC policy before it acts (class and permission per call are
//! listed on each variant; the target of a `domain` permission is the target domain's current
//! label). On failure `RAX` is a [`crate::Status`]: `Denied` when the policy refused (the
//! decision is audited as the policy says), `InvalidArgument` when the request itself is wrong,
//! in which case `RDX` holds a [`LifecycleError`] saying exactly what was wrong, `BadAddress` /
//! `BadLength` for unusable buffers. A refused call changes nothing.
//!
//! # Life of a created domain
//! `DomainCreate` (state [`DomainState::Building`], under a *build* label) → `DomainBuild`
//! (image loaded, start state set, measured) → optionally `DomainTransition` (build label →
//! run label, as the policy's `transition` rules allow; measured) → `DomainUnpause` (Chinese
//! Wall admission; the domain first runs) → `DomainPause` / `DomainUnpause` … → the domain
//! shuts down or `DomainDestroy` ends it ([`DomainState::Ended`]); its memory returns to the
//! hypervisor. Domain ids are never reused within one run, so a stale id names an ended
//! domain, never another one.

use core::mem::{offset_of, size_of};

use crate::{ARGS_LEN, NAME_LEN};

/// First lifecycle call number.
pub const LIFECYCLE_BASE: u64 = 32;

/// Lifecycle hypercall numbers (`RAX`). Arguments in `RDI`, `RSI`, `RDX`, `R10`, `R8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum LifecycleCall {
    /// `RDI` = buffer address, `RSI` = its length. Writes one whole [`DomainStatus`] record
    /// per domain the caller may `domain { getinfo }` (the others are skipped, not revealed;
    /// the check is audited as the policy says). Value: the number of records there are to
    /// write; only `length / DomainStatus::SIZE` of them are written if the buffer is smaller.
    DomainList = 32,
    /// `RDI` = domain id, `RSI` = address of a [`DomainStatus`]-sized buffer. Checks
    /// `domain { getinfo }` caller -> domain.
    DomainGetInfo = 33,
    /// `RDI` = address of a [`CreateRequest`]. Checks `domain { create }` caller -> the build
    /// label, and the Chinese Wall (a conflicting label is refused with
    /// [`LifecycleError::WallConflict`]). Allocates the memory. Value: the new domain id; the
    /// domain is in [`DomainState::Building`].
    DomainCreate = 34,
    /// `RDI` = domain id, `RSI` = address of an ELF64 image in the caller's memory (or its
    /// boot-image window), `RDX` = its length (at most [`IMAGE_MAX`]), `R10`/`R8` = address and
    /// length of an argument string replacing the create request's (length 0: keep it; at most
    /// `ARGS_LEN - 1` bytes of UTF-8). Checks `domain { build }` caller -> domain. Loads the
    /// image with the strict ELF loader, sets the start state and measures the domain (see
    /// `docs/domains.md`). Only once per domain, while it is `Building`.
    DomainBuild = 35,
    /// `RDI` = domain id, `RSI` = address of the run label (UTF-8, no NUL), `RDX` = its length
    /// (at most [`NAME_LEN`] - 1). Checks `domain { transition }` caller -> domain and the
    /// policy's `transition` rule from the domain's label to the run label. Only while
    /// `Building`; measured.
    DomainTransition = 36,
    /// `RDI` = domain id. Checks `domain { unpause }` caller -> domain. Starts a built domain
    /// (Chinese Wall admission of its label; a conflict is [`LifecycleError::WallConflict`])
    /// or resumes a paused one.
    DomainUnpause = 37,
    /// `RDI` = domain id. Checks `domain { pause }` caller -> domain. The domain stops being
    /// scheduled (a blocked domain's timeout still counts) until it is unpaused.
    DomainPause = 38,
    /// `RDI` = domain id, `RSI` = priority 0..=255 (higher runs first). Checks
    /// `domain { setpriority }` caller -> domain.
    DomainSetPriority = 39,
    /// `RDI` = domain id. Checks `domain { destroy }` caller -> domain. Ends the domain; its
    /// memory, channels and grants are released.
    DomainDestroy = 40,
    /// No arguments. Checks `hypervisor { shutdown }` caller -> the hypervisor label. Ends the
    /// run: the hypervisor prints each domain's verdict and leaves. Does not return on success.
    HostShutdown = 41,
    /// `RDI` = address of a [`PhysInfo`]-sized buffer. Checks `hypervisor { physinfo }`.
    PhysInfo = 42,
}

impl LifecycleCall {
    pub const ALL: [LifecycleCall; 11] = [
        LifecycleCall::DomainList,
        LifecycleCall::DomainGetInfo,
        LifecycleCall::DomainCreate,
        LifecycleCall::DomainBuild,
        LifecycleCall::DomainTransition,
        LifecycleCall::DomainUnpause,
        LifecycleCall::DomainPause,
        LifecycleCall::DomainSetPriority,
        LifecycleCall::DomainDestroy,
        LifecycleCall::HostShutdown,
        LifecycleCall::PhysInfo,
    ];

    pub const fn from_raw(raw: u64) -> Option<LifecycleCall> {
        if raw < LIFECYCLE_BASE || raw >= LIFECYCLE_BASE + Self::ALL.len() as u64 {
            return None;
        }
        Some(Self::ALL[(raw - LIFECYCLE_BASE) as usize])
    }

    /// The name used in diagnostics and audit records.
    pub const fn name(self) -> &'static str {
        match self {
            LifecycleCall::DomainList => "domain_list",
            LifecycleCall::DomainGetInfo => "domain_getinfo",
            LifecycleCall::DomainCreate => "domain_create",
            LifecycleCall::DomainBuild => "domain_build",
            LifecycleCall::DomainTransition => "domain_transition",
            LifecycleCall::DomainUnpause => "domain_unpause",
            LifecycleCall::DomainPause => "domain_pause",
            LifecycleCall::DomainSetPriority => "domain_setpriority",
            LifecycleCall::DomainDestroy => "domain_destroy",
            LifecycleCall::HostShutdown => "host_shutdown",
            LifecycleCall::PhysInfo => "physinfo",
        }
    }
}

/// Largest ELF image `DomainBuild` accepts (the hypervisor copies it into its 4 MiB heap to
/// validate it before loading; a larger length is `BadLength`).
pub const IMAGE_MAX: u64 = 2 << 20;
/// Boot images a domain may read (the manifest key `images=a;b`, a mechanism for management
/// domains that build others): image `k` of the list is mapped read-only, never executable, at
/// `IMAGE_WINDOW + k * IMAGE_SLOT`, and listed in the [`ImageDirectory`] at
/// [`IMAGE_DIRECTORY_GPA`]. Every boot module is measured at launch, these included.
/// `DomainBuild` accepts an image address in this window as well as in the caller's memory.
pub const IMAGE_WINDOW: u64 = 0x8000_0000;
pub const IMAGE_SLOT: u64 = IMAGE_MAX;
pub const IMAGE_SLOTS: usize = 8;
/// The image directory lies in the second half of the (read-only) start-info page.
pub const IMAGE_DIRECTORY_GPA: u64 = 0x1800;

// The window lies above the largest domain (256 MiB) and below the grant window.
const _: () = assert!(
    IMAGE_WINDOW >= 256 << 20 && IMAGE_WINDOW + IMAGE_SLOTS as u64 * IMAGE_SLOT <= crate::ipc::GRANT_WINDOW
);

/// One readable boot image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct ImageEntry {
    /// The module's `name=`, NUL-padded.
    pub name: [u8; NAME_LEN],
    /// Where it is mapped, and its exact length in bytes.
    pub gpa: u64,
    pub len: u64,
}

/// The boot images a domain may read ([`IMAGE_WINDOW`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct ImageDirectory {
    /// Entries in use (at most [`IMAGE_SLOTS`]).
    pub count: u32,
    pub reserved: u32,
    pub entries: [ImageEntry; IMAGE_SLOTS],
}

impl ImageDirectory {
    pub const SIZE: usize = size_of::<ImageDirectory>();

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(&mut o, 0, &self.count.to_le_bytes());
        put(&mut o, 4, &self.reserved.to_le_bytes());
        for (i, e) in self.entries.iter().enumerate() {
            let at = 8 + i * size_of::<ImageEntry>();
            put(&mut o, at + offset_of!(ImageEntry, name), &e.name);
            put(&mut o, at + offset_of!(ImageEntry, gpa), &e.gpa.to_le_bytes());
            put(&mut o, at + offset_of!(ImageEntry, len), &e.len.to_le_bytes());
        }
        o
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut d = ImageDirectory {
            count: u32::from_le_bytes(get(b, 0)),
            reserved: u32::from_le_bytes(get(b, 4)),
            ..ImageDirectory::default()
        };
        for (i, e) in d.entries.iter_mut().enumerate() {
            let at = 8 + i * size_of::<ImageEntry>();
            e.name = get(b, at + offset_of!(ImageEntry, name));
            e.gpa = u64::from_le_bytes(get(b, at + offset_of!(ImageEntry, gpa)));
            e.len = u64::from_le_bytes(get(b, at + offset_of!(ImageEntry, len)));
        }
        d
    }

    /// The entries in use.
    pub fn images(&self) -> &[ImageEntry] {
        &self.entries[..(self.count as usize).min(IMAGE_SLOTS)]
    }

    /// The image called `name`.
    pub fn find(&self, name: &str) -> Option<&ImageEntry> {
        self.images().iter().find(|e| crate::fixed_str(&e.name) == name)
    }
}

const _: () = assert!(ImageDirectory::SIZE == 8 + IMAGE_SLOTS * (NAME_LEN + 16));
const _: () = assert!(
    IMAGE_DIRECTORY_GPA + ImageDirectory::SIZE as u64 <= 0x2000
        && IMAGE_DIRECTORY_GPA >= 0x1000 + crate::StartInfo::SIZE as u64
);

/// Memory bounds of a created domain, in MiB (the boot manifest's bounds).
pub const MIN_MEMORY_MIB: u32 = 3;
pub const MAX_MEMORY_MIB: u32 = 256;

/// Where a domain is in its life ([`DomainStatus::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum DomainState {
    /// Created, not yet started (being built, or held back by the Chinese Wall).
    Building = 0,
    /// Stopped by management until unpaused.
    Paused = 1,
    /// Eligible to run (or running: the caller sees itself this way).
    Runnable = 2,
    /// Waiting for an event or a timeout.
    Blocked = 3,
    /// Ended; [`DomainStatus::end`] says how. Never runs again.
    Ended = 4,
}

impl DomainState {
    pub const ALL: [DomainState; 5] = [
        DomainState::Building,
        DomainState::Paused,
        DomainState::Runnable,
        DomainState::Blocked,
        DomainState::Ended,
    ];

    pub const fn from_raw(raw: u32) -> Option<DomainState> {
        if raw as usize >= Self::ALL.len() {
            return None;
        }
        Some(Self::ALL[raw as usize])
    }

    pub const fn name(self) -> &'static str {
        match self {
            DomainState::Building => "building",
            DomainState::Paused => "paused",
            DomainState::Runnable => "runnable",
            DomainState::Blocked => "blocked",
            DomainState::Ended => "ended",
        }
    }
}

/// How a domain ended ([`DomainStatus::end`]); `None` while it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum EndReason {
    None = 0,
    /// It shut itself down with reason "done".
    Done = 1,
    /// It shut itself down with reason "failure" or "panic".
    Failure = 2,
    /// The hypervisor stopped it (a containment violation, printed on the console).
    Stopped = 3,
    /// `DomainDestroy` ended it.
    Destroyed = 4,
    /// It never ran: its construction or admission was refused.
    Refused = 5,
}

impl EndReason {
    pub const ALL: [EndReason; 6] = [
        EndReason::None,
        EndReason::Done,
        EndReason::Failure,
        EndReason::Stopped,
        EndReason::Destroyed,
        EndReason::Refused,
    ];

    pub const fn from_raw(raw: u32) -> Option<EndReason> {
        if raw as usize >= Self::ALL.len() {
            return None;
        }
        Some(Self::ALL[raw as usize])
    }

    pub const fn name(self) -> &'static str {
        match self {
            EndReason::None => "-",
            EndReason::Done => "done",
            EndReason::Failure => "failure",
            EndReason::Stopped => "stopped",
            EndReason::Destroyed => "destroyed",
            EndReason::Refused => "refused",
        }
    }
}

/// One domain as `DomainList` and `DomainGetInfo` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct DomainStatus {
    pub domain_id: u32,
    /// A [`DomainState`].
    pub state: u32,
    pub priority: u32,
    /// An [`EndReason`].
    pub end: u32,
    /// Memory the domain holds (0 once it has ended: the memory went back to the hypervisor).
    pub memory_bytes: u64,
    /// Timer ticks (1 ms) the domain has run for: its progress; it stops while paused.
    pub cpu_ticks: u64,
    /// VM exits the domain has caused.
    pub exits: u64,
    pub name: [u8; NAME_LEN],
    /// The domain's current label (the build label until a transition).
    pub label: [u8; NAME_LEN],
}

/// What `DomainCreate` reads from the caller's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct CreateRequest {
    /// `[a-z0-9_-]`, 1..=31 bytes, NUL-padded.
    pub name: [u8; NAME_LEN],
    /// The build label (a domain type of the policy), NUL-padded.
    pub label: [u8; NAME_LEN],
    /// [`MIN_MEMORY_MIB`]..=[`MAX_MEMORY_MIB`].
    pub memory_mib: u32,
    /// 0..=255.
    pub priority: u32,
    /// The argument string handed to the domain in its start-info page, NUL-padded.
    pub args: [u8; ARGS_LEN],
}

/// What `PhysInfo` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct PhysInfo {
    /// Memory the frame allocator manages, and how much of it is free now.
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Domains that have not ended, and the table's capacity (ids are never reused: this many
    /// domains can exist over one run, boot domains included).
    pub live_domains: u32,
    pub max_domains: u32,
}

/// Why a lifecycle request was wrong (`RDX` when `RAX` is `InvalidArgument`). Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum LifecycleError {
    /// No domain has this id.
    NoSuchDomain = 1,
    /// The domain has ended.
    Ended = 2,
    /// The call does not apply in the domain's current state (e.g. build twice, pause a domain
    /// still building, unpause an unbuilt one).
    WrongState = 3,
    /// The call may not name the caller itself (pause, destroy, build, transition).
    SelfTarget = 4,
    /// A name that is empty, too long or has characters outside `[a-z0-9_-]`.
    BadName = 5,
    /// A label the policy does not know as a domain type (or not UTF-8, too long).
    BadLabel = 6,
    /// Memory outside [`MIN_MEMORY_MIB`]..=[`MAX_MEMORY_MIB`].
    BadMemory = 7,
    /// A priority above 255.
    BadPriority = 8,
    /// The argument string is not UTF-8.
    BadArgs = 9,
    /// Not enough contiguous free memory for the domain.
    NoMemory = 10,
    /// The domain table is full.
    TableFull = 11,
    /// The ELF image was refused by the loader (or does not fit the domain's memory).
    BadImage = 12,
    /// The Chinese Wall forbids the label while a conflicting domain runs.
    WallConflict = 13,
    /// The policy has no `transition` rule from the domain's label to the requested one.
    NoTransition = 14,
    /// The platform TPM failed to measure the domain: it may not run.
    Unmeasured = 15,
}

impl LifecycleError {
    pub const ALL: [LifecycleError; 15] = [
        LifecycleError::NoSuchDomain,
        LifecycleError::Ended,
        LifecycleError::WrongState,
        LifecycleError::SelfTarget,
        LifecycleError::BadName,
        LifecycleError::BadLabel,
        LifecycleError::BadMemory,
        LifecycleError::BadPriority,
        LifecycleError::BadArgs,
        LifecycleError::NoMemory,
        LifecycleError::TableFull,
        LifecycleError::BadImage,
        LifecycleError::WallConflict,
        LifecycleError::NoTransition,
        LifecycleError::Unmeasured,
    ];

    pub const fn from_raw(raw: u64) -> Option<LifecycleError> {
        if raw == 0 || raw > Self::ALL.len() as u64 {
            return None;
        }
        Some(Self::ALL[(raw - 1) as usize])
    }

    pub const fn name(self) -> &'static str {
        match self {
            LifecycleError::NoSuchDomain => "no such domain",
            LifecycleError::Ended => "domain has ended",
            LifecycleError::WrongState => "wrong state",
            LifecycleError::SelfTarget => "target is the caller",
            LifecycleError::BadName => "bad name",
            LifecycleError::BadLabel => "bad label",
            LifecycleError::BadMemory => "bad memory size",
            LifecycleError::BadPriority => "bad priority",
            LifecycleError::BadArgs => "bad arguments",
            LifecycleError::NoMemory => "out of memory",
            LifecycleError::TableFull => "domain table full",
            LifecycleError::BadImage => "bad image",
            LifecycleError::WallConflict => "Chinese Wall conflict",
            LifecycleError::NoTransition => "no such transition",
            LifecycleError::Unmeasured => "measurement failed",
        }
    }
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

fn get<const N: usize>(inp: &[u8], at: usize) -> [u8; N] {
    let mut b = [0u8; N];
    b.copy_from_slice(&inp[at..at + N]);
    b
}

macro_rules! u32_at {
    ($b:expr, $t:ty, $f:ident) => {
        u32::from_le_bytes(get($b, offset_of!($t, $f)))
    };
}
macro_rules! u64_at {
    ($b:expr, $t:ty, $f:ident) => {
        u64::from_le_bytes(get($b, offset_of!($t, $f)))
    };
}

impl DomainStatus {
    pub const SIZE: usize = size_of::<DomainStatus>();

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(
            &mut o,
            offset_of!(DomainStatus, domain_id),
            &self.domain_id.to_le_bytes(),
        );
        put(
            &mut o,
            offset_of!(DomainStatus, state),
            &self.state.to_le_bytes(),
        );
        put(
            &mut o,
            offset_of!(DomainStatus, priority),
            &self.priority.to_le_bytes(),
        );
        put(
            &mut o,
            offset_of!(DomainStatus, end),
            &self.end.to_le_bytes(),
        );
        put(
            &mut o,
            offset_of!(DomainStatus, memory_bytes),
            &self.memory_bytes.to_le_bytes(),
        );
        put(
            &mut o,
            offset_of!(DomainStatus, cpu_ticks),
            &self.cpu_ticks.to_le_bytes(),
        );
        put(
            &mut o,
            offset_of!(DomainStatus, exits),
            &self.exits.to_le_bytes(),
        );
        put(&mut o, offset_of!(DomainStatus, name), &self.name);
        put(&mut o, offset_of!(DomainStatus, label), &self.label);
        o
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        DomainStatus {
            domain_id: u32_at!(b, DomainStatus, domain_id),
            state: u32_at!(b, DomainStatus, state),
            priority: u32_at!(b, DomainStatus, priority),
            end: u32_at!(b, DomainStatus, end),
            memory_bytes: u64_at!(b, DomainStatus, memory_bytes),
            cpu_ticks: u64_at!(b, DomainStatus, cpu_ticks),
            exits: u64_at!(b, DomainStatus, exits),
            name: get(b, offset_of!(DomainStatus, name)),
            label: get(b, offset_of!(DomainStatus, label)),
        }
    }

    /// The state, if the word is a known one.
    pub fn state(&self) -> Option<DomainState> {
        DomainState::from_raw(self.state)
    }

    /// The end reason, if the word is a known one.
    pub fn end(&self) -> Option<EndReason> {
        EndReason::from_raw(self.end)
    }

    pub fn name(&self) -> &str {
        crate::fixed_str(&self.name)
    }

    pub fn label(&self) -> &str {
        crate::fixed_str(&self.label)
    }
}

impl CreateRequest {
    pub const SIZE: usize = size_of::<CreateRequest>();

    /// A request from plain values (fields longer than their slots are truncated; the
    /// hypervisor then validates the result).
    pub fn new(name: &str, label: &str, memory_mib: u32, priority: u32, args: &str) -> Self {
        CreateRequest {
            name: crate::to_fixed(name),
            label: crate::to_fixed(label),
            memory_mib,
            priority,
            args: crate::to_fixed(args),
        }
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(&mut o, offset_of!(CreateRequest, name), &self.name);
        put(&mut o, offset_of!(CreateRequest, label), &self.label);
        put(
            &mut o,
            offset_of!(CreateRequest, memory_mib),
            &self.memory_mib.to_le_bytes(),
        );
        put(
            &mut o,
            offset_of!(CreateRequest, priority),
            &self.priority.to_le_bytes(),
        );
        put(&mut o, offset_of!(CreateRequest, args), &self.args);
        o
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        CreateRequest {
            name: get(b, offset_of!(CreateRequest, name)),
            label: get(b, offset_of!(CreateRequest, label)),
            memory_mib: u32_at!(b, CreateRequest, memory_mib),
            priority: u32_at!(b, CreateRequest, priority),
            args: get(b, offset_of!(CreateRequest, args)),
        }
    }
}

impl PhysInfo {
    pub const SIZE: usize = size_of::<PhysInfo>();

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(
            &mut o,
            offset_of!(PhysInfo, total_bytes),
            &self.total_bytes.to_le_bytes(),
        );
        put(
            &mut o,
            offset_of!(PhysInfo, free_bytes),
            &self.free_bytes.to_le_bytes(),
        );
        put(
            &mut o,
            offset_of!(PhysInfo, live_domains),
            &self.live_domains.to_le_bytes(),
        );
        put(
            &mut o,
            offset_of!(PhysInfo, max_domains),
            &self.max_domains.to_le_bytes(),
        );
        o
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        PhysInfo {
            total_bytes: u64_at!(b, PhysInfo, total_bytes),
            free_bytes: u64_at!(b, PhysInfo, free_bytes),
            live_domains: u32_at!(b, PhysInfo, live_domains),
            max_domains: u32_at!(b, PhysInfo, max_domains),
        }
    }
}

// The records are plain integers with no padding: every byte is a field.
const _: () = assert!(DomainStatus::SIZE == 4 * 4 + 3 * 8 + 2 * NAME_LEN);
const _: () = assert!(CreateRequest::SIZE == 2 * NAME_LEN + 2 * 4 + ARGS_LEN);
const _: () = assert!(PhysInfo::SIZE == 2 * 8 + 2 * 4);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_numbers_round_trip_and_do_not_overlap_other_ranges() {
        for (i, c) in LifecycleCall::ALL.iter().enumerate() {
            assert_eq!(*c as u64, LIFECYCLE_BASE + i as u64, "{c:?}");
            assert_eq!(LifecycleCall::from_raw(*c as u64), Some(*c));
            assert_eq!(
                crate::Call::from_raw(*c as u64),
                None,
                "{c:?} collides with a base call"
            );
            assert_eq!(
                crate::ipc::IpcCall::from_raw(*c as u64),
                None,
                "{c:?} collides with IPC"
            );
            // The agreed range for lifecycle/management is 32..48.
            assert!((32..48).contains(&(*c as u64)));
        }
        assert_eq!(LifecycleCall::from_raw(LIFECYCLE_BASE - 1), None);
        assert_eq!(
            LifecycleCall::from_raw(LIFECYCLE_BASE + LifecycleCall::ALL.len() as u64),
            None
        );
        assert_eq!(LifecycleCall::from_raw(u64::MAX), None);
    }

    #[test]
    fn error_codes_states_and_reasons_round_trip() {
        for (i, e) in LifecycleError::ALL.iter().enumerate() {
            assert_eq!(*e as u64, i as u64 + 1);
            assert_eq!(LifecycleError::from_raw(*e as u64), Some(*e));
        }
        assert_eq!(LifecycleError::from_raw(0), None);
        assert_eq!(
            LifecycleError::from_raw(LifecycleError::ALL.len() as u64 + 1),
            None
        );
        for (i, s) in DomainState::ALL.iter().enumerate() {
            assert_eq!(DomainState::from_raw(i as u32), Some(*s));
        }
        assert_eq!(DomainState::from_raw(DomainState::ALL.len() as u32), None);
        for (i, r) in EndReason::ALL.iter().enumerate() {
            assert_eq!(EndReason::from_raw(i as u32), Some(*r));
        }
        assert_eq!(EndReason::from_raw(EndReason::ALL.len() as u32), None);
    }

    #[test]
    fn records_round_trip_byte_for_byte() {
        let s = DomainStatus {
            domain_id: 7,
            state: DomainState::Paused as u32,
            priority: 9,
            end: EndReason::None as u32,
            memory_bytes: 4 << 20,
            cpu_ticks: 0x1122_3344_5566_7788,
            exits: 42,
            name: crate::to_fixed("worker-1"),
            label: crate::to_fixed("guest_t"),
        };
        let b = s.to_bytes();
        assert_eq!(DomainStatus::from_bytes(&b), s);
        assert_eq!(&b[0..4], &7u32.to_le_bytes());
        assert_eq!(&b[24..32], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(
            (s.name(), s.label(), s.state()),
            ("worker-1", "guest_t", Some(DomainState::Paused))
        );

        let c = CreateRequest::new("w", "build_t", 4, 5, "count=3");
        let cb = c.to_bytes();
        assert_eq!(CreateRequest::from_bytes(&cb), c);
        assert_eq!(&cb[64..68], &4u32.to_le_bytes());
        assert_eq!(crate::fixed_str(&c.args), "count=3");

        let mut d = ImageDirectory { count: 2, ..ImageDirectory::default() };
        d.entries[0] = ImageEntry { name: crate::to_fixed("worker"), gpa: IMAGE_WINDOW, len: 1234 };
        d.entries[1] = ImageEntry { name: crate::to_fixed("counter"), gpa: IMAGE_WINDOW + IMAGE_SLOT, len: 99 };
        let back = ImageDirectory::from_bytes(&d.to_bytes());
        assert_eq!(back, d);
        assert_eq!(back.find("counter").map(|e| e.len), Some(99));
        assert_eq!(back.find("nope"), None);
        let mut lying = d;
        lying.count = 1000;
        assert_eq!(ImageDirectory::from_bytes(&lying.to_bytes()).images().len(), IMAGE_SLOTS);

        let p = PhysInfo {
            total_bytes: 1 << 30,
            free_bytes: 5 << 20,
            live_domains: 3,
            max_domains: 16,
        };
        assert_eq!(PhysInfo::from_bytes(&p.to_bytes()), p);
    }

    #[test]
    fn any_bytes_decode_without_panicking() {
        let mut x: u8 = 1;
        let mut b = [0u8; DomainStatus::SIZE];
        for v in b.iter_mut() {
            x = x.wrapping_mul(31).wrapping_add(7);
            *v = x;
        }
        let s = DomainStatus::from_bytes(&b);
        assert_eq!(s.to_bytes(), b);
        let _ = (s.state(), s.end(), s.name(), s.label());
    }
}
