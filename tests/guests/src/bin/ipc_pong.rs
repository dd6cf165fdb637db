//! IPC test domain, consuming side: binds the channel its peer allocated (port `port:P`,
//! default 1, the first port of a fresh table), maps the offered page (reference `gref:R`,
//! default the first reference of a fresh table) read-write in its grant window, and checks
//! every one of `messages:N` messages on arrival; then unmaps the page.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::ShutdownReason;
    use warden_rt::abi::ipc::{GRANT_WINDOW, IpcError};
    use warden_rt::hypercall::{shutdown, yield_now};
    use warden_rt::ipc::{self, IpcFail};
    use warden_rt::println;
    use warden_rt::ring::Consumer;

    let args = info.args();
    let peer = warden_guests::arg_u64(args, "peer").unwrap_or(0) as u32;
    let n = warden_guests::arg_u64(args, "messages").unwrap_or(10_000);
    let their_port = warden_guests::arg_u64(args, "port").unwrap_or(1) as u32;
    let gref = warden_guests::arg_u64(args, "gref").unwrap_or(1 << 16) as u32;
    let fail = |what: &str, e: IpcFail| -> ! {
        println!("pong: FAILED: {what}: {e:?}");
        shutdown(ShutdownReason::Failure)
    };
    // The peer may not have allocated its port yet: retry for a while.
    let mut port = None;
    for _ in 0..100_000 {
        match ipc::evtchn_bind(peer, their_port) {
            Ok(p) => {
                port = Some(p);
                break;
            }
            Err(IpcFail::Invalid(IpcError::PortNotInUse)) => yield_now(),
            Err(e) => fail("binding", e),
        }
    }
    let Some(port) = port else {
        println!("pong: FAILED: the peer never allocated its port");
        shutdown(ShutdownReason::Failure);
    };
    let mut mapped = Err(IpcFail::Invalid(IpcError::BadRef));
    for _ in 0..100_000 {
        mapped = ipc::grant_map(peer, gref, GRANT_WINDOW, true);
        if mapped != Err(IpcFail::Invalid(IpcError::BadRef)) {
            break;
        }
        yield_now();
    }
    if let Err(e) = mapped {
        fail("mapping the ring page", e);
    }
    let Some(page) = warden_rt::abi::guest::grant_window_page(0) else { unreachable!() };
    println!("pong: bound port {port} to the peer's port {their_port}, mapped grant {gref:#x} at {GRANT_WINDOW:#x}");
    let mut ring = Consumer::new(page);
    let mask = 1u64 << port;
    ipc::evtchn_send(port).unwrap_or_else(|e| fail("saying hello", e));
    let mut got = 0u64;
    while got < n {
        match ring.pop() {
            Ok(Some(m)) => {
                if m != [got, check(got)] {
                    println!("pong: FAILED: message {got} arrived as {m:x?}");
                    shutdown(ShutdownReason::Failure);
                }
                got += 1;
                if got.is_multiple_of(128) {
                    let _ = ipc::evtchn_send(port);
                }
            }
            Ok(None) => {
                ipc::evtchn_send(port).unwrap_or_else(|e| fail("acknowledging", e));
                if ipc::evtchn_wait(mask, Some(5_000_000)).unwrap_or_else(|e| fail("waiting", e)) == 0 {
                    println!("pong: FAILED: nothing arrived for 5 s after {got} messages");
                    shutdown(ShutdownReason::Failure);
                }
            }
            Err(c) => {
                println!("pong: FAILED: the ring is corrupt: {c:?}");
                shutdown(ShutdownReason::Failure);
            }
        }
    }
    println!("pong: all {n} messages received, every one checked on arrival");
    ipc::evtchn_send(port).unwrap_or_else(|e| fail("acknowledging", e));
    // Let the peer try (and fail) to revoke while the page is mapped: it raises the phase flag
    // (word 2 of the page) once refused. Then unmap.
    let mut waited = 0;
    while page.words[2].load(core::sync::atomic::Ordering::Acquire) == 0 {
        waited += 1;
        if waited > 3000 {
            println!("pong: FAILED: the peer never tried to revoke");
            shutdown(ShutdownReason::Failure);
        }
        let _ = ipc::evtchn_wait(mask, Some(10_000));
    }
    // A reference the peer never handed out is refused (the peer is alive: it waits for the
    // unmap below before it can revoke and end).
    let forged = ipc::grant_map(peer, gref + 5, GRANT_WINDOW + 4096, true);
    if forged != Err(IpcFail::Invalid(IpcError::BadRef)) {
        println!("pong: FAILED: forged map gave {forged:?}");
        shutdown(ShutdownReason::Failure);
    }
    println!("pong: a forged reference is refused (bad grant reference)");
    ipc::grant_unmap(peer, gref).unwrap_or_else(|e| fail("unmapping", e));
    println!("pong: ring page unmapped");
    let _ = ipc::evtchn_send(port);
    warden_guests::report_hypercalls("pong", 0);
}

/// The second word of message `i`: a value the consumer can recompute.
#[cfg(target_os = "none")]
fn check(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5a5a_5a5a
}

#[cfg(not(target_os = "none"))]
fn main() {}
