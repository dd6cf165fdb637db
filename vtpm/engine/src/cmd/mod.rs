//! Command handlers, one module per family (Part 3 chapter grouping).

mod admin;
mod attest;
mod audit;
mod basic;
mod crypto;
pub(crate) mod duplication;
mod ecc2;
mod hier;
mod nv;
mod object;
mod pcr;
mod pcr_admin;
mod policy;
mod policy_more;
mod sequence;
mod x509;

pub(crate) use audit::{CommandAudit, SessionAudit};
pub(crate) use ecc2::CommitState;
pub(crate) use policy_more::{PolicyMore, template_matches};
pub(crate) use sequence::Seq;
