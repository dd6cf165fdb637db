//! Hostile test domain: tries every inter-domain operation against two peers it has no rights
//! to (`ping:A,pong:B`) — bind, send, close, map (real, forged and revoked references), unmap,
//! revoke, offer, audit read, out-of-range ports and domains — each of which must be denied or
//! fail cleanly; then issues `random:N` (default 100,000) hypercalls with random numbers and
//! arguments. It prints `UNEXPECTED` if anything that must fail succeeds.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_rt::abi::ipc::{GRANT_WINDOW, IpcCall, IpcError};
    use warden_rt::abi::{Call, HypercallArgs, ShutdownReason, Status};
    use warden_rt::ipc::{IpcFail, call_raw};
    use warden_rt::println;

    let args = info.args();
    let ping = warden_guests::arg_u64(args, "ping").unwrap_or(0);
    let pong = warden_guests::arg_u64(args, "pong").unwrap_or(1);
    let rounds = warden_guests::arg_u64(args, "random").unwrap_or(100_000);
    let me = u64::from(info.domain_id);
    let mut bad = 0u32;

    // Let the peers connect first, so that their channel and grant exist to be attacked (they
    // stay up for a while after their exchange: `linger` in the scenario).
    let _ = warden_rt::hypercall::block(Some(20_000));

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Want {
        Denied,
        Invalid(IpcError),
    }
    let first_ref = 1u64 << 16;
    let attacks: &[(&str, IpcCall, [u64; 5], Want)] = &[
        ("bind ping's port 1", IpcCall::EvtchnBind, [ping, 1, 0, 0, 0], Want::Denied),
        ("bind pong's port 1", IpcCall::EvtchnBind, [pong, 1, 0, 0, 0], Want::Denied),
        ("allocate a port for ping", IpcCall::EvtchnAlloc, [ping, 0, 0, 0, 0], Want::Denied),
        ("send on ping's port number", IpcCall::EvtchnSend, [1, 0, 0, 0, 0], Want::Invalid(IpcError::PortNotInUse)),
        ("close pong's port number", IpcCall::EvtchnClose, [1, 0, 0, 0, 0], Want::Invalid(IpcError::PortNotInUse)),
        ("send on port 0", IpcCall::EvtchnSend, [0, 0, 0, 0, 0], Want::Invalid(IpcError::BadPort)),
        ("send on port 64", IpcCall::EvtchnSend, [64, 0, 0, 0, 0], Want::Invalid(IpcError::BadPort)),
        ("send on port 2^40", IpcCall::EvtchnSend, [1 << 40, 0, 0, 0, 0], Want::Invalid(IpcError::BadPort)),
        ("map ping's grant read-write", IpcCall::GrantMap, [ping, first_ref, GRANT_WINDOW, 1, 0], Want::Denied),
        ("map ping's grant read-only", IpcCall::GrantMap, [ping, first_ref, GRANT_WINDOW, 0, 0], Want::Denied),
        ("map a forged reference", IpcCall::GrantMap, [ping, 0x0007_0005, GRANT_WINDOW, 1, 0], Want::Denied),
        ("map a stale reference", IpcCall::GrantMap, [ping, 0xffff, GRANT_WINDOW, 1, 0], Want::Denied),
        ("unmap pong's mapping", IpcCall::GrantUnmap, [ping, first_ref, 0, 0, 0], Want::Denied),
        ("revoke ping's grant", IpcCall::GrantRevoke, [first_ref, 0, 0, 0, 0], Want::Invalid(IpcError::BadRef)),
        ("offer ping a page", IpcCall::GrantOffer, [ping, 0x200, 1, 0, 0], Want::Denied),
        ("read the audit ring", IpcCall::AuditRead, [0x20_0000, 4096, 0, 0, 0], Want::Denied),
        ("channel to itself", IpcCall::EvtchnAlloc, [me, 0, 0, 0, 0], Want::Invalid(IpcError::SelfPeer)),
        ("channel to domain 9 (not running)", IpcCall::EvtchnAlloc, [9, 0, 0, 0, 0], Want::Denied),
        ("channel to domain 99", IpcCall::EvtchnAlloc, [99, 0, 0, 0, 0], Want::Invalid(IpcError::BadDomain)),
        ("bind in domain 2^33", IpcCall::EvtchnBind, [1 << 33, 1, 0, 0, 0], Want::Invalid(IpcError::BadDomain)),
    ];
    for (what, call, a, want) in attacks {
        let got = call_raw(*call as u64, *a);
        let ok = match (got, want) {
            (Err(IpcFail::Denied), Want::Denied) => true,
            (Err(IpcFail::Invalid(e)), Want::Invalid(w)) => e == *w,
            _ => false,
        };
        let shown = match got {
            Ok(v) => {
                bad += 1;
                println!("hostile: UNEXPECTED success: {what} returned {v}");
                continue;
            }
            Err(IpcFail::Denied) => "denied",
            Err(IpcFail::Invalid(e)) => e.name(),
            Err(IpcFail::Other(s)) => s.name(),
        };
        if !ok {
            bad += 1;
        }
        println!("hostile: {what}: {shown}{}", if ok { "" } else { " (UNEXPECTED outcome)" });
    }

    // Random hypercalls: numbers over the base calls, the gap, the IPC calls and beyond.
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ me;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut allowed, mut denied, mut invalid, mut unknown) = (0u64, 0u64, 0u64, 0u64);
    let mut issued = 0u64;
    while issued < rounds {
        let nr = next() % 32;
        let mut a = [0u64; 5];
        for w in &mut a {
            let r = next();
            *w = match r % 4 {
                0 => r >> 59,
                1 => (r >> 32) % 70,
                2 => GRANT_WINDOW + ((r >> 20) % 80) * 4096,
                _ => next(),
            };
        }
        // Shutting itself down is allowed to it (so skipped: it must survive to report), and
        // sleeping calls only poll, so that the run stays short.
        if nr == Call::Shutdown as u64 || nr == Call::Block as u64 {
            continue;
        }
        if nr == IpcCall::EvtchnWait as u64 {
            a[1] = 0;
        }
        issued += 1;
        let (status, _) = warden_rt::abi::guest::hypercall(HypercallArgs { call: nr, args: a });
        match Status::from_raw(status) {
            Some(Status::Ok) => {
                allowed += 1;
                // Only calls on itself may succeed: never a channel or grant operation.
                let own = Call::from_raw(nr).is_some() || nr == IpcCall::EvtchnWait as u64;
                if !own {
                    bad += 1;
                    println!("hostile: UNEXPECTED success of call {nr} with {a:x?}");
                }
            }
            Some(Status::Denied) => denied += 1,
            Some(Status::UnknownCall) => unknown += 1,
            Some(_) => invalid += 1,
            None => {
                bad += 1;
                println!("hostile: UNEXPECTED status {status} from call {nr}");
            }
        }
    }
    // Its denials were printed on its own print budget (issue 16): let it refill before the
    // report, so that the report itself is not suppressed.
    let _ = warden_rt::hypercall::block(Some(300_000));
    println!(
        "hostile: {rounds} random hypercalls: {denied} denied, {invalid} failed cleanly, {unknown} unknown, {allowed} allowed on itself"
    );
    if bad > 0 {
        println!("hostile: {bad} UNEXPECTED outcomes");
        warden_rt::hypercall::shutdown(ShutdownReason::Failure);
    }
    println!("hostile: every forbidden operation was denied or failed cleanly");
}

#[cfg(not(target_os = "none"))]
fn main() {}
