//! The 64-bit EFI handover: entered with boot services still running (Multiboot2 tags 7 and 9),
//! it fetches the firmware's TCG2 event log, notes the Final Events table, and exits boot
//! services before the boot stub builds the hypervisor's own page tables.
//!
//! Everything the firmware returns is copied or recorded as plain numbers here; the hypervisor
//! validates the log bytes (`warden_tpm::eventlog`) once, later. Nothing here can make the boot
//! fail: a missing protocol or a failed call leaves [`handover`] saying what happened.

use core::ffi::c_void;
use core::ptr;
use spin::{Mutex, Once};
use uefi_raw::protocol::tcg::v2::{Tcg2EventLogFormat, Tcg2Protocol};
use uefi_raw::table::boot::{BootServices, MemoryDescriptor};
use uefi_raw::table::configuration::ConfigurationTable;
use uefi_raw::table::system::SystemTable;
use uefi_raw::{Boolean, Guid, Handle, Status, guid};
use warden_core::mem::PhysMem;
use warden_core::multiboot2::EfiMemoryMap;

/// The most log bytes copied (the crypto-agile log OVMF keeps is 64 KiB at most).
pub const LOG_CAPACITY: usize = 64 * 1024;
/// How far past the last entry's start the copy reaches, to include that entry.
const LAST_ENTRY_ROOM: u64 = 4096;
/// `EFI_TCG2_FINAL_EVENTS_TABLE_GUID`.
const FINAL_EVENTS_GUID: Guid = guid!("1e2ed096-30e2-4254-bd89-863bbef82325");

/// What the EFI handover did, as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handover {
    /// The TCG2 protocol's GetEventLog status (`None`: no TCG2 protocol).
    pub get_event_log: Option<usize>,
    /// Bytes copied from the log's start (the whole log and some room after it).
    pub copied: usize,
    /// The last entry's offset from the log's start.
    pub last_entry: Option<u64>,
    /// The firmware said it truncated the log, or it did not fit [`LOG_CAPACITY`].
    pub truncated: bool,
    /// The Final Events table's address and its event count when the log was fetched.
    pub final_events: Option<(u64, u64)>,
    /// Whether ExitBootServices succeeded (and after how many attempts).
    pub exited: Option<u32>,
    /// The memory map whose key ExitBootServices accepted (a buffer in the image).
    pub memory_map: Option<EfiMemoryMap>,
}

static HANDOVER: Once<Handover> = Once::new();
static LOG: Mutex<[u8; LOG_CAPACITY]> = Mutex::new([0; LOG_CAPACITY]);
/// Room for the memory map ExitBootServices needs the key of (OVMF's is ~130 × 48 bytes).
static MAP: Mutex<[u8; 32 * 1024]> = Mutex::new([0; 32 * 1024]);

/// What the EFI handover did, if the hypervisor was entered through it.
pub fn handover() -> Option<Handover> {
    HANDOVER.get().copied()
}

/// Runs `f` on the copied firmware log bytes (`handover().copied` of them are meaningful).
pub fn with_log<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    f(&LOG.lock()[..])
}

/// Called by the boot stub's 64-bit EFI entry with the Multiboot2 magic and information; returns
/// once boot services are exited (or could not be used).
#[unsafe(no_mangle)]
extern "C" fn warden_efi_entry(magic: u32, info: u32) {
    let mem = crate::phys::IdentityMem::new();
    let fw = match warden_core::multiboot2::parse(&mem, magic, u64::from(info), crate::phys::IDENTITY_LIMIT) {
        Ok(i) => i.firmware,
        Err(_) => return, // the hypervisor parses it again and reports the error
    };
    let (Some(st), Some(ih)) = (fw.efi64_system_table, fw.efi64_image_handle) else { return };
    if st == 0 || ih == 0 || st.checked_add(size_of::<SystemTable>() as u64).is_none_or(|e| e > crate::phys::IDENTITY_LIMIT) {
        return;
    }
    // SAFETY: the loader entered us through the EFI entry with boot services running and gave
    // this system table; it stays valid and identity-mapped until ExitBootServices below.
    let st = unsafe { &*(st as *const SystemTable) };
    // SAFETY: the system table's boot-services pointer is valid while boot services run.
    let bs = unsafe { &*st.boot_services };
    let mut out = Handover { get_event_log: None, copied: 0, last_entry: None, truncated: false, final_events: None, exited: None, memory_map: None };
    fetch_log(&mem, bs, &mut out);
    // The Final Events table: events the firmware logs after GetEventLog (ExitBootServices'
    // own) are only there. Its count now is where the events we lack start.
    let n = st.number_of_configuration_table_entries;
    for i in 0..n {
        // SAFETY: the firmware's configuration table holds `n` entries while boot services run.
        let entry: &ConfigurationTable = unsafe { &*st.configuration_table.add(i) };
        if entry.vendor_guid == FINAL_EVENTS_GUID {
            let at = entry.vendor_table as u64;
            if at != 0 && at + 16 <= crate::phys::IDENTITY_LIMIT {
                out.final_events = Some((at, mem.read_u64(at + 8)));
            }
        }
    }
    if let Some((attempt, map)) = exit_boot_services(bs, ih as Handle) {
        out.exited = Some(attempt);
        out.memory_map = Some(map);
    }
    HANDOVER.call_once(|| out);
}

fn fetch_log(mem: &crate::phys::IdentityMem, bs: &BootServices, out: &mut Handover) {
    let mut proto: *mut c_void = ptr::null_mut();
    // SAFETY: a boot service called with a valid GUID and out pointer while boot services run.
    let s = unsafe { (bs.locate_protocol)(&Tcg2Protocol::GUID, ptr::null(), &mut proto) };
    if s != Status::SUCCESS || proto.is_null() {
        return;
    }
    let tcg2 = proto.cast::<Tcg2Protocol>();
    let (mut location, mut last, mut truncated) = (0u64, 0u64, Boolean::FALSE);
    // SAFETY: `tcg2` is the protocol instance the firmware returned; the out pointers are ours.
    let s = unsafe { ((*tcg2).get_event_log)(tcg2, Tcg2EventLogFormat::TCG_2, &mut location, &mut last, &mut truncated) };
    out.get_event_log = Some(s.0);
    if s != Status::SUCCESS || location == 0 || last < location {
        return;
    }
    let want = (last - location).saturating_add(LAST_ENTRY_ROOM);
    let n = want.min(LOG_CAPACITY as u64).min(crate::phys::IDENTITY_LIMIT.saturating_sub(location));
    let mut log = LOG.lock();
    mem.read(location, &mut log[..n as usize]);
    out.copied = n as usize;
    out.last_entry = Some(last - location);
    out.truncated = truncated != Boolean::FALSE || last - location >= LOG_CAPACITY as u64;
}

/// GetMemoryMap for its key, then ExitBootServices; once more if the map changed in between
/// (the one retry the UEFI specification describes). Returns the attempt that succeeded and the
/// map it succeeded with (the memory map the hypervisor then uses).
fn exit_boot_services(bs: &BootServices, ih: Handle) -> Option<(u32, EfiMemoryMap)> {
    let mut map = MAP.lock();
    for attempt in 1..=2 {
        let (mut size, mut key, mut desc_size, mut version) = (map.len(), 0usize, 0usize, 0u32);
        // SAFETY: the buffer is ours and `size` says how big it is; boot services still run.
        let s = unsafe {
            (bs.get_memory_map)(&mut size, map.as_mut_ptr().cast::<MemoryDescriptor>(), &mut key, &mut desc_size, &mut version)
        };
        if s != Status::SUCCESS {
            return None;
        }
        // SAFETY: the image handle the loader passed and the key of the map just read.
        if unsafe { (bs.exit_boot_services)(ih, key) } == Status::SUCCESS {
            let at = map.as_ptr() as u64;
            return Some((attempt, EfiMemoryMap { addr: at, len: size as u64, desc_size: desc_size as u32, desc_version: version }));
        }
    }
    None
}
