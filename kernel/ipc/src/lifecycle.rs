//! The lifecycle hypercalls (`LIFECYCLE_BASE..`) up to the policy: decoding their argument words
//! into typed [`LifecycleRequest`]s, validating a [`CreateRequest`], and the class and
//! permission each call is checked against (the `HC_*` check site the schema names).
//!
//! Guest pointers stay unchecked here (only the hypervisor knows the caller's memory); every
//! other word is validated once, at this boundary.

pub use warden_abi::lifecycle::{CreateRequest, LifecycleCall, LifecycleError};
use warden_abi::lifecycle::{IMAGE_MAX, MAX_MEMORY_MIB, MIN_MEMORY_MIB};
use warden_abi::{ARGS_LEN, NAME_LEN, Status, fixed_str};
use warden_policy::{Class, PermSet, perms};

use crate::DomId;

/// A decoded lifecycle request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleRequest {
    List {
        gpa: u64,
        len: u64,
    },
    GetInfo {
        dom: DomId,
        gpa: u64,
    },
    Create {
        gpa: u64,
    },
    /// `args_len` 0: the create request's arguments stay.
    Build {
        dom: DomId,
        gpa: u64,
        len: u64,
        args_gpa: u64,
        args_len: u64,
    },
    Transition {
        dom: DomId,
        gpa: u64,
        len: u64,
    },
    Unpause {
        dom: DomId,
    },
    Pause {
        dom: DomId,
    },
    SetPriority {
        dom: DomId,
        priority: u8,
    },
    Destroy {
        dom: DomId,
    },
    HostShutdown,
    PhysInfo {
        gpa: u64,
    },
}

/// Why decoding refused the words: the ABI status and, for `InvalidArgument`, the detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: Status,
    pub detail: u64,
}

impl From<LifecycleError> for Refusal {
    fn from(e: LifecycleError) -> Self {
        Refusal {
            status: Status::InvalidArgument,
            detail: e as u64,
        }
    }
}

fn dom(raw: u64) -> Result<DomId, Refusal> {
    u32::try_from(raw)
        .map(DomId)
        .map_err(|_| LifecycleError::NoSuchDomain.into())
}

impl LifecycleRequest {
    /// Decodes the argument registers of a lifecycle call.
    ///
    /// # Errors
    /// The first argument that cannot be valid whatever the domain table holds.
    pub fn decode(call: LifecycleCall, a: [u64; 5]) -> Result<LifecycleRequest, Refusal> {
        Ok(match call {
            LifecycleCall::DomainList => LifecycleRequest::List {
                gpa: a[0],
                len: a[1],
            },
            LifecycleCall::DomainGetInfo => LifecycleRequest::GetInfo {
                dom: dom(a[0])?,
                gpa: a[1],
            },
            LifecycleCall::DomainCreate => LifecycleRequest::Create { gpa: a[0] },
            LifecycleCall::DomainBuild => {
                if a[2] > IMAGE_MAX {
                    return Err(Refusal {
                        status: Status::BadLength,
                        detail: 0,
                    });
                }
                if a[4] >= ARGS_LEN as u64 {
                    return Err(LifecycleError::BadArgs.into());
                }
                LifecycleRequest::Build {
                    dom: dom(a[0])?,
                    gpa: a[1],
                    len: a[2],
                    args_gpa: a[3],
                    args_len: a[4],
                }
            }
            LifecycleCall::DomainTransition => {
                if a[2] == 0 || a[2] >= NAME_LEN as u64 {
                    return Err(LifecycleError::BadLabel.into());
                }
                LifecycleRequest::Transition {
                    dom: dom(a[0])?,
                    gpa: a[1],
                    len: a[2],
                }
            }
            LifecycleCall::DomainUnpause => LifecycleRequest::Unpause { dom: dom(a[0])? },
            LifecycleCall::DomainPause => LifecycleRequest::Pause { dom: dom(a[0])? },
            LifecycleCall::DomainSetPriority => LifecycleRequest::SetPriority {
                dom: dom(a[0])?,
                priority: u8::try_from(a[1])
                    .map_err(|_| Refusal::from(LifecycleError::BadPriority))?,
            },
            LifecycleCall::DomainDestroy => LifecycleRequest::Destroy { dom: dom(a[0])? },
            LifecycleCall::HostShutdown => LifecycleRequest::HostShutdown,
            LifecycleCall::PhysInfo => LifecycleRequest::PhysInfo { gpa: a[0] },
        })
    }

    /// The call this request came from.
    #[must_use]
    pub const fn call(&self) -> LifecycleCall {
        match self {
            LifecycleRequest::List { .. } => LifecycleCall::DomainList,
            LifecycleRequest::GetInfo { .. } => LifecycleCall::DomainGetInfo,
            LifecycleRequest::Create { .. } => LifecycleCall::DomainCreate,
            LifecycleRequest::Build { .. } => LifecycleCall::DomainBuild,
            LifecycleRequest::Transition { .. } => LifecycleCall::DomainTransition,
            LifecycleRequest::Unpause { .. } => LifecycleCall::DomainUnpause,
            LifecycleRequest::Pause { .. } => LifecycleCall::DomainPause,
            LifecycleRequest::SetPriority { .. } => LifecycleCall::DomainSetPriority,
            LifecycleRequest::Destroy { .. } => LifecycleCall::DomainDestroy,
            LifecycleRequest::HostShutdown => LifecycleCall::HostShutdown,
            LifecycleRequest::PhysInfo { .. } => LifecycleCall::PhysInfo,
        }
    }

    /// The domain the request names, if any (the target of its `domain` check).
    #[must_use]
    pub const fn target(&self) -> Option<DomId> {
        match *self {
            LifecycleRequest::GetInfo { dom, .. }
            | LifecycleRequest::Build { dom, .. }
            | LifecycleRequest::Transition { dom, .. }
            | LifecycleRequest::Unpause { dom }
            | LifecycleRequest::Pause { dom }
            | LifecycleRequest::SetPriority { dom, .. }
            | LifecycleRequest::Destroy { dom } => Some(dom),
            _ => None,
        }
    }
}

/// The class and permission lifecycle call `call` is checked against. The target is the named
/// domain's current label (`List`: each listed domain's; `Create`: the requested build label;
/// `HostShutdown`, `PhysInfo`: the hypervisor's label).
#[must_use]
pub const fn lifecycle_requirement(call: LifecycleCall) -> (Class, PermSet) {
    match call {
        LifecycleCall::DomainList | LifecycleCall::DomainGetInfo => {
            (Class::Domain, perms::domain::GETINFO)
        }
        LifecycleCall::DomainCreate => (Class::Domain, perms::domain::CREATE),
        LifecycleCall::DomainBuild => (Class::Domain, perms::domain::BUILD),
        LifecycleCall::DomainTransition => (Class::Domain, perms::domain::TRANSITION),
        LifecycleCall::DomainUnpause => (Class::Domain, perms::domain::UNPAUSE),
        LifecycleCall::DomainPause => (Class::Domain, perms::domain::PAUSE),
        LifecycleCall::DomainSetPriority => (Class::Domain, perms::domain::SETPRIORITY),
        LifecycleCall::DomainDestroy => (Class::Domain, perms::domain::DESTROY),
        LifecycleCall::HostShutdown => (Class::Hypervisor, perms::hypervisor::SHUTDOWN),
        LifecycleCall::PhysInfo => (Class::Hypervisor, perms::hypervisor::PHYSINFO),
    }
}

/// A [`CreateRequest`] whose fields have been validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateSpec<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub memory_mib: u32,
    pub priority: u8,
    pub args: &'a str,
}

/// Whether `s` is a valid domain name: `[a-z0-9_-]`, 1..=31 bytes (the boot manifest's rule).
#[must_use]
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() < NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `s` can name a policy type: 1..=31 printable ASCII bytes without spaces (whether
/// the policy knows it is decided there).
#[must_use]
pub fn valid_label(s: &str) -> bool {
    !s.is_empty() && s.len() < NAME_LEN && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The text of a NUL-padded field, refusing bytes after the first NUL and non-UTF-8.
fn strict_field(field: &[u8]) -> Option<&str> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    if field[end..].iter().any(|&b| b != 0) {
        return None;
    }
    let s = core::str::from_utf8(&field[..end]).ok()?;
    (fixed_str(field) == s).then_some(s)
}

impl CreateSpec<'_> {
    /// Validates every field of `r` (the label's existence is the policy's business).
    ///
    /// # Errors
    /// The first wrong field.
    pub fn parse(r: &CreateRequest) -> Result<CreateSpec<'_>, LifecycleError> {
        let name = strict_field(&r.name)
            .filter(|n| valid_name(n))
            .ok_or(LifecycleError::BadName)?;
        let label = strict_field(&r.label)
            .filter(|l| valid_label(l))
            .ok_or(LifecycleError::BadLabel)?;
        if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&r.memory_mib) {
            return Err(LifecycleError::BadMemory);
        }
        let priority = u8::try_from(r.priority).map_err(|_| LifecycleError::BadPriority)?;
        let args = strict_field(&r.args).ok_or(LifecycleError::BadArgs)?;
        Ok(CreateSpec {
            name,
            label,
            memory_mib: r.memory_mib,
            priority,
            args,
        })
    }
}

/// Fuzz entry point (`kernel/ipc/fuzz`, target `lifecycle`): the first byte picks a call, the
/// next 40 are its five argument words, the rest (zero-padded) a `CreateRequest`. Decoding and
/// validation give a request or a refusal, never a panic, and what they accept is consistent.
pub fn fuzz_lifecycle(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let call = LifecycleCall::ALL[sel as usize % LifecycleCall::ALL.len()];
    let mut words = [0u64; 5];
    for (i, w) in words.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        for (j, x) in b.iter_mut().enumerate() {
            *x = rest.get(i * 8 + j).copied().unwrap_or(0);
        }
        *w = u64::from_le_bytes(b);
    }
    if let Ok(r) = LifecycleRequest::decode(call, words) {
        assert_eq!(r.call(), call);
        if let LifecycleRequest::Build { len, .. } = r {
            assert!(len <= IMAGE_MAX);
        }
    }
    let mut raw = [0u8; CreateRequest::SIZE];
    for (i, x) in raw.iter_mut().enumerate() {
        *x = rest.get(40 + i).copied().unwrap_or(0);
    }
    let req = CreateRequest::from_bytes(&raw);
    if let Ok(spec) = CreateSpec::parse(&req) {
        assert!(valid_name(spec.name) && valid_label(spec.label));
        assert!((MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&spec.memory_mib));
        assert_eq!(
            CreateRequest::new(
                spec.name,
                spec.label,
                spec.memory_mib,
                spec.priority.into(),
                spec.args
            ),
            req
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_table() {
        let big = 1u64 << 32;
        let inv = |e: LifecycleError| Err(Refusal::from(e));
        let cases: &[(LifecycleCall, [u64; 5], Result<LifecycleRequest, Refusal>)] = &[
            (
                LifecycleCall::DomainList,
                [0x30_0000, 208, 0, 0, 0],
                Ok(LifecycleRequest::List {
                    gpa: 0x30_0000,
                    len: 208,
                }),
            ),
            (
                LifecycleCall::DomainGetInfo,
                [big, 0, 0, 0, 0],
                inv(LifecycleError::NoSuchDomain),
            ),
            (
                LifecycleCall::DomainGetInfo,
                [3, 9, 0, 0, 0],
                Ok(LifecycleRequest::GetInfo {
                    dom: DomId(3),
                    gpa: 9,
                }),
            ),
            (
                LifecycleCall::DomainBuild,
                [1, 0x40_0000, IMAGE_MAX, 0, 0],
                Ok(LifecycleRequest::Build {
                    dom: DomId(1),
                    gpa: 0x40_0000,
                    len: IMAGE_MAX,
                    args_gpa: 0,
                    args_len: 0,
                }),
            ),
            (
                LifecycleCall::DomainBuild,
                [1, 0x40_0000, 5, 0x30_0000, ARGS_LEN as u64 - 1],
                Ok(LifecycleRequest::Build {
                    dom: DomId(1),
                    gpa: 0x40_0000,
                    len: 5,
                    args_gpa: 0x30_0000,
                    args_len: ARGS_LEN as u64 - 1,
                }),
            ),
            (
                LifecycleCall::DomainBuild,
                [1, 0x40_0000, 5, 0x30_0000, ARGS_LEN as u64],
                inv(LifecycleError::BadArgs),
            ),
            (
                LifecycleCall::DomainBuild,
                [1, 0x40_0000, IMAGE_MAX + 1, 0, 0],
                Err(Refusal {
                    status: Status::BadLength,
                    detail: 0,
                }),
            ),
            (
                LifecycleCall::DomainBuild,
                [u64::MAX, 0, 1, 0, 0],
                inv(LifecycleError::NoSuchDomain),
            ),
            (
                LifecycleCall::DomainTransition,
                [1, 0x40_0000, 0, 0, 0],
                inv(LifecycleError::BadLabel),
            ),
            (
                LifecycleCall::DomainTransition,
                [1, 0x40_0000, NAME_LEN as u64, 0, 0],
                inv(LifecycleError::BadLabel),
            ),
            (
                LifecycleCall::DomainTransition,
                [1, 0x40_0000, 7, 0, 0],
                Ok(LifecycleRequest::Transition {
                    dom: DomId(1),
                    gpa: 0x40_0000,
                    len: 7,
                }),
            ),
            (
                LifecycleCall::DomainSetPriority,
                [2, 255, 0, 0, 0],
                Ok(LifecycleRequest::SetPriority {
                    dom: DomId(2),
                    priority: 255,
                }),
            ),
            (
                LifecycleCall::DomainSetPriority,
                [2, 256, 0, 0, 0],
                inv(LifecycleError::BadPriority),
            ),
            (
                LifecycleCall::DomainPause,
                [big + 1, 0, 0, 0, 0],
                inv(LifecycleError::NoSuchDomain),
            ),
            (
                LifecycleCall::HostShutdown,
                [9, 9, 9, 9, 9],
                Ok(LifecycleRequest::HostShutdown),
            ),
        ];
        for (c, a, want) in cases {
            let got = LifecycleRequest::decode(*c, *a);
            assert_eq!(got, *want, "{c:?} {a:x?}");
            if let Ok(r) = got {
                assert_eq!(r.call(), *c);
            }
        }
    }

    #[test]
    fn random_words_and_requests_decode_or_are_refused_without_panicking() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50_000 {
            let call = LifecycleCall::ALL[(next() % LifecycleCall::ALL.len() as u64) as usize];
            let a = [
                next() >> (next() % 64),
                next() >> (next() % 64),
                next() >> (next() % 64),
                next(),
                next(),
            ];
            match LifecycleRequest::decode(call, a) {
                Ok(r) => {
                    assert_eq!(r.call(), call);
                    if let LifecycleRequest::Build { len, .. } = r {
                        assert!(len <= IMAGE_MAX);
                    }
                    if let Some(d) = r.target() {
                        assert_eq!(u64::from(d.0), a[0]);
                    }
                }
                Err(e) => assert!(e.status != Status::Ok),
            }
            let mut raw = [0u8; CreateRequest::SIZE];
            for b in raw.iter_mut() {
                *b = next() as u8 & if next() % 4 == 0 { 0xff } else { 0x7f };
            }
            if let Ok(spec) = CreateSpec::parse(&CreateRequest::from_bytes(&raw)) {
                assert!(valid_name(spec.name) && valid_label(spec.label));
            }
        }
    }

    #[test]
    fn create_requests_are_validated_field_by_field() {
        let ok = CreateRequest::new("worker-1", "guest_build_t", 4, 5, "count=3");
        assert_eq!(
            CreateSpec::parse(&ok),
            Ok(CreateSpec {
                name: "worker-1",
                label: "guest_build_t",
                memory_mib: 4,
                priority: 5,
                args: "count=3"
            })
        );
        let mut after_nul = ok;
        after_nul.name[10] = b'x'; // "worker-1\0\0x": hidden bytes after the terminator
        let mut bad_utf8 = ok;
        bad_utf8.args[0] = 0xff;
        let cases: &[(CreateRequest, LifecycleError)] = &[
            (
                CreateRequest::new("", "guest_t", 4, 5, ""),
                LifecycleError::BadName,
            ),
            (
                CreateRequest::new("Upper", "guest_t", 4, 5, ""),
                LifecycleError::BadName,
            ),
            (
                CreateRequest::new("a b", "guest_t", 4, 5, ""),
                LifecycleError::BadName,
            ),
            (
                CreateRequest::new(&"x".repeat(32), "guest_t", 4, 5, ""),
                LifecycleError::BadName,
            ),
            (after_nul, LifecycleError::BadName),
            (
                CreateRequest::new("w", "", 4, 5, ""),
                LifecycleError::BadLabel,
            ),
            (
                CreateRequest::new("w", "guest t", 4, 5, ""),
                LifecycleError::BadLabel,
            ),
            (
                CreateRequest::new("w", "guest_t", 2, 5, ""),
                LifecycleError::BadMemory,
            ),
            (
                CreateRequest::new("w", "guest_t", 257, 5, ""),
                LifecycleError::BadMemory,
            ),
            (
                CreateRequest::new("w", "guest_t", 4, 256, ""),
                LifecycleError::BadPriority,
            ),
            (bad_utf8, LifecycleError::BadArgs),
        ];
        for (r, want) in cases {
            assert_eq!(CreateSpec::parse(r), Err(*want), "{r:?}");
        }
    }
}
