//! IPC test domain, producing side: allocates an event channel for its peer, offers it a page
//! read-write, and sends `messages:N` (default 10,000) numbered messages through a ring in that
//! page, ringing the channel's doorbell; after `linger:MS` (default 0) it shows that revoking
//! the page is refused while the peer maps it and accepted once the peer has unmapped it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

/// The shared ring page (page-aligned; its address / 4096 is the frame offered).
#[cfg(target_os = "none")]
static RING: warden_rt::abi::ipc::SharedPage = warden_rt::abi::ipc::SharedPage::new();

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::ShutdownReason;
    use warden_rt::abi::ipc::IpcError;
    use warden_rt::hypercall::shutdown;
    use warden_rt::ipc::{self, IpcFail};
    use warden_rt::println;
    use warden_rt::ring::Producer;

    let peer = warden_guests::arg_u64(info.args(), "peer").unwrap_or(1) as u32;
    let n = warden_guests::arg_u64(info.args(), "messages").unwrap_or(10_000);
    // Keep the channel and the mapping up this long after the exchange (so that a hostile
    // neighbour has live targets to attack).
    let linger_ms = warden_guests::arg_u64(info.args(), "linger").unwrap_or(0);
    let fail = |what: &str, e: IpcFail| -> ! {
        println!("ping: FAILED: {what}: {e:?}");
        shutdown(ShutdownReason::Failure)
    };
    let mut ring = Producer::new(&RING);
    let port = ipc::evtchn_alloc(peer).unwrap_or_else(|e| fail("allocating the channel", e));
    let page = core::ptr::addr_of!(RING) as u64;
    let gref = ipc::grant_offer(peer, page, true).unwrap_or_else(|e| fail("offering the ring page", e));
    println!("ping: port {port} and grant {gref:#x} (page {page:#x}) offered to domain {peer}");
    let mask = 1u64 << port;
    // The peer rings once when it has bound the channel and mapped the page.
    match ipc::evtchn_wait(mask, Some(10_000_000)) {
        Ok(0) => {
            println!("ping: FAILED: the peer never connected");
            shutdown(ShutdownReason::Failure);
        }
        Ok(_) => println!("ping: peer connected"),
        Err(e) => fail("waiting for the peer", e),
    }
    let mut sent = 0u64;
    while ring.acknowledged() < n {
        while sent < n && ring.push([sent, check(sent)]).is_ok() {
            sent += 1;
        }
        ipc::evtchn_send(port).unwrap_or_else(|e| fail("ringing the doorbell", e));
        if ring.acknowledged() < n && ipc::evtchn_wait(mask, Some(5_000_000)).unwrap_or_else(|e| fail("waiting", e)) == 0 {
            println!("ping: FAILED: no progress for 5 s at {} of {n}", ring.acknowledged());
            shutdown(ShutdownReason::Failure);
        }
    }
    println!("ping: all {n} messages sent and acknowledged");
    if linger_ms > 0 {
        // A plain block also ends when the peer rings the channel (its last acknowledgement may
        // arrive now): linger until the timeout itself wakes us, so that the scenario's other
        // domains really find both peers alive for `linger` ms. Bounded: the peer sends no more
        // than a few events from here on.
        for _ in 0..64 {
            if let Ok(warden_rt::abi::BlockWake::Timeout) = warden_rt::hypercall::block(Some(linger_ms * 1000)) {
                break;
            }
        }
    }
    // Revoke while the peer still maps the page: refused. Then wait for the unmap and retry.
    let mut refused_while_mapped = false;
    for _ in 0..1000 {
        match ipc::grant_revoke(gref) {
            Ok(()) => {
                println!("ping: grant revoked after the peer unmapped it (refused while mapped: {refused_while_mapped})");
                // The revoked reference is dead for good, even for its granter.
                match ipc::grant_revoke(gref) {
                    Err(IpcFail::Invalid(IpcError::StaleRef)) => println!("ping: the revoked reference is stale"),
                    other => {
                        println!("ping: FAILED: revoking twice gave {other:?}");
                        shutdown(ShutdownReason::Failure);
                    }
                }
                let _ = ipc::evtchn_close(port);
                if !refused_while_mapped {
                    println!("ping: FAILED: the revoke was never refused while mapped");
                    shutdown(ShutdownReason::Failure);
                }
                // One call had nothing to decide: the second revoke names a reference that no
                // longer exists, so there is no grantee to take the MAC decision about.
                warden_guests::report_hypercalls("ping", 1);
                return;
            }
            Err(IpcFail::Invalid(IpcError::StillMapped)) => {
                if !refused_while_mapped {
                    println!("ping: revoke refused while the peer maps the page: still mapped");
                    // Tell the peer (word 2 of the page is the phase flag) it may unmap now.
                    RING.words[2].store(1, core::sync::atomic::Ordering::Release);
                }
                refused_while_mapped = true;
                let _ = ipc::evtchn_send(port);
                let _ = ipc::evtchn_wait(mask, Some(100_000));
            }
            Err(e) => fail("revoking", e),
        }
    }
    println!("ping: FAILED: the peer never unmapped the page");
    shutdown(ShutdownReason::Failure);
}

/// The second word of message `i`: a value the consumer can recompute.
#[cfg(target_os = "none")]
fn check(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5a5a_5a5a
}

#[cfg(not(target_os = "none"))]
fn main() {}
