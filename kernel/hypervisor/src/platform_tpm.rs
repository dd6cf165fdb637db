//! The platform TPM as the hypervisor sees it: probed through TIS at locality 0 at boot, then
//! kept here for measured launch and attestation.

use warden_core::cmdline::CmdLine;
use warden_core::tis::{DEFAULT_POLL_BUDGET, Tis, get_random_command, parse_get_random};
use warden_hw::debug_exit::{ExitCode, exit};
use warden_hw::mmio::TisMmio;

/// The platform TPM, once found. Only the hypervisor talks to it.
pub(crate) static TPM: spin::Mutex<Option<Tis<TisMmio>>> = spin::Mutex::new(None);

/// Looks for the TPM, prints what it found and a few random bytes from it. A missing TPM is
/// fatal only with `require_tpm`.
pub(crate) fn probe(cmdline: &CmdLine<'_>) {
    match Tis::probe(TisMmio, 0, DEFAULT_POLL_BUDGET) {
        Ok((mut tis, id)) => {
            println!(
                "tpm: TPM 2.0 at TIS locality 0: vendor {:#06x} device {:#06x} revision {} interface {:#x}",
                id.vendor, id.device, id.revision, id.interface_id & 0xf
            );
            let mut rsp = [0u8; 64];
            match tis.execute(&get_random_command(8), &mut rsp) {
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
            *TPM.lock() = Some(tis);
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
