//! The management client: connects to a management domain, checks its hello names the response
//! key the operator pinned, signs each request with the operator's key for that connection,
//! accepts only responses signed with the pinned key for that connection and request, and
//! renders replies as tables.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use warden_mgmt_proto::{
    DomainSummary, Envelope, Error, FrameReader, Hello, HostInfo, NONCE_LEN, Reply, Request,
    Response, Signer, TemplateSummary, VERSION, decode, encode_frame, public_key, verify_response,
};

/// The management domain's response key as the operator pinned it (SEC1 compressed hex, as
/// the domain prints it at boot: `mgmt: response key …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKey {
    key: p256::ecdsa::VerifyingKey,
    sec1: Vec<u8>,
}

impl ServerKey {
    pub fn parse_hex(text: &str) -> Result<ServerKey, String> {
        let text = text.trim();
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .filter(|b| b.len() == warden_mgmt_proto::PUBLIC_KEY_LEN)
            .ok_or_else(|| format!("server key `{text}` is not 66 hex digits"))?;
        let key = public_key(&bytes)
            .ok_or_else(|| format!("server key `{text}` is not a P-256 point"))?;
        Ok(ServerKey { key, sec1: bytes })
    }
}

/// Why a request got no answer (as opposed to an answer that is an error).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the management domain at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    /// A response that does not verify under the pinned key for this connection and request:
    /// forged, altered or replayed on the way. Never acted on.
    #[error("response refused: {0}")]
    Forged(String),
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server answered with a refusal.
    #[error("{0}")]
    Server(Error),
}

/// One connection to a management domain.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    reader: FrameReader,
    nonce: [u8; NONCE_LEN],
    seq: u64,
    server: ServerKey,
}

impl Client {
    /// Connects to the management domain whose response key is `server`.
    pub fn connect(addr: &str, server: &ServerKey) -> Result<Client, ClientError> {
        Self::connect_within(addr, server, Duration::from_secs(120))
    }

    /// [`Self::connect`] waiting at most `wait` for each read.
    pub fn connect_within(
        addr: &str,
        server: &ServerKey,
        wait: Duration,
    ) -> Result<Client, ClientError> {
        let err = |source| ClientError::Connect {
            addr: addr.into(),
            source,
        };
        let sock = addr
            .to_socket_addrs()
            .map_err(err)?
            .next()
            .ok_or_else(|| err(std::io::Error::other("no address")))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(20)).map_err(err)?;
        stream.set_read_timeout(Some(wait))?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            reader: FrameReader::new(),
            nonce: [0; NONCE_LEN],
            seq: 0,
            server: server.clone(),
        };
        let hello: Hello = decode(&c.frame()?)
            .map_err(|_| ClientError::Protocol("the first frame is not a hello".into()))?;
        if hello.version != VERSION {
            return Err(ClientError::Protocol(format!(
                "server speaks version {}, we speak {VERSION}",
                hello.version
            )));
        }
        if hello.server_key != server.sec1 {
            return Err(ClientError::Forged(
                "the server's response key is not the pinned one".into(),
            ));
        }
        c.nonce = hello.nonce;
        Ok(c)
    }

    /// The server's nonce for this connection.
    pub fn nonce(&self) -> [u8; NONCE_LEN] {
        self.nonce
    }

    fn frame(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.reader.next_frame() {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(format!("{e:?}"))),
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.reader.push(&buf[..n]);
        }
    }

    /// Sends raw bytes and reads one response frame (for tests of refusals); the response must
    /// be signed with the pinned key for this connection.
    pub fn raw(&mut self, bytes: &[u8]) -> Result<Response, ClientError> {
        self.stream.write_all(bytes)?;
        let f = self.frame()?;
        let r: Response = decode(&f)
            .map_err(|_| ClientError::Protocol("the response is not a response frame".into()))?;
        if !verify_response(&self.server.key, &self.nonce, &r) {
            return Err(ClientError::Forged(
                "its signature does not verify under the pinned server key for this connection"
                    .into(),
            ));
        }
        Ok(r)
    }

    /// Signs `request` as this connection's next request.
    pub fn envelope(&self, key: &Signer, request: &Request) -> Envelope {
        key.envelope(
            &self.nonce,
            self.seq,
            postcard::to_allocvec(request).unwrap_or_default(),
        )
    }

    /// Sends `request` signed by `key` and returns the server's answer.
    pub fn request(&mut self, key: &Signer, request: &Request) -> Result<Reply, ClientError> {
        let env = self.envelope(key, request);
        let resp = self.raw(&encode_frame(&env))?;
        // The sequence number is signed: an old response replayed is refused here.
        if resp.seq != env.seq {
            return Err(ClientError::Forged(format!(
                "signed for request {}, not request {}",
                resp.seq, env.seq
            )));
        }
        self.seq += 1;
        resp.result.map_err(ClientError::Server)
    }
}

fn mib(b: u64) -> String {
    format!("{} MiB", b >> 20)
}

/// A reply as text for a terminal.
pub fn table(reply: &Reply) -> String {
    match reply {
        Reply::HostInfo(h) => host_table(h),
        Reply::Domains(ds) => domain_table(ds),
        Reply::Domain(d) => domain_table(std::slice::from_ref(d)),
        Reply::Templates(ts) => template_table(ts),
        Reply::Created { id } => format!("created domain {id}\n"),
        Reply::Done => "ok\n".into(),
        Reply::Audit(dump) => audit_table(dump),
    }
}

/// One `avc:` line per record (types as `type#N`: the management domain holds no policy
/// names; `wardenpol audit` resolves them), then the ring's next sequence number and drops.
fn audit_table(dump: &[u8]) -> String {
    match warden_ipc::audit::decode_dump(dump) {
        Ok((header, records)) => {
            let mut out: String = records.map(|r| format!("{}\n", r.avc(None))).collect();
            out += &format!(
                "next seq {}, {} records dropped by the ring\n",
                header.next_seq, header.dropped
            );
            out
        }
        Err(e) => format!("undecodable audit data from the hypervisor: {e}\n"),
    }
}

fn host_table(h: &HostInfo) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "unknown".into(), mib);
    format!(
        "abi version      {}.{}\nmemory total     {}\nmemory free      {}\ndomains          {}\nmanagement       domain {} ({})\n",
        h.abi_version >> 16,
        h.abi_version & 0xffff,
        opt(h.memory_total_bytes),
        opt(h.memory_free_bytes),
        h.domains,
        h.mgmt_domain,
        h.mgmt_label
    )
}

fn domain_table(ds: &[DomainSummary]) -> String {
    let mut out = format!(
        "{:>4}  {:<16} {:<16} {:<9} {:>4} {:>9} {:>10}\n",
        "ID", "NAME", "LABEL", "STATE", "PRIO", "MEMORY", "CPU TICKS"
    );
    for d in ds {
        out += &format!(
            "{:>4}  {:<16} {:<16} {:<9} {:>4} {:>9} {:>10}\n",
            d.id,
            d.name,
            d.label,
            d.state.name(),
            d.priority,
            mib(d.memory_bytes),
            d.cpu_ticks
        );
    }
    out
}

fn template_table(ts: &[TemplateSummary]) -> String {
    let mut out = format!(
        "{:<16} {:>10} {:<16} {:>8} {:>4} {:<16} {}\n",
        "NAME", "IMAGE", "SHA256", "MEMORY", "PRIO", "LABEL", "ARGS"
    );
    for t in ts {
        out += &format!(
            "{:<16} {:>10} {:<16} {:>8} {:>4} {:<16} {}\n",
            t.name,
            t.image_bytes,
            crate::hex(&t.image_sha256[..8]),
            format!("{} MiB", t.memory_mib),
            t.priority,
            t.label,
            t.args
        );
    }
    out
}
