//! vTPM test domain: talks to its own vTPM through the frontend, checks its launch and quotes
//! it. Arguments: `vtpm:V` (its vTPM domain's id), `other:W` (another domain's vTPM, which it
//! must not reach), `nonce:N` (a decimal nonce for the quote), and one of `notify:D` (allocate
//! a channel to domain D first and signal it once this domain's vTPM is gone; keep commanding
//! the vTPM until then) or `waitfor:D` (bind D's channel, and after the quote wait for its
//! signal, then show that this domain's vTPM still serves).
//!
//! Evidence goes to the console as `evidence <what> <hex>` lines (several per item: the
//! console keeps lines short) for the host to verify with `wardenctl`'s verifier.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
extern crate alloc;

/// The frame page shared with the vTPM domain.
#[cfg(target_os = "none")]
static PAGE: warden_rt::abi::ipc::SharedPage = warden_rt::abi::ipc::SharedPage::new();

#[cfg(target_os = "none")]
fn evidence(what: &str, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks(48).enumerate() {
        let mut line = heapless_hex(chunk);
        line.insert_str(0, &alloc::format!("evidence {what} {i} "));
        warden_rt::println!("{line}");
    }
}

#[cfg(target_os = "none")]
fn heapless_hex(b: &[u8]) -> alloc::string::String {
    use core::fmt::Write;
    let mut s = alloc::string::String::new();
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use warden_rt::abi::ShutdownReason;
    use warden_rt::abi::ipc::IpcError;
    use warden_rt::hypercall::{shutdown, yield_now};
    use warden_rt::ipc::{self, IpcFail};
    use warden_rt::println;
    use warden_rt::vtpm::{VtpmClient, VtpmFail, connect_raw};
    use warden_tpm::eventlog::{EventLog, Tag};
    use warden_tpm::{Banks, HashAlg, PcrSelection, Tpm};

    let args = info.args();
    let fail = |what: &str| -> ! {
        println!("guest: FAILED: {what}");
        shutdown(ShutdownReason::Failure)
    };
    let Some(vtpm) = warden_guests::arg_u64(args, "vtpm") else {
        fail("no vtpm:V argument")
    };
    // The other side of the crash test's channel.
    let mut notify = None;
    if let Some(d) = warden_guests::arg_u64(args, "notify") {
        notify = Some(
            ipc::evtchn_alloc(d as u32)
                .unwrap_or_else(|e| fail(&alloc::format!("allocating the notify port: {e:?}"))),
        );
    }
    let mut waitfor = None;
    if let Some(d) = warden_guests::arg_u64(args, "waitfor") {
        for _ in 0..100_000 {
            match ipc::evtchn_bind(d as u32, 1) {
                Ok(p) => {
                    waitfor = Some(p);
                    break;
                }
                Err(IpcFail::Invalid(IpcError::PortNotInUse)) => yield_now(),
                Err(e) => fail(&alloc::format!("binding the notify port: {e:?}")),
            }
        }
        if waitfor.is_none() {
            fail("the notifier never allocated its port");
        }
    }

    // Another domain's vTPM: the policy refuses (and audits) it.
    if let Some(other) = warden_guests::arg_u64(args, "other") {
        match connect_raw(other as u32, core::ptr::addr_of!(PAGE) as u64) {
            Err(VtpmFail::Denied) => {
                println!("guest: connecting to another domain's vTPM is denied")
            }
            r => fail(&alloc::format!(
                "connecting to another domain's vTPM gave {r:?}"
            )),
        }
    }
    let client = VtpmClient::connect(vtpm as u32, &PAGE)
        .unwrap_or_else(|e| fail(&alloc::format!("connecting to my vTPM: {e:?}")));
    println!(
        "guest: connected to my vTPM (domain {vtpm}) on port {}",
        client.port()
    );
    if warden_guests::arg_u64(args, "badframes") == Some(1) {
        bad_frames(&client);
    }
    let mut tpm = Box::new(Tpm::new(client));
    if let Some(n) = warden_guests::arg_u64(args, "bench").filter(|&n| n > 0) {
        bench(&mut tpm, n);
        return;
    }
    if warden_guests::arg_u64(args, "badframes") == Some(1) {
        // A malformed TPM command (a header claiming 4 KiB, 12 bytes sent) is a TPM error
        // response, and the vTPM goes on.
        use warden_tpm::Transport;
        let mut rsp = [0u8; 64];
        let bad = [0x80, 0x01, 0, 0, 0x10, 0, 0, 0, 0x01, 0x7b, 0, 8];
        match tpm.transport().execute(&bad, &mut rsp) {
            Ok(10) if rsp[6..10] != [0; 4] => {
                println!(
                    "guest: a malformed TPM command gets TPM error {:#x}",
                    u32::from_be_bytes([rsp[6], rsp[7], rsp[8], rsp[9]])
                )
            }
            r => fail(&alloc::format!("a malformed TPM command gave {r:?}")),
        }
    }
    match tpm.startup_clear() {
        Ok(false) => {}
        r => fail(&alloc::format!(
            "the vTPM was not started by its domain: {r:?}"
        )),
    }

    // The launch: the log replays to the PCRs, and its configuration event is what this
    // domain's start-info says.
    let log = tpm
        .transport()
        .event_log()
        .unwrap_or_else(|e| fail(&alloc::format!("reading the event log: {e:?}")));
    let parsed =
        EventLog::parse(&log).unwrap_or_else(|e| fail(&alloc::format!("event log: {e:?}")));
    let replay = parsed.replay();
    for alg in [HashAlg::Sha1, HashAlg::Sha256] {
        for pcr in warden_rt::abi::vtpm::LAUNCH_PCRS {
            let read = tpm
                .pcr_read(pcr, alg)
                .unwrap_or_else(|e| fail(&alloc::format!("PCR_Read: {e}")));
            if replay.pcr(alg, pcr) != Some(read) {
                fail(&alloc::format!(
                    "PCR {pcr} ({}) does not match the event log",
                    alg.name()
                ));
            }
        }
    }
    println!(
        "guest: launch PCRs 20-22 (sha1, sha256) match the event log ({} bytes)",
        log.len()
    );
    let mut own = Vec::new();
    own.extend_from_slice(b"name=");
    own.extend_from_slice(info.name().as_bytes());
    own.extend_from_slice(b" label=");
    own.extend_from_slice(info.label().as_bytes());
    own.extend_from_slice(b" args=");
    own.extend_from_slice(args.as_bytes());
    let mut config_ok = false;
    let mut image = None;
    for e in parsed.events() {
        let e = e.unwrap_or_else(|e| fail(&alloc::format!("event: {e:?}")));
        match e.warden_tag() {
            Some((Tag::Manifest, name)) if name == info.name() => {
                let parts = warden_tpm::eventlog::component_parts(info.name(), &own);
                config_ok = e.digests.get(HashAlg::Sha256) == Some(&HashAlg::Sha256.hash_parts(&parts));
            }
            Some((Tag::DomainImage, name)) => {
                image = e.digests.get(HashAlg::Sha256).map(|d| (name, *d))
            }
            _ => {}
        }
    }
    if !config_ok {
        fail("PCR 21's configuration event is not this domain's name, label and args");
    }
    println!("guest: PCR 21 holds my configuration (name, label, args)");
    let Some((image_name, image_digest)) = image else {
        fail("no image event in the log")
    };
    println!(
        "guest: PCR 22 holds image {image_name} sha256 {}",
        heapless_hex(image_digest.as_bytes())
    );

    // A quote of the launch PCRs with an attestation key of this vTPM.
    let nonce = warden_guests::arg_u64(args, "nonce")
        .unwrap_or(0)
        .to_be_bytes();
    let ak = tpm
        .create_ak()
        .unwrap_or_else(|e| fail(&alloc::format!("creating the AK: {e}")));
    let sel = PcrSelection {
        banks: Banks::from_algs(&[HashAlg::Sha256]),
        pcrs: 0b111 << 20,
    };
    let quote = tpm
        .quote(ak.handle, &nonce, sel)
        .unwrap_or_else(|e| fail(&alloc::format!("quote: {e}")));
    let attest = quote.attest.as_bytes();
    let mut q = Vec::new();
    q.extend_from_slice(&(attest.len() as u16).to_be_bytes());
    q.extend_from_slice(attest);
    q.extend_from_slice(quote.signature.as_bytes());
    evidence("ak", ak.public.as_bytes());
    evidence("quote", &q);
    evidence("log", &log);
    evidence("nonce", &nonce);
    println!("guest: quoted my launch PCRs");

    if let Some(port) = notify {
        // Keep using the vTPM until it is gone (its domain is set to crash).
        let mut r = [0u8; 8];
        let mut n = 0u64;
        let why = loop {
            match tpm.get_random(&mut r) {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
            if n > 10_000 {
                fail("my vTPM never went away");
            }
        };
        println!("guest: my vTPM is gone after {n} more commands: {why}");
        // Tell the peer, whose vTPM must go on serving.
        ipc::evtchn_send(port).unwrap_or_else(|e| fail(&alloc::format!("notifying: {e:?}")));
    }
    if let Some(port) = waitfor {
        if ipc::evtchn_wait(1 << port, Some(120_000_000)) != Ok(1 << port) {
            fail("the peer never said its vTPM was gone");
        }
        let mut r = [0u8; 16];
        tpm.get_random(&mut r)
            .unwrap_or_else(|e| fail(&alloc::format!("my vTPM stopped with the other: {e}")));
        let again = tpm
            .pcr_read(22, HashAlg::Sha256)
            .unwrap_or_else(|e| fail(&alloc::format!("PCR_Read: {e}")));
        if again != image_digest_pcr(&image_digest) {
            fail("PCR 22 changed");
        }
        println!("guest: my vTPM still serves after the other domain's vTPM crashed");
    }
}

/// `cargo xtask bench vtpm-domain`: the mean TSC ticks (instructions under `-icount`) of `n`
/// each of GetRandom (32 bytes), PCR_Extend (PCR 16) and an ECDSA Quote of PCR 16, sent to
/// this domain's vTPM — the same commands the hypervisor times on the platform TPM.
#[cfg(target_os = "none")]
fn bench(tpm: &mut warden_tpm::Tpm<warden_rt::vtpm::VtpmClient>, n: u64) {
    use warden_rt::abi::ShutdownReason;
    use warden_rt::abi::guest::rdtsc;
    use warden_rt::{hypercall::shutdown, println};
    use warden_tpm::{Banks, DigestSet, HashAlg, PcrSelection};
    let banks = Banks::from_algs(&[HashAlg::Sha1, HashAlg::Sha256]);
    let extend = DigestSet::of(banks, b"bench");
    let sel = PcrSelection { banks: Banks::from_algs(&[HashAlg::Sha256]), pcrs: 1 << 16 };
    let ak = tpm.create_ak().unwrap_or_else(|e| {
        println!("guest: FAILED: creating the AK: {e}");
        shutdown(ShutdownReason::Failure)
    });
    let mut ticks = [0u64; 3];
    for _ in 0..n {
        let mut r = [0u8; 32];
        let t0 = rdtsc();
        let a = tpm.get_random(&mut r);
        let t1 = rdtsc();
        let b = tpm.pcr_extend(16, &extend);
        let t2 = rdtsc();
        let c = tpm.quote(ak.handle, &[7; 16], sel).map(|_| ());
        let t3 = rdtsc();
        if let Err(e) = a.and(b).and(c) {
            println!("guest: FAILED: bench command: {e}");
            shutdown(ShutdownReason::Failure);
        }
        ticks[0] += t1 - t0;
        ticks[1] += t2 - t1;
        ticks[2] += t3 - t2;
    }
    println!(
        "bench-vtpm-domain: iterations={n} getrandom={} pcr_extend={} quote={}",
        ticks[0] / n,
        ticks[1] / n,
        ticks[2] / n
    );
}

/// Writes a frame whose length word exceeds the page, rings the doorbell and expects the
/// vTPM domain's refusal (a transport error), not a crash or silence.
#[cfg(target_os = "none")]
fn bad_frames(client: &warden_rt::vtpm::VtpmClient) {
    use core::sync::atomic::Ordering::Relaxed;
    use warden_rt::abi::ShutdownReason;
    use warden_rt::abi::vtpm::{
        FrameError, FrameStatus, Kind, W_REQ_LEN, put_request, take_response,
    };
    use warden_rt::{hypercall::shutdown, ipc, println};
    // A sequence number of its own: the server answers any number it has not just seen.
    let seq = 1 << 40;
    if put_request(&PAGE, seq, Kind::Command, 0, b"x").is_err() {
        shutdown(ShutdownReason::Failure);
    }
    PAGE.words[W_REQ_LEN].store(u64::MAX, Relaxed);
    let _ = ipc::evtchn_send(client.port());
    for _ in 0..300 {
        match take_response(&PAGE, seq, &mut [0u8; 16]) {
            Ok(None) => {
                let _ = ipc::evtchn_wait(1 << client.port(), Some(100_000));
            }
            Err(FrameError::Refused(FrameStatus::Oversize)) => {
                println!("guest: a frame claiming more than the page is refused: Oversize");
                return;
            }
            r => {
                println!("guest: FAILED: an oversize frame gave {r:?}");
                shutdown(ShutdownReason::Failure);
            }
        }
    }
    println!("guest: FAILED: no answer to an oversize frame");
    shutdown(ShutdownReason::Failure);
}

/// PCR 22 after the launch: zero, extended with the image digest, then the separator.
#[cfg(target_os = "none")]
fn image_digest_pcr(image: &warden_tpm::Digest) -> warden_tpm::Digest {
    use warden_tpm::{Digest, HashAlg};
    Digest::zero(HashAlg::Sha256)
        .extended(image)
        .extended(&HashAlg::Sha256.hash(&[0u8; 4]))
}

#[cfg(not(target_os = "none"))]
fn main() {}
