//! The platform side of `cargo xtask bench vtpm-domain`: with `bench_platform_tpm=N` on the
//! command line, before any domain runs, times N each of TPM2_GetRandom (32 bytes),
//! TPM2_PCR_Extend (PCR 16, the debug PCR) and an ECDSA TPM2_Quote of PCR 16 with a P-256
//! attestation key, sent to the platform TPM at locality 0 through TIS or CRB, and prints the mean TSC
//! ticks of each (instructions under `-icount shift=0`). A domain's vTPM domain runs the same
//! three commands in the same boot (`vtpm_guest`'s `bench:N`).

use alloc::boxed::Box;
use warden_core::cmdline::CmdLine;
use warden_tpm::{Banks, DigestSet, HashAlg, PcrSelection, Tpm};

use crate::measure::DriverTransport;
use crate::platform_tpm::TPM;

/// Runs the benchmark if the command line asks for it.
pub(crate) fn run(cmdline: &CmdLine<'_>) {
    let Some(n) = cmdline.value("bench_platform_tpm").and_then(|v| v.parse::<u64>().ok()).filter(|&n| n > 0) else {
        return;
    };
    let mut guard = TPM.lock();
    let Some(tis) = guard.as_mut() else {
        println!("bench-platform-tpm: FAILED: no platform TPM");
        return;
    };
    let mut tpm = Box::new(Tpm::new(DriverTransport(tis)));
    let (banks, ak) = match tpm.active_banks().and_then(|b| Ok((b, tpm.create_ak()?))) {
        Ok(v) => v,
        Err(e) => {
            println!("bench-platform-tpm: FAILED: {e}");
            return;
        }
    };
    let extend = DigestSet::of(banks, b"bench");
    let sel = PcrSelection { banks: Banks::from_algs(&[HashAlg::Sha256]), pcrs: 1 << 16 };
    let mut ticks = [0u64; 3];
    for _ in 0..n {
        let mut r = [0u8; 32];
        let t0 = warden_hw::cpu::rdtsc();
        let a = tpm.get_random(&mut r);
        let t1 = warden_hw::cpu::rdtsc();
        let b = tpm.pcr_extend(16, &extend);
        let t2 = warden_hw::cpu::rdtsc();
        let c = tpm.quote(ak.handle, &[7; 16], sel).map(|_| ());
        let t3 = warden_hw::cpu::rdtsc();
        if let Err(e) = a.and(b).and(c) {
            println!("bench-platform-tpm: FAILED: {e}");
            return;
        }
        ticks[0] += t1 - t0;
        ticks[1] += t2 - t1;
        ticks[2] += t3 - t2;
    }
    let _ = tpm.flush_context(ak.handle);
    println!(
        "bench-platform-tpm: iterations={n} getrandom={} pcr_extend={} quote={}",
        ticks[0] / n,
        ticks[1] / n,
        ticks[2] / n
    );
}
