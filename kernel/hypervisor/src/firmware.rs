//! What the firmware describes: the UEFI handover (Multiboot2) and the ACPI tables, read once
//! at boot, printed, and kept as typed values.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use spin::Once;
use warden_core::acpi::{self, Acpi, AcpiError, Rsdp, StartMethod};
use warden_tpm::Banks;
use warden_tpm::eventlog::{EventLog, events_len, firmware_log_len};
use warden_core::mem::PhysMem;
use warden_core::multiboot::BootInfo;
use warden_core::multiboot2::{self, Firmware, Multiboot2Error};

/// Prints what a UEFI loader said about the firmware.
pub(crate) fn print_uefi(fw: &Firmware) {
    match fw.efi64_system_table {
        Some(st) => println!("boot: Multiboot2 (UEFI): EFI64 system table at {st:#x}"),
        None => println!("boot: Multiboot2: no EFI system table (not a UEFI loader)"),
    }
    if let Some(map) = fw.efi_mmap {
        println!(
            "boot: EFI memory map: {} descriptors of {} bytes (version {})",
            map.len / u64::from(map.desc_size),
            map.desc_size,
            map.desc_version
        );
    }
    println!(
        "boot: EFI boot services {}",
        if fw.boot_services_kept {
            "kept by the loader"
        } else {
            "exited by the loader"
        }
    );
    if let Some(h) = warden_hw::efi::handover() {
        match h.get_event_log {
            None => println!("tcg: no EFI TCG2 protocol: no firmware event log"),
            Some(0) => println!(
                "tcg: firmware event log by EFI TCG2 GetEventLog: last entry at offset {:?}{}, Final Events table {:?}",
                h.last_entry,
                if h.truncated { " (truncated)" } else { "" },
                h.final_events
            ),
            Some(s) => println!("tcg: EFI TCG2 GetEventLog failed (status {s:#x})"),
        }
        match h.exited {
            Some(n) => println!("boot: EFI boot services exited by Warden (attempt {n})"),
            None => {
                // The firmware still owns the machine: nothing below may run.
                println!("boot: FATAL: EFI ExitBootServices failed");
                warden_hw::debug_exit::exit(warden_hw::debug_exit::ExitCode::Failure);
            }
        }
    }
}

/// With boot services kept the loader gives no memory map: the one Warden's EFI entry read
/// when it exited boot services becomes the boot memory map.
pub(crate) fn add_efi_memory_map(
    mem: &impl PhysMem,
    fw: &Firmware,
    boot: &mut BootInfo,
) -> Result<(), Multiboot2Error> {
    if !fw.boot_services_kept || !boot.regions.is_empty() {
        return Ok(());
    }
    match warden_hw::efi::handover().and_then(|h| h.memory_map) {
        Some(map) => multiboot2::add_efi_regions(mem, map, true, boot),
        None => Err(Multiboot2Error::NoMemoryMap),
    }
}

/// Finds the RSDP (the loader's copy if it gave one, else the legacy BIOS scan) and reads the
/// ACPI tables. A missing or malformed RSDP or table is reported and the boot goes on without
/// ACPI: nothing the hypervisor does today requires it.
pub(crate) fn discover(mem: &impl PhysMem, fw: Option<&Firmware>, limit: u64) -> Option<Acpi> {
    let found = match fw.and_then(|f| f.rsdp.as_ref()) {
        Some(copy) => Rsdp::parse(copy).map(|r| (r, "the Multiboot2 tag")),
        None => Rsdp::scan(mem).map(|r| (r, "the BIOS area")),
    };
    let result = found.and_then(|(rsdp, from)| {
        println!(
            "acpi: RSDP revision {} from {from}: {}",
            rsdp.revision,
            if rsdp.xsdt.is_some() { "XSDT" } else { "RSDT" }
        );
        acpi::parse(mem, rsdp, limit)
    });
    let acpi = match result {
        Ok(a) => a,
        Err(AcpiError::NoRsdp) => {
            println!("acpi: no RSDP found; continuing without ACPI");
            return None;
        }
        Err(e) => {
            println!("acpi: unusable: {e}; continuing without ACPI");
            return None;
        }
    };
    print!("acpi: tables:");
    for t in &acpi.tables {
        print!(" {}", core::str::from_utf8(&t.signature).unwrap_or("????"));
    }
    println!();
    if let Some(m) = &acpi.madt {
        println!(
            "acpi: MADT: {} local APIC(s) at {:#x}, {} I/O APIC(s){}",
            m.lapics.len(),
            m.lapic_addr,
            m.ioapics.len(),
            if m.pcat_compat {
                ", legacy PICs present"
            } else {
                ""
            }
        );
        for io in &m.ioapics {
            println!(
                "acpi: I/O APIC {} at {:#x}, GSI base {}",
                io.id, io.addr, io.gsi_base
            );
        }
    }
    match &acpi.tpm2 {
        Some(t) => {
            let method = match t.start_method {
                StartMethod::Tis => "TIS",
                StartMethod::Crb => "CRB",
                StartMethod::CrbAcpi => "CRB+ACPI",
                StartMethod::Acpi => "ACPI",
                StartMethod::Other(_) => "other",
            };
            print!(
                "acpi: TPM2: start method {method}, control area {:#x}",
                t.control_area
            );
            match t.log_area {
                Some((lasa, laml)) => {
                    // A TCG2 log starts with a SHA-1-format event (PCR, type, digest, size)
                    // whose data is the "Spec ID Event03" signature; an unused area is zeroes.
                    let mut sig = [0u8; 16];
                    if laml >= 48 && lasa.checked_add(48).is_some_and(|end| end <= limit) {
                        mem.read(lasa + 32, &mut sig);
                    }
                    let state = if &sig == b"Spec ID Event03\0" { "a crypto-agile log" } else { "no log" };
                    println!(", log area {laml} bytes at {lasa:#x} holding {state}");
                }
                None => println!(", no log area"),
            }
        }
        None => println!("acpi: no TPM2 table"),
    }
    if let Some(h) = &acpi.hpet {
        println!("acpi: HPET {} at {:#x}", h.number, h.addr);
    }
    Some(acpi)
}

/// The firmware's event log, validated, as Warden continues it.
pub(crate) struct FirmwareLog {
    /// The TCG2 log followed by the Final Events table's later events.
    pub(crate) bytes: Vec<u8>,
    /// The banks its Spec ID header records.
    pub(crate) banks: Banks,
}

static FIRMWARE_LOG: Once<Result<FirmwareLog, String>> = Once::new();

/// The firmware's event log: `None` when Warden was not entered through EFI with boot services
/// (the SeaBIOS path), else the validated log or why it cannot be used.
pub(crate) fn event_log() -> Option<&'static Result<FirmwareLog, String>> {
    FIRMWARE_LOG.get()
}

/// The most bytes of Final Events table read (events logged after GetEventLog: ExitBootServices'
/// own, a few hundred bytes).
const FINAL_EVENTS_WINDOW: u64 = 16 * 1024;

/// Validates the log the EFI entry copied and appends the Final Events table's events that the
/// copy lacks (those logged from GetEventLog on: ExitBootServices' own measurements). Runs before
/// the hypervisor's page tables, while the table is reachable.
///
/// `test_firmware_log=bad-header` on the (measured) command line flips a bit of the copy's
/// first byte first, so a test can show the fallback a bad firmware log gets.
pub(crate) fn collect_event_log(mem: &impl PhysMem, limit: u64, cmdline: &warden_core::cmdline::CmdLine<'_>) {
    let Some(h) = warden_hw::efi::handover() else { return };
    let result = (|| -> Result<FirmwareLog, String> {
        match h.get_event_log {
            None => return Err("the firmware has no EFI TCG2 protocol".into()),
            Some(0) => {}
            Some(s) => return Err(format!("GetEventLog failed with status {s:#x}")),
        }
        if h.truncated {
            return Err("the firmware truncated its log".into());
        }
        let last = h.last_entry.ok_or("GetEventLog gave no log")?;
        let last = usize::try_from(last).map_err(|_| "the last entry is out of reach")?;
        let mut bytes = warden_hw::efi::with_log(|b| b[..h.copied].to_vec());
        if cmdline.value("test_firmware_log") == Some("bad-header") {
            println!("tcg: test_firmware_log=bad-header: corrupting the copy's first byte");
            if let Some(b) = bytes.first_mut() {
                *b ^= 1;
            }
        }
        let len = firmware_log_len(&bytes, last).map_err(|e| format!("{e}"))?;
        bytes.truncate(len);
        let banks = EventLog::parse(&bytes).map_err(|e| format!("{e}"))?.banks();
        if let Some((at, before)) = h.final_events {
            let now = mem.read_u64(at + 8);
            if now > before {
                let window = FINAL_EVENTS_WINDOW.min(limit.saturating_sub(at + 16));
                let mut table = alloc::vec![0u8; window as usize];
                mem.read(at + 16, &mut table);
                let count = |n: u64| usize::try_from(n).map_err(|_| String::from("Final Events count out of range"));
                let skip = events_len(&table, banks, count(before)?).map_err(|e| format!("Final Events table: {e}"))?;
                let end = events_len(&table, banks, count(now)?).map_err(|e| format!("Final Events table: {e}"))?;
                bytes.extend_from_slice(&table[skip..end]);
            }
        }
        let log = EventLog::parse(&bytes).map_err(|e| format!("{e}"))?;
        println!(
            "tcg: firmware event log: {} bytes, {} events, valid; Warden continues it",
            bytes.len(),
            log.events().count()
        );
        Ok(FirmwareLog { bytes, banks })
    })();
    if let Err(why) = &result {
        println!("tcg: firmware event log unusable: {why}");
    }
    FIRMWARE_LOG.call_once(|| result);
}
