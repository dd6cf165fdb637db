//! The serve loop: smoltcp over the virtio-net device, one TCP connection at a time, each
//! frame handed to the connection's `Session`; every refusal is logged with its reason.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address};
use warden_mgmt_proto::{Error, FrameReader, OperatorList, Response, encode_frame};
use warden_mgmt_server::{Config as ServerConfig, Nonces, Server, Session};
use warden_rt::abi::{ShutdownReason, StartInfo};
use warden_rt::{hypercall, println};

use crate::hv::Lifecycle;
use crate::net::Nic;

/// The port served when the arguments name none.
const DEFAULT_PORT: u16 = 7000;
/// QEMU user networking's guest address, prefix and gateway.
const ADDRESS: [u8; 4] = [10, 0, 2, 15];
const GATEWAY: [u8; 4] = [10, 0, 2, 2];
/// TCP buffers (a template image arrives through the receive buffer in pieces).
const SOCKET_BUFFER: usize = 64 * 1024;
/// Bytes of template images the store may hold.
const TEMPLATE_BUDGET: usize = 16 << 20;
/// The label new domains are built under.
const BUILD_LABEL: &str = "build_t";

/// `port:N` and the operator entries from the manifest arguments.
pub fn parse_args(args: &str) -> Result<(u16, OperatorList), String> {
    let mut port = DEFAULT_PORT;
    let mut ops = String::new();
    for item in args.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        if let Some(p) = item.strip_prefix("port:") {
            port = p.parse().map_err(|_| alloc::format!("bad port `{p}`"))?;
        } else {
            ops.push_str(item);
            ops.push('\n');
        }
    }
    let operators = OperatorList::parse(&ops).map_err(|e| alloc::format!("operator list: {e}"))?;
    Ok((port, operators))
}

/// Microseconds since boot from the TSC (its rate is only roughly 1 GHz under QEMU; smoltcp
/// needs a monotonic clock, not an exact one).
fn now() -> Instant {
    Instant::from_micros((warden_abi::guest::rdtsc() / 1000) as i64)
}

/// A seed no other boot shares: the TSC at start (QEMU derives it from the host clock).
fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    for chunk in s.chunks_mut(8) {
        chunk.copy_from_slice(&warden_abi::guest::rdtsc().to_le_bytes());
    }
    s
}

struct Conn {
    session: Session,
    reader: FrameReader,
    out: Vec<u8>,
    /// The stream cannot be resynchronised (an oversized length prefix): close once `out` is sent.
    close: bool,
}

pub fn run(info: &'static StartInfo, mut nic: Nic, port: u16, operators: OperatorList) -> ! {
    let config = ServerConfig {
        operators,
        build_label: BUILD_LABEL.into(),
        template_budget: TEMPLATE_BUDGET,
    };
    let n_ops = config.operators.len();
    let hv = Lifecycle {
        abi_version: info.abi_version,
        end_self: false,
    };
    let mut server = Server::new(config, hv);
    let mut nonces = Nonces::new(seed());

    let mut iface = Interface::new(
        Config::new(EthernetAddress(nic.mac()).into()),
        &mut nic,
        now(),
    );
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(
            IpAddress::v4(ADDRESS[0], ADDRESS[1], ADDRESS[2], ADDRESS[3]),
            24,
        ));
    });
    let _ = iface.routes_mut().add_default_ipv4_route(Ipv4Address::new(
        GATEWAY[0], GATEWAY[1], GATEWAY[2], GATEWAY[3],
    ));
    let mut sockets = SocketSet::new(vec![]);
    let socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
        tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
    );
    let handle = sockets.add(socket);
    let mut conn: Option<Conn> = None;
    println!("mgmt: listening on 10.0.2.15:{port} for {n_ops} operators");
    loop {
        let changed = iface.poll(now(), &mut nic, &mut sockets);
        let s = sockets.get_mut::<tcp::Socket>(handle);
        if !s.is_open() {
            if conn.take().is_some() {
                println!("mgmt: connection closed");
            }
            if s.listen(port).is_err() {
                println!("mgmt: cannot listen on port {port}");
                hypercall::shutdown(ShutdownReason::Failure);
            }
        }
        let mut busy = changed == smoltcp::iface::PollResult::SocketStateChanged;
        if s.may_send() && conn.is_none() {
            let session = Session::new(&mut nonces);
            let out = encode_frame(&session.hello());
            conn = Some(Conn {
                session,
                reader: FrameReader::new(),
                out,
                close: false,
            });
        }
        if let Some(c) = conn.as_mut() {
            if s.can_recv() && !c.close {
                let _ = s.recv(|buf| {
                    c.reader.push(buf);
                    (buf.len(), ())
                });
                busy = true;
            }
            while !c.close {
                match c.reader.next_frame() {
                    Ok(Some(body)) => {
                        let h = c.session.handle(&mut server, &body);
                        log(&h);
                        c.out.extend_from_slice(&encode_frame(&h.response));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        println!("mgmt: refused frame: {e:?}; closing the connection");
                        c.out.extend_from_slice(&encode_frame(&Response {
                            seq: u64::MAX,
                            result: Err(Error::Malformed),
                        }));
                        c.close = true;
                    }
                }
            }
            if !c.out.is_empty() && s.can_send() {
                if let Ok(n) = s.send_slice(&c.out) {
                    c.out.drain(..n);
                    busy = true;
                }
            }
            let peer_done = !s.may_recv();
            if c.out.is_empty() && (c.close || peer_done) {
                s.close();
            }
            if c.out.is_empty() && server.hypervisor().end_self {
                // Let the response leave before the domain ends.
                for _ in 0..200 {
                    iface.poll(now(), &mut nic, &mut sockets);
                }
                println!(
                    "mgmt: host shutdown requested; no lifecycle call here: ending the management domain"
                );
                hypercall::shutdown(ShutdownReason::Done);
            }
        }
        if !busy {
            // Nothing to do: give the CPU away for a moment (polling, no interrupts).
            let _ = hypercall::block(Some(200));
        }
    }
}

fn log(h: &warden_mgmt_server::Handled) {
    let who = h.operator.as_ref().map_or("-", |(n, _)| n.as_str());
    let what = h.request.unwrap_or("-");
    match &h.response.result {
        Ok(_) => println!("mgmt: {who}: {what}: ok"),
        Err(e) => println!("mgmt: refused {who}: {what}: {e}"),
    }
}
