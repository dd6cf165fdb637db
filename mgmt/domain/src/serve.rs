//! The serve loop: smoltcp over the virtio-net device, up to `CONNECTIONS` TCP connections at
//! once, each frame handed to its connection's `Session`; every refusal is logged with its
//! reason.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address};
use warden_mgmt_proto::{FrameReader, OperatorList, Signer, encode_frame};
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
/// Connections served at once (one listening socket each).
const CONNECTIONS: usize = 4;
/// TCP buffers (a template image arrives through the receive buffer in pieces).
const SOCKET_BUFFER: usize = 64 * 1024;
/// Bytes of template images the store may hold.
const TEMPLATE_BUDGET: usize = 16 << 20;
/// The label new domains are built under.
const BUILD_LABEL: &str = "build_t";

/// `port:N` and the operator entries from the manifest arguments.
/// What the manifest arguments configure.
pub struct Args {
    pub port: u16,
    pub operators: OperatorList,
    /// `bench:N`: time N `list` hypercalls before serving (`cargo xtask bench mgmt`).
    pub bench: Option<u32>,
}

/// `port:N`, `bench:N` and the operator entries from the manifest arguments.
pub fn parse_args(args: &str) -> Result<Args, String> {
    let mut port = DEFAULT_PORT;
    let mut bench = None;
    let mut ops = String::new();
    for item in args.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        if let Some(p) = item.strip_prefix("port:") {
            port = p.parse().map_err(|_| alloc::format!("bad port `{p}`"))?;
        } else if let Some(n) = item.strip_prefix("bench:") {
            bench = Some(
                n.parse()
                    .map_err(|_| alloc::format!("bad bench count `{n}`"))?,
            );
        } else {
            ops.push_str(item);
            ops.push('\n');
        }
    }
    let operators = OperatorList::parse(&ops).map_err(|e| alloc::format!("operator list: {e}"))?;
    Ok(Args {
        port,
        operators,
        bench,
    })
}

/// Microseconds since boot from the TSC (its rate is only roughly 1 GHz under QEMU; smoltcp
/// needs a monotonic clock, not an exact one).
fn now() -> Instant {
    Instant::from_micros((warden_abi::guest::rdtsc() / 1000) as i64)
}

/// 32 bytes from RDRAND; `None` if the CPU has none or it stopped answering.
fn random32() -> Option<[u8; 32]> {
    let mut s = [0u8; 32];
    for chunk in s.chunks_mut(8) {
        chunk.copy_from_slice(&warden_abi::guest::rdrand64()?.to_le_bytes());
    }
    Some(s)
}

/// The response key, generated here at boot from RDRAND: its secret never leaves this domain's
/// memory and is gone at the next boot. Without entropy there is no key and no service.
fn response_key() -> Option<Signer> {
    // A scalar out of range (0 or >= n, probability ~2^-32) is simply drawn again.
    (0..8).find_map(|_| Signer::from_secret(&random32()?))
}

struct Conn {
    session: Session,
    reader: FrameReader,
    out: Vec<u8>,
    /// The stream cannot be resynchronised (an oversized length prefix): close once `out` is sent.
    close: bool,
}

pub fn run(
    info: &'static StartInfo,
    mut nic: Nic,
    port: u16,
    operators: OperatorList,
    bench_tsc_per_ms: Option<u64>,
) -> ! {
    let (Some(response_key), Some(seed)) = (response_key(), random32()) else {
        println!(
            "mgmt: FAILED: no entropy (the CPU offers no RDRAND): no response key, no service"
        );
        hypercall::shutdown(ShutdownReason::Failure)
    };
    // Operators pin this key (`wardenctl --server-key`): every response is signed with it.
    println!("mgmt: response key {}", response_key.public_hex());
    let config = ServerConfig {
        response_key,
        operators,
        build_label: BUILD_LABEL.into(),
        template_budget: TEMPLATE_BUDGET,
    };
    let n_ops = config.operators.len();
    let hv = Lifecycle::new(info.abi_version, bench_tsc_per_ms);
    let mut server = Server::new(config, hv);
    let mut nonces = Nonces::new(seed);

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
    let mut slots: Vec<(SocketHandle, Option<Conn>)> = (0..CONNECTIONS)
        .map(|_| {
            let socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
                tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
            );
            (sockets.add(socket), None)
        })
        .collect();
    // Listen before saying so: a connection that arrives before `listen` is reset.
    for (handle, _) in &slots {
        if sockets
            .get_mut::<tcp::Socket>(*handle)
            .listen(port)
            .is_err()
        {
            println!("mgmt: cannot listen on port {port}");
            hypercall::shutdown(ShutdownReason::Failure);
        }
    }
    println!("mgmt: listening on 10.0.2.15:{port} for {n_ops} operators");
    loop {
        let mut busy = iface.poll(now(), &mut nic, &mut sockets)
            == smoltcp::iface::PollResult::SocketStateChanged;
        for (handle, conn) in slots.iter_mut() {
            let s = sockets.get_mut::<tcp::Socket>(*handle);
            busy |= serve_socket(s, conn, port, &mut server, &mut nonces);
        }
        if !busy {
            // Nothing to do: give the CPU away for a moment (polling, no interrupts).
            let _ = hypercall::block(Some(200));
        }
    }
}

/// Moves one socket's connection along: (re)listen, hello, frames in, responses out, close.
/// Returns whether anything happened.
fn serve_socket(
    s: &mut tcp::Socket<'_>,
    conn: &mut Option<Conn>,
    port: u16,
    server: &mut Server<Lifecycle>,
    nonces: &mut Nonces,
) -> bool {
    let mut busy = false;
    if !s.is_open() {
        if conn.take().is_some() {
            println!("mgmt: connection closed");
        }
        if s.listen(port).is_err() {
            println!("mgmt: cannot listen on port {port}");
            hypercall::shutdown(ShutdownReason::Failure);
        }
    }
    if s.may_send() && conn.is_none() {
        let session = Session::new(nonces);
        let out = encode_frame(&session.hello(server));
        *conn = Some(Conn {
            session,
            reader: FrameReader::new(),
            out,
            close: false,
        });
    }
    let Some(c) = conn.as_mut() else { return busy };
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
                let h = c.session.handle(server, &body);
                log(&h);
                c.out.extend_from_slice(&encode_frame(&h.response));
            }
            Ok(None) => break,
            Err(e) => {
                println!("mgmt: refused frame: {e:?}; closing the connection");
                c.out
                    .extend_from_slice(&encode_frame(&c.session.refuse_frame(server)));
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
    if c.out.is_empty() && (c.close || !s.may_recv()) {
        s.close();
    }
    busy
}

fn log(h: &warden_mgmt_server::Handled) {
    let who = h.operator.as_ref().map_or("-", |(n, _)| n.as_str());
    let what = h.request.unwrap_or("-");
    match &h.response.result {
        Ok(_) => println!("mgmt: {who}: {what}: ok"),
        Err(e) => println!("mgmt: refused {who}: {what}: {e}"),
    }
}
