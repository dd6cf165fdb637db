//! Auditor test domain (holds `hypervisor { audit_read }`): polls the audit ring until it has
//! seen `min:N` denials by domain `watch:D`, then prints a summary and a few records both as
//! hex (for the host to decode with the policy) and as `avc:` lines.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    use warden_ipc::audit::{HEADER_LEN, RECORD_LEN, Verdict, decode_dump};
    use warden_rt::abi::ShutdownReason;
    use warden_rt::println;

    let watch = warden_guests::arg_u64(info.args(), "watch").unwrap_or(2) as u32;
    let min = warden_guests::arg_u64(info.args(), "min").unwrap_or(1000);
    let mut buf = alloc::vec![0u8; HEADER_LEN + 40 * RECORD_LEN];
    let (mut from, mut seen, mut other) = (0u64, 0u64, 0u64);
    let mut sample: alloc::vec::Vec<[u8; RECORD_LEN]> = alloc::vec::Vec::new();
    let mut dropped = 0;
    for _ in 0..200_000 {
        if seen >= min {
            break;
        }
        let n = match warden_rt::ipc::audit_read(&mut buf, from) {
            Ok(n) => n,
            Err(e) => {
                println!("auditor: FAILED: audit read: {e:?}");
                warden_rt::hypercall::shutdown(ShutdownReason::Failure);
            }
        };
        let Ok((hdr, recs)) = decode_dump(&buf) else {
            println!("auditor: FAILED: the hypervisor wrote undecodable audit data");
            warden_rt::hypercall::shutdown(ShutdownReason::Failure);
        };
        dropped = hdr.dropped;
        for r in recs {
            if r.source_dom.0 == watch && r.verdict == Verdict::Denied {
                seen += 1;
                if sample.len() < 4 {
                    sample.push(r.encode());
                }
            } else {
                other += 1;
            }
            from = r.seq + 1;
        }
        if n == 0 {
            let _ = warden_rt::hypercall::block(Some(10_000));
        }
    }
    println!("auditor: read {seen} denials by domain {watch} ({other} other records); the ring dropped {dropped} records");
    // Whole records in hex, in two halves (console lines are at most 160 characters), for the
    // host to decode with the policy's names (`warden_ipc::audit`, `wardenpol audit`).
    for raw in &sample {
        let seq = warden_ipc::Record::decode(raw).map_or(0, |r| r.seq);
        for (half, bytes) in raw.chunks(RECORD_LEN / 2).enumerate() {
            let mut hex = [0u8; RECORD_LEN];
            for (i, b) in bytes.iter().enumerate() {
                const H: &[u8; 16] = b"0123456789abcdef";
                hex[2 * i] = H[usize::from(b >> 4)];
                hex[2 * i + 1] = H[usize::from(b & 15)];
            }
            println!("audit-hex {seq} {half} {}", core::str::from_utf8(&hex).unwrap_or(""));
        }
    }
    if seen < min {
        println!("auditor: FAILED: only {seen} of {min} denials seen");
        warden_rt::hypercall::shutdown(ShutdownReason::Failure);
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
