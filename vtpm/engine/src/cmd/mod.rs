//! Command handlers, one module per family (Part 3 chapter grouping).

mod basic;
mod pcr;
mod object;
mod crypto;
mod nv;
mod hier;
mod sequence;

pub(crate) use sequence::Seq;
