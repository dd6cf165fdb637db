//! The management client: connects to a management domain, reads its hello, signs each request
//! with the operator's key for that connection, and renders replies as tables.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use warden_mgmt_proto::{
    DomainSummary, Envelope, Error, FrameReader, Hello, HostInfo, NONCE_LEN, Reply, Request,
    Response, Signer, TemplateSummary, VERSION, decode, encode_frame,
};

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
}

impl Client {
    pub fn connect(addr: &str) -> Result<Client, ClientError> {
        Self::connect_within(addr, Duration::from_secs(120))
    }

    /// [`Self::connect`] waiting at most `wait` for each read.
    pub fn connect_within(addr: &str, wait: Duration) -> Result<Client, ClientError> {
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
        };
        let hello: Hello = decode(&c.frame()?)
            .map_err(|_| ClientError::Protocol("the first frame is not a hello".into()))?;
        if hello.version != VERSION {
            return Err(ClientError::Protocol(format!(
                "server speaks version {}, we speak {VERSION}",
                hello.version
            )));
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

    /// Sends raw bytes and reads one response frame (for tests of refusals).
    pub fn raw(&mut self, bytes: &[u8]) -> Result<Response, ClientError> {
        self.stream.write_all(bytes)?;
        let f = self.frame()?;
        decode(&f).map_err(|_| ClientError::Protocol("the response is not a response frame".into()))
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
        if resp.seq != env.seq {
            return Err(ClientError::Protocol(format!(
                "response to {} for request {}",
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
