//! The management domain's logic, without hardware: per-connection sessions that authenticate
//! and sequence requests, the role check, the template store, and the lifecycle operations
//! behind the [`Hypervisor`] trait (hypercalls in the domain, a fake in the host tests).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod hypervisor;
mod nonce;
mod server;
mod session;
mod templates;

pub use hypervisor::Hypervisor;
pub use nonce::Nonces;
pub use server::{Config, Server};
pub use session::{Handled, Session};
pub use templates::{MAX_TEMPLATES, TemplateStore};
