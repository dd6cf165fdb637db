//! The vTPM manager domain (image `vtpm-manager`): the one domain that talks to the platform
//! TPM, through the TIS locality-1 page the hypervisor maps into it (`platform_tpm=` in the
//! manifest, `tpm { use }` in the policy). It checks what locality 1 may do to the hypervisor's
//! PCRs and seals, opens and refuses states with [`warden_vtpm_manager::Sealer`] on the real
//! platform TPM. Fetching and restoring each vTPM instance's state (`vtpm { admin }`) and the
//! disk it stores them on are not built yet (docs/vtpm.md).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
warden_rt::entry!(main);

/// The TIS registers of locality 1, the only window this domain has.
#[cfg(target_os = "none")]
struct Locality1;

#[cfg(target_os = "none")]
impl warden_core::tis::TisRegs for Locality1 {
    fn read8(&mut self, locality: u8, offset: u16) -> u8 {
        if locality == warden_rt::abi::platform_tpm::LOCALITY {
            warden_rt::abi::guest::tis::read8(offset)
        } else {
            0xff
        }
    }
    fn write8(&mut self, locality: u8, offset: u16, value: u8) {
        if locality == warden_rt::abi::platform_tpm::LOCALITY {
            warden_rt::abi::guest::tis::write8(offset, value);
        }
    }
    fn read32(&mut self, locality: u8, offset: u16) -> u32 {
        if locality == warden_rt::abi::platform_tpm::LOCALITY {
            warden_rt::abi::guest::tis::read32(offset)
        } else {
            u32::MAX
        }
    }
}

/// The platform TPM as a `warden_tpm::Transport`: each command takes locality 1 and releases
/// it after, so the hypervisor never finds it held; a command cut off by the hypervisor's
/// seize (it measures at locality 2) is sent once more.
#[cfg(target_os = "none")]
struct Platform(warden_core::tis::Tis<Locality1>);

#[cfg(target_os = "none")]
impl warden_tpm::Transport for Platform {
    type Error = warden_core::tis::TisError;
    fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, Self::Error> {
        let first = self.0.execute(cmd, rsp);
        self.0.release();
        match first {
            Ok(n) => Ok(n),
            Err(_) => {
                let again = self.0.execute(cmd, rsp);
                self.0.release();
                again
            }
        }
    }
}

#[cfg(target_os = "none")]
fn main(_info: &'static warden_rt::abi::StartInfo) {
    use alloc::boxed::Box;
    use warden_core::tis::{DEFAULT_POLL_BUDGET, Tis};
    use warden_rt::abi::ShutdownReason;
    use warden_rt::abi::platform_tpm::LOCALITY;
    use warden_rt::hypercall::shutdown;
    use warden_rt::println;
    use warden_tpm::{Banks, DigestSet, Error, HashAlg, Tpm};
    use warden_vtpm_manager::{SealError, Sealer};

    /// `TPM_RC_LOCALITY`
    const RC_LOCALITY: u32 = 0x907;

    let fail = |what: &dyn core::fmt::Display| -> ! {
        println!("vtpmmgr: FAILED: {what}");
        shutdown(ShutdownReason::Failure)
    };
    let (mut tis, id) = Tis::probe(Locality1, LOCALITY, DEFAULT_POLL_BUDGET)
        .unwrap_or_else(|e| fail(&format_args!("no platform TPM at locality {LOCALITY}: {e}")));
    tis.release();
    println!(
        "vtpmmgr: platform TPM at TIS locality {LOCALITY}: vendor {:#06x}",
        id.vendor
    );
    let mut tpm = Box::new(Tpm::new(Platform(tis)));

    // The hypervisor's PCRs: locality 1 can reset none of them and extend only PCR 20 (the PC
    // Client profile); extending 20 would spoil the platform's quotes, so it is not tried here.
    let m = DigestSet::of(Banks::only(HashAlg::Sha256), b"vtpmmgr");
    for pcr in [21, 22] {
        match tpm.pcr_extend(pcr, &m) {
            Err(Error::Tpm(_, RC_LOCALITY)) => {}
            other => fail(&format_args!(
                "PCR {pcr} extend at locality {LOCALITY}: {other:?}"
            )),
        }
    }
    for pcr in [20, 21, 22] {
        match tpm.pcr_reset(pcr) {
            Err(Error::Tpm(_, RC_LOCALITY)) => {}
            other => fail(&format_args!(
                "PCR {pcr} reset at locality {LOCALITY}: {other:?}"
            )),
        }
    }
    println!(
        "vtpmmgr: locality {LOCALITY} cannot extend PCRs 21-22 nor reset PCRs 20-22 (TPM_RC_LOCALITY)"
    );

    let mut sealer = Sealer::new(*tpm).unwrap_or_else(|e| fail(&e));
    let old = sealer
        .seal(0, b"instance 0, first state")
        .unwrap_or_else(|e| fail(&e));
    let state = b"instance 0, second state";
    let blob = sealer.seal(0, state).unwrap_or_else(|e| fail(&e));
    match sealer.unseal(0, &blob) {
        Ok(s) if s == state => {}
        other => fail(&format_args!("the latest state does not open: {other:?}")),
    }
    let counter = sealer.counter(0).ok().flatten().unwrap_or(0);
    println!(
        "vtpmmgr: sealed a state to PCRs 20-22 ({} bytes, counter {counter}) and opened it",
        blob.len()
    );
    match sealer.unseal(0, &old) {
        Err(e @ SealError::Rollback { .. }) => println!("vtpmmgr: refused: {e}"),
        other => fail(&format_args!("an older state was not refused: {other:?}")),
    }
    let mut altered = blob.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    match sealer.unseal(0, &altered) {
        Err(e @ SealError::Integrity) => println!("vtpmmgr: refused: {e}"),
        other => fail(&format_args!("an altered state was not refused: {other:?}")),
    }
    println!("vtpmmgr: done");
}

#[cfg(not(target_os = "none"))]
fn main() {}
