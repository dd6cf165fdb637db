//! Operator roles and what each may ask.

use serde::{Deserialize, Serialize};

use crate::message::Request;

/// An operator's role. Each role includes the rights of the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Reads only: host info, domain list/info, template list.
    Viewer,
    /// Also pause, resume and set-priority.
    Operator,
    /// Everything: create, destroy, templates, host shutdown.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }

    /// The least role that may make `request`.
    pub fn required(request: &Request) -> Role {
        match request {
            Request::HostInfo
            | Request::DomainList
            | Request::DomainInfo { .. }
            | Request::TemplateList => Role::Viewer,
            Request::DomainPause { .. }
            | Request::DomainResume { .. }
            | Request::DomainSetPriority { .. } => Role::Operator,
            Request::DomainCreate { .. }
            | Request::DomainDestroy { .. }
            | Request::TemplateAdd(_)
            | Request::TemplateRm { .. }
            | Request::HostShutdown
            | Request::AuditRead { .. } => Role::Admin,
        }
    }

    pub fn allows(self, request: &Request) -> bool {
        self >= Role::required(request)
    }
}
