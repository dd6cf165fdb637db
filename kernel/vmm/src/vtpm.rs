//! Which domain serves which vTPM instance: the boot manifest's `vtpm_instance=<type>` (on a
//! vTPM domain's line: the policy type of kind `vtpm` it serves) and `vtpm=<name>` (on a
//! client's line: its vTPM domain), validated once into an [`Assignment`]. One instance per
//! client: a second client of one vTPM domain is refused, as are names that resolve to nothing.

use core::fmt;

use crate::manifest::{DomainSpec, MAX_DOMAINS};

/// Why a domain's vTPM keys are refused (the domain is then not built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignError<'a> {
    /// `vtpm_instance=` names no type of kind `vtpm` in the policy.
    NotAVtpmType(&'a str),
    /// `vtpm=` names no domain with a valid `vtpm_instance=`.
    NoVtpmDomain(&'a str),
    /// The vTPM domain already serves another client (its manifest index).
    SecondClient { server: &'a str, first: usize },
}

impl fmt::Display for AssignError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssignError::NotAVtpmType(t) => write!(
                f,
                "vtpm_instance={t} is not a type of kind `vtpm` in the policy"
            ),
            AssignError::NoVtpmDomain(s) => write!(f, "vtpm={s} names no vTPM domain"),
            AssignError::SecondClient { server, first } => {
                write!(
                    f,
                    "vTPM {server} already serves domain id {first} (one instance per client)"
                )
            }
        }
    }
}

/// The validated vTPM keys of one manifest; `T` is the policy's type id.
#[derive(Debug, Clone)]
pub struct Assignment<'a, T> {
    /// Per domain: the instance it serves.
    pub instance: [Option<T>; MAX_DOMAINS],
    /// Per vTPM domain: its one client.
    pub owner: [Option<usize>; MAX_DOMAINS],
    /// Per domain: why its keys were refused.
    pub refused: [Option<AssignError<'a>>; MAX_DOMAINS],
}

impl<'a, T: Copy> Assignment<'a, T> {
    /// Reads the keys of `specs`; `vtpm_type` resolves a type name to the policy's id if it is
    /// of kind `vtpm`.
    pub fn new(specs: &[DomainSpec<'a>], vtpm_type: impl Fn(&str) -> Option<T>) -> Self {
        let mut a = Assignment {
            instance: [None; MAX_DOMAINS],
            owner: [None; MAX_DOMAINS],
            refused: [None; MAX_DOMAINS],
        };
        for (i, s) in specs.iter().enumerate().take(MAX_DOMAINS) {
            if let Some(t) = s.get("vtpm_instance") {
                match vtpm_type(t) {
                    Some(ty) => a.instance[i] = Some(ty),
                    None => a.refused[i] = Some(AssignError::NotAVtpmType(t)),
                }
            }
        }
        for (j, s) in specs.iter().enumerate().take(MAX_DOMAINS) {
            let Some(server) = s.get("vtpm") else {
                continue;
            };
            let Some(i) = specs
                .iter()
                .position(|o| o.name == server)
                .filter(|&i| a.instance[i].is_some())
            else {
                a.refused[j] = Some(AssignError::NoVtpmDomain(server));
                continue;
            };
            match a.owner[i] {
                Some(first) => a.refused[j] = Some(AssignError::SecondClient { server, first }),
                None => a.owner[i] = Some(j),
            }
        }
        a
    }

    /// Whether domain `i` is the client of some vTPM domain.
    #[must_use]
    pub fn has_vtpm(&self, i: usize) -> bool {
        self.owner.contains(&Some(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse;

    /// Per domain: instance served, client owned, refusal message.
    type Resolved = (Vec<Option<u32>>, Vec<Option<usize>>, Vec<Option<String>>);

    fn assign(text: &str) -> Resolved {
        let specs = parse(text.as_bytes()).unwrap();
        let a = Assignment::new(&specs, |t| {
            t.strip_prefix("vt").and_then(|n| n.parse::<u32>().ok())
        });
        let n = specs.len();
        (
            a.instance[..n].to_vec(),
            a.owner[..n].to_vec(),
            a.refused[..n]
                .iter()
                .map(|r| r.map(|e| e.to_string()))
                .collect(),
        )
    }

    #[test]
    fn keys_resolve_to_one_instance_per_client() {
        let (inst, owner, refused) = assign(
            "warden-manifest 1\n\
             domain name=s1 image=vtpm vtpm_instance=vt1\n\
             domain name=s2 image=vtpm vtpm_instance=vt2\n\
             domain name=c1 image=g vtpm=s1\n\
             domain name=c2 image=g vtpm=s2\n\
             domain name=plain image=g\n",
        );
        assert_eq!(inst, [Some(1), Some(2), None, None, None]);
        assert_eq!(owner, [Some(2), Some(3), None, None, None]);
        assert!(refused.iter().all(Option::is_none));
    }

    #[test]
    fn bad_keys_are_refused_by_name() {
        // (manifest lines after the header, index of the refused line, message)
        let cases: &[(&str, usize, &str)] = &[
            (
                "domain name=s image=vtpm vtpm_instance=guest_t\n",
                0,
                "vtpm_instance=guest_t is not a type of kind `vtpm` in the policy",
            ),
            (
                "domain name=c image=g vtpm=nobody\n",
                0,
                "vtpm=nobody names no vTPM domain",
            ),
            (
                "domain name=p image=g\ndomain name=c image=g vtpm=p\n",
                1,
                "vtpm=p names no vTPM domain",
            ),
            (
                "domain name=s image=vtpm vtpm_instance=vt1\ndomain name=a image=g vtpm=s\ndomain name=b image=g vtpm=s\n",
                2,
                "vTPM s already serves domain id 1 (one instance per client)",
            ),
            // A vTPM domain whose instance is refused serves nobody.
            (
                "domain name=s image=vtpm vtpm_instance=bad\ndomain name=c image=g vtpm=s\n",
                1,
                "vtpm=s names no vTPM domain",
            ),
        ];
        for (lines, at, msg) in cases {
            let (_, _, refused) = assign(&format!("warden-manifest 1\n{lines}"));
            assert_eq!(refused[*at].as_deref(), Some(*msg), "{lines}");
        }
    }
}
