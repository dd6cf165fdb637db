//! One connection: its nonce, its next sequence number, and the checks every envelope passes
//! (decode, version, key, signature, sequence, request, role) before the server acts on it;
//! every response it gives is signed with the server's response key.

use alloc::string::String;
use warden_mgmt_proto::{
    Envelope, Error, Hello, NONCE_LEN, Request, Response, Role, VERSION, decode, verify,
};

use crate::hypervisor::Hypervisor;
use crate::nonce::Nonces;
use crate::server::Server;

#[derive(Debug)]
pub struct Session {
    nonce: [u8; NONCE_LEN],
    next_seq: u64,
}

/// What one frame led to: the response to send, and who asked what (for the log).
#[derive(Debug)]
pub struct Handled {
    pub response: Response,
    /// The operator's name and role once authenticated.
    pub operator: Option<(String, Role)>,
    pub request: Option<&'static str>,
}

impl Session {
    pub fn new(nonces: &mut Nonces) -> Session {
        Session {
            nonce: nonces.next_nonce(),
            next_seq: 0,
        }
    }

    /// This connection's nonce.
    pub fn nonce(&self) -> [u8; NONCE_LEN] {
        self.nonce
    }

    /// The first frame the server sends on this connection.
    pub fn hello<H>(&self, server: &Server<H>) -> Hello {
        Hello {
            version: VERSION,
            nonce: self.nonce,
            server_key: server.response_key.public_sec1(),
        }
    }

    /// The signed refusal of a frame that cannot be read at all (the connection then closes).
    pub fn refuse_frame<H>(&self, server: &Server<H>) -> Response {
        server
            .response_key
            .response(&self.nonce, u64::MAX, Err(Error::Malformed))
    }

    /// Checks and carries out one frame body. Refusals change nothing but this response.
    pub fn handle<H: Hypervisor>(&mut self, server: &mut Server<H>, frame: &[u8]) -> Handled {
        let mut out = Handled {
            response: self.refuse_frame(server),
            operator: None,
            request: None,
        };
        let Ok(env) = decode::<Envelope>(frame) else {
            return out;
        };
        let result = self.check(server, &env, &mut out);
        // Signed for this connection and this sequence number: a network attacker can neither
        // forge an answer nor replay one from another request or connection.
        out.response = server.response_key.response(&self.nonce, env.seq, result);
        out
    }

    fn check<H: Hypervisor>(
        &mut self,
        server: &mut Server<H>,
        env: &Envelope,
        out: &mut Handled,
    ) -> Result<warden_mgmt_proto::Reply, Error> {
        if env.version != VERSION {
            return Err(Error::Version {
                got: env.version,
                want: VERSION,
            });
        }
        let op = server.operators.find(&env.key).ok_or(Error::UnknownKey)?;
        if !verify(&op.key, &self.nonce, env) {
            return Err(Error::BadSignature);
        }
        if env.seq != self.next_seq {
            return Err(Error::Replay {
                expected: self.next_seq,
                got: env.seq,
            });
        }
        self.next_seq += 1;
        let role = op.role;
        out.operator = Some((op.name.clone(), role));
        let request = decode::<Request>(&env.body).map_err(|_| Error::Malformed)?;
        out.request = Some(request.name());
        if !role.allows(&request) {
            return Err(Error::Forbidden {
                role,
                request: request.name().into(),
                needs: Role::required(&request),
            });
        }
        server.execute(request)
    }
}
