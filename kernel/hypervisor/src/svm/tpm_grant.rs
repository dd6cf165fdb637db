//! The platform TPM for the vTPM manager: at build, maps TIS locality 1's register page (and
//! nothing else of the TPM) into the one domain whose manifest line says `platform_tpm=<type>`,
//! once the policy grants it `tpm { use }` on that `tpm_locality` type. The hypervisor keeps
//! locality 2 (PCRs 20–22) and takes it back by seizing whenever it measures
//! (`warden_core::tis::SEIZING_LOCALITY`), so the domain can never hold it off.

use core::sync::atomic::{AtomicBool, Ordering};
use warden_abi::platform_tpm::{LOCALITY, PLATFORM_TPM_BASE, TIS_PAGE, TIS_PAGE_SIZE};
use warden_core::paging::{PageTable, flags};
use warden_hw::phys::IdentityMem;
use warden_ipc::platform_tpm::GRANT_CHECK;
use warden_policy::Kind;
use warden_vmm::manifest::DomainSpec;
use warden_vmm::vmcb::field;

use super::{Dom, get};

/// The window is given at most once per boot.
static GRANTED: AtomicBool = AtomicBool::new(false);

/// Gives `dom` the platform TPM's locality-1 window if its manifest line asks. The error is the
/// refusal message.
pub(super) fn grant(
    mem: &mut IdentityMem,
    mac: &mut super::ipc::Host,
    id: u32,
    spec: &DomainSpec<'_>,
    dom: &mut Dom,
) -> Result<(), alloc::string::String> {
    use alloc::format;
    let Some(label) = spec.get("platform_tpm") else {
        return Ok(());
    };
    match crate::platform_tpm::TPM.lock().as_ref().map(|t| t.interface()) {
        None => return Err(format!("platform_tpm={label}: there is no platform TPM")),
        // A CRB's localities share no per-locality register page a domain could be given
        // (QEMU's tpm-crb has locality 0 only): the manager's locality 1 exists on TIS only.
        Some(warden_core::tpm_interface::Interface::Crb) => {
            return Err(format!("platform_tpm={label}: the platform TPM is a CRB, which has no locality 1 page to grant"));
        }
        Some(_) => {}
    }
    let subject = mac
        .resolve(&dom.label, Kind::Domain)
        .map_err(|e| format!("label {}: {e}", dom.label))?;
    let target = mac
        .resolve(label, Kind::TpmLocality)
        .map_err(|e| format!("platform_tpm {label}: {e}"))?;
    let (class, perm) = GRANT_CHECK;
    mac.check_resource(id, subject, PLATFORM_TPM_BASE, target, class, perm)
        .map_err(|_| format!("the policy does not grant tpm {{ use }} on {label}"))?;
    if dom.memory_bytes > TIS_PAGE {
        return Err(format!(
            "platform_tpm: the domain's memory covers the TIS page {TIS_PAGE:#x}"
        ));
    }
    if GRANTED.swap(true, Ordering::AcqRel) {
        return Err(format!(
            "platform_tpm: locality {LOCALITY} is already another domain's"
        ));
    }
    let npt = PageTable::from_root(
        get(mem, dom.vmcb, field::N_CR3),
        flags::WRITABLE | flags::USER,
    );
    // Device registers: uncached, never executable.
    let leaf =
        flags::USER | flags::WRITABLE | flags::NO_EXECUTE | flags::NO_CACHE | flags::WRITE_THROUGH;
    crate::memory::with_frames(|f| npt.map_range(mem, f, TIS_PAGE, TIS_PAGE, TIS_PAGE_SIZE, leaf))
        .map_err(|e| format!("platform_tpm: mapping the TIS page: {e:?}"))?;
    dom.platform_tpm = true;
    println!(
        "domain {} (id {id}): platform TPM locality {LOCALITY} (TIS page {TIS_PAGE:#x}) as {label}",
        dom.name
    );
    Ok(())
}
