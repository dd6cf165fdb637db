//! What the firmware describes: the UEFI handover (Multiboot2) and the ACPI tables, read once
//! at boot, printed, and kept as typed values.

use warden_core::acpi::{self, Acpi, AcpiError, Rsdp, StartMethod};
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
            None => println!("boot: FATAL: EFI ExitBootServices failed"),
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
