//! The vTPM service domain's logic, host-testable: one `warden-vtpm` instance, its client's
//! launch measured into it before the client runs ([`Instance::launch`]), and the server side
//! of the frame protocol ([`Instance::handle`]). `main.rs` adds the machine (RDRAND, TSC) and
//! the hypercalls.
//!
//! One instance per domain (Xen-stubdom style): the instance's seeds, keys and NV live in
//! this domain's memory only, which the hypervisor's nested page tables keep from every other
//! domain; a bug in this instance's engine reaches this instance's secrets and nothing else.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

use warden_abi::ipc::SharedPage;
use warden_abi::vtpm::{
    DATA_MAX, FrameStatus, Kind, LAUNCH_LOCALITY, LAUNCH_PCRS, LaunchRecord, Refused, put_response,
    take_request,
};
use warden_tpm::eventlog::{EventLogWriter, LogError, Tag};
use warden_tpm::{Banks, Digest, DigestSet, HashAlg, Transport};
use warden_vtpm::Platform;

/// Largest launch event log (a few events; the buffer is generous).
pub const LOG_MAX: usize = 4096;
/// The locality client commands run at.
pub const CLIENT_LOCALITY: u8 = 0;

/// The engine at one locality, as a `warden_tpm::Transport`: the launch uses the same typed
/// client as the hypervisor.
struct Local<'a, P: Platform> {
    tpm: &'a mut warden_vtpm::Tpm<P>,
    locality: u8,
}

/// The engine's answer did not fit the client's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun(pub usize);

impl<P: Platform> Transport for Local<'_, P> {
    type Error = Overrun;

    fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, Overrun> {
        let r = self.tpm.execute(self.locality, cmd);
        let out = rsp.get_mut(..r.len()).ok_or(Overrun(r.len()))?;
        out.copy_from_slice(&r);
        Ok(r.len())
    }
}

/// Why a launch could not be measured (the client must then not run).
#[derive(Debug)]
pub enum LaunchError {
    State(warden_vtpm::StateError),
    Tpm(warden_tpm::Error<Overrun>),
    Log(LogError),
}

/// What one [`Instance::handle`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// No new request.
    Nothing,
    /// A TPM command was executed and answered.
    Command,
    /// A slice of the event log was sent.
    EventLog,
    /// The frame was refused with this status (answered; the instance goes on).
    Refused(FrameStatus),
}

/// One vTPM instance and its launch event log.
pub struct Instance<P: Platform> {
    tpm: warden_vtpm::Tpm<P>,
    log: Vec<u8>,
    /// The last request sequence number seen.
    last_seq: u64,
    /// Commands executed for the client.
    pub commands: u64,
    buf: Vec<u8>,
}

impl<P: Platform> core::fmt::Debug for Instance<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Instance({} commands, log {} bytes)",
            self.commands,
            self.log.len()
        )
    }
}

/// The vTPM's PCR banks (the engine's: SHA-1 and SHA-256).
fn banks() -> Banks {
    Banks::from_algs(&[HashAlg::Sha1, HashAlg::Sha256])
}

impl<P: Platform> Instance<P> {
    /// Creates the instance and measures `launch` into it: Startup(CLEAR), then at locality 2
    /// PCRs 20-22 reset, PCR 21 extended with the configuration text, PCR 22 with the image
    /// digests the hypervisor computed, and a separator in each, every extend logged.
    ///
    /// # Errors
    /// See [`LaunchError`].
    pub fn launch(platform: P, launch: &LaunchRecord) -> Result<Self, LaunchError> {
        let mut engine = warden_vtpm::Tpm::new(platform).map_err(LaunchError::State)?;
        let mut buf = alloc::vec![0u8; LOG_MAX];
        let len = {
            let mut tpm = warden_tpm::Tpm::new(Local {
                tpm: &mut engine,
                locality: LAUNCH_LOCALITY,
            });
            tpm.startup_clear().map_err(LaunchError::Tpm)?;
            let mut log = EventLogWriter::new(&mut buf, banks()).map_err(LaunchError::Log)?;
            for pcr in LAUNCH_PCRS {
                tpm.pcr_reset(pcr).map_err(LaunchError::Tpm)?;
            }
            let mut text = [0u8; warden_abi::vtpm::CONFIG_MAX];
            let name = warden_abi::fixed_str(&launch.name);
            // The configuration is measured bound to the name it is logged under, like every
            // platform-launch component (`eventlog::component_parts`).
            let config = DigestSet::of_parts(
                banks(),
                &warden_tpm::eventlog::component_parts(name, launch.config(&mut text)),
            );
            log.append_tagged(Tag::Manifest.pcr(), Tag::Manifest, &config, name)
                .map_err(LaunchError::Log)?;
            tpm.pcr_extend(Tag::Manifest.pcr(), &config)
                .map_err(LaunchError::Tpm)?;
            let mut image = DigestSet::default();
            for (alg, raw) in [
                (HashAlg::Sha1, &launch.image_sha1[..]),
                (HashAlg::Sha256, &launch.image_sha256[..]),
            ] {
                if let Some(d) = Digest::from_bytes(alg, raw) {
                    image.insert(d);
                }
            }
            let image_name = warden_abi::fixed_str(&launch.image);
            log.append_tagged(Tag::DomainImage.pcr(), Tag::DomainImage, &image, image_name)
                .map_err(LaunchError::Log)?;
            tpm.pcr_extend(Tag::DomainImage.pcr(), &image)
                .map_err(LaunchError::Tpm)?;
            for pcr in LAUNCH_PCRS {
                let sep = log.append_separator(pcr).map_err(LaunchError::Log)?;
                tpm.pcr_extend(pcr, &sep).map_err(LaunchError::Tpm)?;
            }
            log.as_bytes().len()
        };
        buf.truncate(len);
        Ok(Instance {
            tpm: engine,
            log: buf,
            last_seq: 0,
            commands: 0,
            buf: alloc::vec![0u8; DATA_MAX],
        })
    }

    /// The launch event log.
    #[must_use]
    pub fn event_log(&self) -> &[u8] {
        &self.log
    }

    /// Serves the client's next request on `page`, if it published one. The request is copied
    /// out of the page before it is parsed; a malformed frame is answered with its status and
    /// the instance goes on; an answer the client never reads is simply overwritten by the
    /// next one (the server never waits for the client).
    pub fn handle(&mut self, page: &SharedPage) -> Handled {
        let buf: &mut [u8; DATA_MAX] = match self.buf.as_mut_slice().try_into() {
            Ok(b) => b,
            Err(_) => return Handled::Nothing,
        };
        match take_request(page, self.last_seq, buf) {
            Ok(None) => Handled::Nothing,
            Err(Refused { seq, status }) => {
                self.last_seq = seq;
                put_response(page, seq, status, 0, &[]);
                Handled::Refused(status)
            }
            Ok(Some(r)) => {
                self.last_seq = r.seq;
                match r.kind {
                    Kind::Command => {
                        self.commands += 1;
                        let rsp = self.tpm.execute(CLIENT_LOCALITY, &buf[..r.len]);
                        if rsp.len() > DATA_MAX {
                            put_response(page, r.seq, FrameStatus::Oversize, 0, &[]);
                            return Handled::Refused(FrameStatus::Oversize);
                        }
                        put_response(page, r.seq, FrameStatus::Ok, 0, &rsp);
                        Handled::Command
                    }
                    Kind::EventLog => {
                        let from = usize::try_from(r.arg)
                            .unwrap_or(usize::MAX)
                            .min(self.log.len());
                        let to = from.saturating_add(DATA_MAX).min(self.log.len());
                        put_response(
                            page,
                            r.seq,
                            FrameStatus::Ok,
                            self.log.len() as u64,
                            &self.log[from..to],
                        );
                        Handled::EventLog
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;
    use warden_abi::vtpm::{FrameError, W_REQ_LEN, put_request, take_response};
    use warden_tpm::eventlog::EventLog;
    use warden_vtpm::MemPlatform;

    fn record() -> LaunchRecord {
        let image = b"\x7fELF pretend image bytes";
        let mut image_sha1 = [0u8; 20];
        let mut image_sha256 = [0u8; 32];
        let parts = warden_tpm::eventlog::component_parts("vtpm_guest", image);
        image_sha1.copy_from_slice(HashAlg::Sha1.hash_parts(&parts).as_bytes());
        image_sha256.copy_from_slice(HashAlg::Sha256.hash_parts(&parts).as_bytes());
        LaunchRecord {
            client: 1,
            image_sha1,
            image_sha256,
            name: warden_abi::to_fixed("g1"),
            image: warden_abi::to_fixed("vtpm_guest"),
            label: warden_abi::to_fixed("g1_t"),
            args: warden_abi::to_fixed("vtpm:0"),
        }
    }

    /// The client side over the page, serving each request synchronously.
    struct Loop<'a> {
        inst: &'a mut Instance<MemPlatform>,
        page: &'a SharedPage,
        seq: u64,
    }

    impl Transport for Loop<'_> {
        type Error = FrameError;
        fn execute(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, FrameError> {
            self.seq += 1;
            put_request(self.page, self.seq, Kind::Command, 0, cmd)?;
            self.inst.handle(self.page);
            Ok(take_response(self.page, self.seq, rsp)?
                .expect("answered")
                .0)
        }
    }

    fn launched() -> (Instance<MemPlatform>, Box<SharedPage>) {
        (
            Instance::launch(MemPlatform::with_seed(7), &record()).expect("launch"),
            Box::new(SharedPage::new()),
        )
    }

    #[test]
    fn the_launch_is_in_pcrs_21_and_22_and_the_log_replays_to_them() {
        let (mut inst, page) = launched();
        let log = inst.event_log().to_vec();
        let parsed = EventLog::parse(&log).expect("log parses");
        let replay = parsed.replay();
        let mut text = [0u8; warden_abi::vtpm::CONFIG_MAX];
        let config = record().config(&mut text).to_vec();
        assert_eq!(config, b"name=g1 label=g1_t args=vtpm:0");
        let mut tpm = warden_tpm::Tpm::new(Loop {
            inst: &mut inst,
            page: &page,
            seq: 0,
        });
        // The client's own Startup finds the TPM started (the vTPM domain started it).
        assert!(!tpm.startup_clear().expect("startup"));
        for alg in [HashAlg::Sha1, HashAlg::Sha256] {
            let sep = alg.hash(&[0u8; 4]);
            let pcr21 = Digest::zero(alg)
                .extended(&alg.hash_parts(&warden_tpm::eventlog::component_parts("g1", &config)))
                .extended(&sep);
            let image = alg.hash_parts(&warden_tpm::eventlog::component_parts(
                "vtpm_guest",
                b"\x7fELF pretend image bytes",
            ));
            let pcr22 = Digest::zero(alg).extended(&image).extended(&sep);
            let pcr20 = Digest::zero(alg).extended(&sep);
            for (pcr, want) in [(20, pcr20), (21, pcr21), (22, pcr22)] {
                assert_eq!(
                    tpm.pcr_read(pcr, alg).expect("read"),
                    want,
                    "PCR {pcr} {alg:?}"
                );
                assert_eq!(
                    replay.pcr(alg, pcr),
                    Some(want),
                    "replay of PCR {pcr} {alg:?}"
                );
            }
        }
    }

    #[test]
    fn a_client_at_locality_0_can_neither_extend_nor_reset_the_launch_pcrs() {
        let (mut inst, page) = launched();
        let mut tpm = warden_tpm::Tpm::new(Loop {
            inst: &mut inst,
            page: &page,
            seq: 0,
        });
        let before = tpm.pcr_read(22, HashAlg::Sha256).unwrap();
        let d = DigestSet::of(banks(), b"forged");
        for pcr in LAUNCH_PCRS {
            assert!(
                matches!(tpm.pcr_extend(pcr, &d), Err(warden_tpm::Error::Tpm(_, rc)) if rc & 0xfff == 0x907),
                "extend {pcr}"
            );
            assert!(
                matches!(tpm.pcr_reset(pcr), Err(warden_tpm::Error::Tpm(_, rc)) if rc & 0xfff == 0x907),
                "reset {pcr}"
            );
        }
        assert_eq!(tpm.pcr_read(22, HashAlg::Sha256).unwrap(), before);
    }

    #[test]
    fn bad_frames_get_errors_and_the_instance_goes_on() {
        let (mut inst, page) = launched();
        // Oversize claimed length: refused, answered with its status.
        put_request(&page, 1, Kind::Command, 0, b"x").unwrap();
        page.words[W_REQ_LEN].store(u64::MAX, core::sync::atomic::Ordering::Relaxed);
        assert_eq!(inst.handle(&page), Handled::Refused(FrameStatus::Oversize));
        assert_eq!(
            take_response(&page, 1, &mut [0u8; 16]),
            Err(FrameError::Refused(FrameStatus::Oversize))
        );
        // A malformed TPM command is a TPM error response, not a transport failure.
        put_request(
            &page,
            2,
            Kind::Command,
            0,
            &[0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 1, 0x44, 0xff, 0xff],
        )
        .unwrap();
        assert_eq!(inst.handle(&page), Handled::Command);
        let mut rsp = [0u8; 64];
        let (n, _) = take_response(&page, 2, &mut rsp).unwrap().unwrap();
        assert_eq!(n, 10);
        assert_ne!(&rsp[6..10], &[0, 0, 0, 0], "a TPM error code");
        // A client that never reads its answers: each request is still served.
        for seq in 3..6 {
            put_request(
                &page,
                seq,
                Kind::Command,
                0,
                &[0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 1, 0x7b, 0, 8],
            )
            .unwrap();
            assert_eq!(inst.handle(&page), Handled::Command);
        }
        assert_eq!(inst.handle(&page), Handled::Nothing, "no request twice");
        // And a well-formed exchange still works afterwards.
        let mut tpm = warden_tpm::Tpm::new(Loop {
            inst: &mut inst,
            page: &page,
            seq: 5,
        });
        let mut r = [0u8; 8];
        tpm.get_random(&mut r)
            .expect("GetRandom after the bad frames");
    }

    #[test]
    fn the_event_log_is_read_through_the_page_in_slices() {
        let (mut inst, page) = launched();
        let want = inst.event_log().to_vec();
        let mut got = std::vec::Vec::new();
        let mut out = std::vec![0u8; DATA_MAX];
        for seq in 1.. {
            put_request(&page, seq, Kind::EventLog, got.len() as u64, &[]).unwrap();
            assert_eq!(inst.handle(&page), Handled::EventLog);
            let (n, total) = take_response(&page, seq, &mut out).unwrap().unwrap();
            assert_eq!(total, want.len() as u64);
            got.extend_from_slice(&out[..n]);
            if n == 0 || got.len() >= want.len() {
                break;
            }
        }
        assert_eq!(got, want);
        // Past the end: an empty slice, not an error.
        put_request(&page, 99, Kind::EventLog, u64::MAX, &[]).unwrap();
        inst.handle(&page);
        assert_eq!(take_response(&page, 99, &mut out).unwrap().unwrap().0, 0);
    }

    /// Random frames — every header word and the data arbitrary, the length often lying —
    /// never panic the instance, and every one is answered under its own sequence number.
    #[test]
    fn random_frames_are_all_answered_and_never_break_the_instance() {
        use core::sync::atomic::Ordering::Relaxed;
        use warden_abi::vtpm::{W_DATA, W_MAGIC, W_REQ_ARG, W_REQ_KIND, W_REQ_SEQ, W_RSP_SEQ};
        let (mut inst, page) = launched();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for seq in 1..3000u64 {
            let r = next();
            page.words[W_MAGIC].store(
                if r % 11 == 0 {
                    next()
                } else {
                    warden_abi::vtpm::FRAME_MAGIC
                },
                Relaxed,
            );
            page.words[W_REQ_KIND].store(
                if r % 13 == 0 {
                    next()
                } else {
                    1 + (r >> 8) % 2
                },
                Relaxed,
            );
            let len = if r % 7 == 0 { next() } else { (r >> 16) % 64 };
            page.words[W_REQ_LEN].store(len, Relaxed);
            page.words[W_REQ_ARG].store(next() % 1024, Relaxed);
            // A TPM-shaped header half of the time, noise otherwise.
            let mut head = [
                0x80u8,
                0x01,
                0,
                0,
                0,
                len as u8,
                0,
                0,
                1,
                (r >> 24) as u8,
                0,
                0,
            ];
            if r % 2 == 0 {
                head[0] = (r >> 32) as u8;
            }
            page.words[W_DATA].store(u64::from_le_bytes(head[..8].try_into().unwrap()), Relaxed);
            page.words[W_DATA + 1].store(
                u64::from(u32::from_le_bytes(head[8..].try_into().unwrap())) | next() << 32,
                Relaxed,
            );
            for w in 2..8 {
                page.words[W_DATA + w].store(next(), Relaxed);
            }
            page.words[W_REQ_SEQ].store(seq, Relaxed);
            assert_ne!(
                inst.handle(&page),
                Handled::Nothing,
                "frame {seq} was not taken"
            );
            assert_eq!(
                page.words[W_RSP_SEQ].load(Relaxed),
                seq,
                "frame {seq} was not answered"
            );
        }
        // And the instance still works.
        let mut tpm = warden_tpm::Tpm::new(Loop {
            inst: &mut inst,
            page: &page,
            seq: 5000,
        });
        tpm.get_random(&mut [0u8; 16])
            .expect("GetRandom after 3000 random frames");
    }
}
