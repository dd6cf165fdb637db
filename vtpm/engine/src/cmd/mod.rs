//! Command handlers, one module per family (Part 3 chapter grouping).

mod attest;
mod audit;
mod basic;
mod crypto;
mod duplication;
mod hier;
mod nv;
mod object;
mod pcr;
mod policy;
mod sequence;

pub(crate) use audit::{CommandAudit, SessionAudit};
pub(crate) use sequence::Seq;
