//! Category test domain: opens an event channel to domain `allow:N` (it must be granted: same
//! category) and to domain `deny:M` (it must be denied: another category, though the same
//! type), says what happened, then stays up for `stay:MS` milliseconds (default 3000) so that
//! the other tenants find it running when they try it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::ShutdownReason;
    use warden_rt::hypercall::shutdown;
    use warden_rt::ipc::{self, IpcFail};
    use warden_rt::println;

    let stay_ms = warden_guests::arg_u64(info.args(), "stay").unwrap_or(3000);
    let mut ok = true;
    for (key, want_granted) in [("allow", true), ("deny", false)] {
        let Some(peer) = warden_guests::arg_u64(info.args(), key) else { continue };
        let peer = peer as u32;
        match ipc::evtchn_alloc(peer) {
            Ok(port) => {
                println!("tenant: channel to domain {peer}: allowed");
                ok &= want_granted;
                // Close it again: the peers are not meant to talk, only to be able to.
                if let Err(e) = ipc::evtchn_close(port) {
                    println!("tenant: UNEXPECTED: closing port {port}: {e:?}");
                    ok = false;
                }
            }
            Err(IpcFail::Denied) => {
                println!("tenant: channel to domain {peer}: denied");
                ok &= !want_granted;
            }
            Err(e) => {
                println!("tenant: UNEXPECTED: channel to domain {peer}: {e:?}");
                ok = false;
            }
        }
    }
    let _ = warden_rt::hypercall::block(Some(stay_ms * 1000));
    if ok {
        println!("tenant: every channel went as its categories say");
        shutdown(ShutdownReason::Done)
    } else {
        println!("tenant: FAILED: a channel went against its categories");
        shutdown(ShutdownReason::Failure)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
