//! IPC benchmark domain (run under `-icount shift=0`, where TSC deltas count instructions):
//! `role:ping` measures the event-channel ping-pong round trip with `role:pong` (send, then
//! block in `EvtchnWait` until the peer answers) and the null hypercall round trip (MAC-checked,
//! like every call), each the best of 5 rounds of `iterations:N`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::ShutdownReason;
    use warden_rt::abi::guest::rdtsc;
    use warden_rt::abi::ipc::IpcError;
    use warden_rt::ipc::{self, IpcFail};
    use warden_rt::{hypercall, println};

    let args = info.args();
    let peer = warden_guests::arg_u64(args, "peer").unwrap_or(1) as u32;
    let n = warden_guests::arg_u64(args, "iterations").unwrap_or(2000);
    let ping = args.contains("role:ping");
    let fail = |what: &str, e: IpcFail| -> ! {
        println!("bench-ipc: FAILED: {what}: {e:?}");
        hypercall::shutdown(ShutdownReason::Failure)
    };
    let port = if ping {
        ipc::evtchn_alloc(peer).unwrap_or_else(|e| fail("alloc", e))
    } else {
        let mut bound = None;
        for _ in 0..100_000 {
            match ipc::evtchn_bind(peer, 1) {
                Ok(p) => {
                    bound = Some(p);
                    break;
                }
                Err(IpcFail::Invalid(IpcError::PortNotInUse)) => hypercall::yield_now(),
                Err(e) => fail("bind", e),
            }
        }
        let Some(p) = bound else { fail("bind", IpcFail::Invalid(IpcError::PortNotInUse)) };
        ipc::evtchn_send(p).unwrap_or_else(|e| fail("hello", e));
        p
    };
    let mask = 1u64 << port;
    let rounds = 5 * n;
    if !ping {
        // Answer every doorbell until the measuring side has all its rounds.
        for _ in 0..rounds {
            ipc::evtchn_wait(mask, None).unwrap_or_else(|e| fail("wait", e));
            ipc::evtchn_send(port).unwrap_or_else(|e| fail("answer", e));
        }
        return;
    }
    ipc::evtchn_wait(mask, None).unwrap_or_else(|e| fail("waiting for the peer", e));
    let mut best_rt = u64::MAX;
    for _ in 0..5 {
        let t0 = rdtsc();
        for _ in 0..n {
            ipc::evtchn_send(port).unwrap_or_else(|e| fail("send", e));
            ipc::evtchn_wait(mask, None).unwrap_or_else(|e| fail("wait", e));
        }
        best_rt = best_rt.min((rdtsc() - t0) / n);
    }
    let mut best_null = u64::MAX;
    for _ in 0..5 {
        let t0 = rdtsc();
        for _ in 0..n {
            let _ = hypercall::null();
        }
        best_null = best_null.min((rdtsc() - t0) / n);
    }
    let mut best_bare = u64::MAX;
    for _ in 0..5 {
        let t0 = rdtsc();
        for _ in 0..n {
            hypercall::bare_exit();
        }
        best_bare = best_bare.min((rdtsc() - t0) / n);
    }
    println!("bench-ipc: iterations={n} evtchn_roundtrip={best_rt} null_hypercall={best_null} bare_vmmcall={best_bare}");
}

#[cfg(not(target_os = "none"))]
fn main() {}
