//! The vTPM service domain: serves one vTPM instance to the one client the manifest gives it.
//! It asks the hypervisor for the client's launch record, measures it into a fresh instance
//! (the client is held until then), then serves the client's frames until the client ends.
//!
//! Arguments (`args=` in the manifest, which the hypervisor measures into the platform TPM):
//! `panic_after:N` makes the domain panic after N client commands — a fault-injection switch
//! for the isolation test (one vTPM domain crashing leaves every other instance serving).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

/// The machine side of the engine: RDRAND entropy, the TSC as clock, NV kept in memory (the
/// vTPM manager that seals it to the platform TPM is not built yet: state ends with the domain).
#[cfg(target_os = "none")]
struct DomainPlatform {
    nv: Option<alloc::vec::Vec<u8>>,
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
impl warden_vtpm::Platform for DomainPlatform {
    fn entropy(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            // Checked at start; a CPU whose RDRAND stops answering leaves no safe way on.
            let Some(r) = warden_rt::abi::guest::rdrand64() else {
                panic!("RDRAND failed: no entropy")
            };
            chunk.copy_from_slice(&r.to_le_bytes()[..chunk.len()]);
        }
    }

    fn clock_ms(&mut self) -> u64 {
        // The TSC at a nominal 1 GHz (exact under `-icount shift=0`): monotonic, which is what
        // the TPM clock needs.
        warden_rt::abi::guest::rdtsc() / 1_000_000
    }

    fn nv_read(&mut self) -> Option<alloc::vec::Vec<u8>> {
        self.nv.clone()
    }

    fn nv_write(&mut self, state: &[u8]) {
        self.nv = Some(state.to_vec());
    }
}

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::ShutdownReason;
    use warden_rt::abi::ipc::GRANT_WINDOW;
    use warden_rt::hypercall::{block, shutdown};
    use warden_rt::{ipc, println, vtpm};
    use warden_vtpm_domain::{Handled, Instance};

    let panic_after = info
        .args()
        .split([',', ';'])
        .find_map(|w| w.strip_prefix("panic_after:")?.parse::<u64>().ok());
    let fail = |what: &str| -> ! {
        println!("vtpm: FAILED: {what}");
        shutdown(ShutdownReason::Failure)
    };
    if warden_rt::abi::guest::rdrand64().is_none() {
        fail("no entropy source (the CPU offers no RDRAND): a vTPM without entropy does not start");
    }
    let launch = vtpm::serve().unwrap_or_else(|e| {
        println!("vtpm: FAILED: no launch record: {e:?}");
        shutdown(ShutdownReason::Failure)
    });
    let client = warden_rt::abi::fixed_str(&launch.name);
    let mut inst = Instance::launch(DomainPlatform { nv: None }, &launch).unwrap_or_else(|e| {
        println!("vtpm: FAILED: measuring the launch of {client}: {e:?}");
        shutdown(ShutdownReason::Failure)
    });
    println!(
        "vtpm: launch of {client} measured: PCR 21 configuration, PCR 22 image, event log {} bytes; {} KiB of heap left",
        inst.event_log().len(),
        warden_rt::HEAP.remaining() >> 10
    );
    vtpm::ready().unwrap_or_else(|e| {
        println!("vtpm: FAILED: ready: {e:?}");
        shutdown(ShutdownReason::Failure)
    });
    let conn = loop {
        match vtpm::accept() {
            Ok(Some(c)) => break c,
            Ok(None) => {
                let _ = block(Some(1_000_000));
            }
            Err(e) => {
                println!("vtpm: FAILED: accept: {e:?}");
                shutdown(ShutdownReason::Failure)
            }
        }
    };
    println!(
        "vtpm: client {} (domain {}, label {}) connected, as the hypervisor says",
        warden_rt::abi::fixed_str(&conn.name),
        conn.client,
        warden_rt::abi::fixed_str(&conn.label)
    );
    if conn.client != launch.client {
        fail("the connected domain is not the instance's owner");
    }
    let Some(page) =
        warden_rt::abi::guest::grant_window_page((conn.page_gpa - GRANT_WINDOW) / 4096)
    else {
        fail("the frame page is outside the grant window");
    };
    let mask = 1u64 << conn.port;
    let mut refused = 0u64;
    loop {
        loop {
            match inst.handle(page) {
                Handled::Nothing => break,
                Handled::Refused(s) => {
                    refused += 1;
                    println!("vtpm: refused a frame from {client}: {s:?}");
                }
                Handled::Command | Handled::EventLog => {}
            }
            if panic_after.is_some_and(|n| inst.commands >= n) {
                panic!(
                    "test-only fault injection: panic_after:{} reached",
                    inst.commands
                );
            }
            // Tell the client its answer is there (it may have ended meanwhile).
            if ipc::evtchn_send(conn.port).is_err() {
                break;
            }
        }
        match ipc::evtchn_wait(mask, Some(1_000_000)) {
            Ok(0) => {
                // Quiet for a second: is the client still there? (A send to a closed channel fails.)
                if ipc::evtchn_send(conn.port).is_err() {
                    println!(
                        "vtpm: client {client} gone after {} commands ({refused} frames refused, {} KiB of heap left); instance ends",
                        inst.commands,
                        warden_rt::HEAP.remaining() >> 10
                    );
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                println!(
                    "vtpm: client {client} gone ({e:?}) after {} commands; instance ends",
                    inst.commands
                );
                return;
            }
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
