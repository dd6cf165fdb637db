//! Command handlers, one module per family (Part 3 chapter grouping).

mod attest;
mod basic;
mod crypto;
pub(crate) mod duplication;
mod hier;
mod nv;
mod object;
mod pcr;
mod policy;
mod sequence;

pub(crate) use sequence::Seq;
