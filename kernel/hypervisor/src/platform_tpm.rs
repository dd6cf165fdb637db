//! The platform TPM as the hypervisor sees it: found at boot through the interface the
//! interface-identifier register names (TIS/FIFO or CRB, `tpm_interface::choose`) at locality 0,
//! then kept here for measured launch and attestation.

use warden_core::cmdline::CmdLine;
use warden_core::crb::{self, Crb, DEFAULT_BUFFER_WINDOW, Timeouts};
use warden_core::tis::{DEFAULT_POLL_BUDGET, Tis, TisRegs, get_random_command, parse_get_random};
use warden_core::acpi::Tpm2;
use warden_core::tpm_interface::{self, Driver, DriverError, Interface, choose};
use warden_hw::debug_exit::{ExitCode, exit};
use warden_hw::mmio::{CrbMmio, TisMmio};

/// The platform TPM driver over either interface.
pub(crate) type PlatformDriver = Driver<TisMmio, CrbMmio>;

/// The platform TPM, once found. Only the hypervisor talks to it.
pub(crate) static TPM: spin::Mutex<Option<PlatformDriver>> = spin::Mutex::new(None);

/// Finds the TPM through the interface the ACPI `TPM2` table's start method names (when the
/// firmware has the table), else the one its identifier register names.
fn find(acpi: Option<&Tpm2>) -> Result<PlatformDriver, DriverError> {
    let hint = acpi.and_then(|t| {
        let h = tpm_interface::hint(t.start_method);
        println!("tpm: ACPI TPM2 table: start method {:?}, control area {:#x}: {}", t.start_method, t.control_area, match h {
            Some(Interface::Fifo) => "the FIFO (TIS) interface",
            Some(Interface::Crb) => "the CRB interface",
            None => "no interface Warden drives; the identifier register decides",
        });
        h
    });
    let id = TisMmio.read32(0, crb::INTERFACE_ID);
    match choose(hint, id) {
        Some(Interface::Crb) => {
            let (c, id) = Crb::probe(CrbMmio, 0, DEFAULT_BUFFER_WINDOW, Timeouts::PTP).map_err(DriverError::Crb)?;
            println!(
                "tpm: TPM 2.0 over CRB at locality 0: vendor {:#06x} device {:#06x} revision {} interface {:#x}; {}; command buffer {} bytes",
                id.tpm.vendor,
                id.tpm.device,
                id.tpm.revision,
                id.tpm.interface_id,
                if id.localities { "localities 0-4" } else { "locality 0 only" },
                id.command_size
            );
            Ok(Driver::Crb(c))
        }
        // A reserved type is tried as FIFO, whose probe refuses what is not a TPM 2.0.
        Some(Interface::Fifo) | None => {
            let (t, id) = Tis::probe(TisMmio, 0, DEFAULT_POLL_BUDGET).map_err(DriverError::Tis)?;
            println!(
                "tpm: TPM 2.0 at TIS locality 0: vendor {:#06x} device {:#06x} revision {} interface {:#x}",
                id.vendor,
                id.device,
                id.revision,
                id.interface_id & 0xf
            );
            Ok(Driver::Tis(t))
        }
    }
}

/// Looks for the TPM, prints what it found and a few random bytes from it. A missing TPM is
/// fatal only with `require_tpm`.
pub(crate) fn probe(cmdline: &CmdLine<'_>, acpi: Option<&Tpm2>) {
    match find(acpi) {
        Ok(mut tpm) => {
            let mut rsp = [0u8; 64];
            match tpm.execute(&get_random_command(8), &mut rsp) {
                Ok(n) => match parse_get_random(&rsp[..n]) {
                    Ok(bytes) => {
                        print!("tpm: GetRandom: {} bytes ", bytes.len());
                        for b in bytes {
                            print!("{b:02x}");
                        }
                        println!();
                    }
                    Err(e) => println!("tpm: GetRandom refused: {e:?}"),
                },
                Err(e) => println!("tpm: GetRandom failed: {e}"),
            }
            *TPM.lock() = Some(tpm);
        }
        Err(e) => {
            println!("tpm: no platform TPM ({e})");
            if cmdline.flag("require_tpm") {
                println!("tpm: FATAL: require_tpm is set and no TPM 2.0 was found");
                exit(ExitCode::Failure);
            }
        }
    }
}
