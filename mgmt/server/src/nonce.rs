//! Per-connection nonces: SHA-256 of a boot-unique seed and a counter.
//!
//! A nonce only has to be unique: an attacker can replay signed requests it has seen, but
//! cannot sign new ones, so a request bound to one connection's nonce is useless on any other.
//! Within a boot the counter makes nonces distinct; across boots the seed does (the domain
//! draws it from RDRAND when the CPU has it, and the time-stamp counter otherwise).

use sha2::{Digest, Sha256};
use warden_mgmt_proto::NONCE_LEN;

#[derive(Debug, Clone)]
pub struct Nonces {
    seed: [u8; 32],
    counter: u64,
}

impl Nonces {
    pub fn new(seed: [u8; 32]) -> Nonces {
        Nonces { seed, counter: 0 }
    }

    pub fn next_nonce(&mut self) -> [u8; NONCE_LEN] {
        self.counter += 1;
        let mut h = Sha256::new();
        h.update(b"warden-mgmt nonce\0");
        h.update(self.seed);
        h.update(self.counter.to_le_bytes());
        h.finalize().into()
    }
}
