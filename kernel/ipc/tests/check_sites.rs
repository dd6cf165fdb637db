//! The schema's `HC_*` check sites against the hypervisor's dispatch tables: every permission
//! the schema defines must be asked for by exactly one check site, and that site must be the one
//! the schema names. Permissions whose hypercall does not exist yet are listed by name below, so
//! the list can only shrink: adding a call that checks one of them makes this test fail until
//! its name is removed here.

use std::collections::BTreeMap;

use warden_abi::Call;
use warden_abi::device::DeviceCall;
use warden_abi::introspect::IntrospectCall;
use warden_abi::ipc::IpcCall;
use warden_abi::lifecycle::LifecycleCall;
use warden_ipc::device::{ASSIGNMENT_CHECKS, device_requirement};
use warden_ipc::platform_tpm::GRANT_CHECK;
use warden_ipc::introspect::introspect_requirement;
use warden_ipc::{Request, calls::base_requirement, lifecycle_requirement};
use warden_policy::schema::CLASSES;
use warden_policy::{Class, PermSet};

/// Permissions no hypercall checks yet (`class.perm`). Only ever remove entries.
const WITHOUT_CHECK_SITE: &[&str] = &[
    "hypervisor.policy_read",
    "introspect.readmem",
    "introspect.writemem",
    "introspect.migrate_out",
    "introspect.migrate_in",
    "vtpm.use",
    "vtpm.admin",
    "tpm.extend",
    "tpm.quote",
    "ioport.access",
    // Device passthrough's schema (issue 18): checked by HC_IRQ_BIND when interrupt
    // passthrough lands.
    "irq.bind",
];

/// The classes whose permissions are the management plane's: each has one check site.
const LIFECYCLE_CLASSES: &[Class] = &[Class::Domain, Class::Hypervisor];

fn perm_name(class: Class, set: PermSet) -> String {
    let info = class.info();
    let p = info
        .perms
        .iter()
        .find(|p| p.set() == set)
        .expect("a check site asks for exactly one permission");
    format!("{}.{}", info.name, p.name)
}

/// Every (permission -> check sites, i.e. the `HC_*` names of the calls that ask for it) the
/// dispatch tables define, with the calls reaching each site.
fn dispatch_table() -> BTreeMap<String, BTreeMap<&'static str, Vec<String>>> {
    let mut t: BTreeMap<String, BTreeMap<&'static str, Vec<String>>> = BTreeMap::new();
    // A site may ask for several permissions at once (device assignment asks `assign` and,
    // with no IOMMU, `assign_noiommu`): each of them counts that site.
    let mut add = |class: Class, set: PermSet, call: &str| {
        let info = class.info();
        let asked: Vec<_> = info.perms.iter().filter(|p| set.0 & p.set().0 != 0).collect();
        assert!(!asked.is_empty(), "{call} asks for no permission");
        for p in asked {
            t.entry(perm_name(class, p.set()))
                .or_default()
                .entry(p.hypercall)
                .or_default()
                .push(call.to_string());
        }
    };
    for c in Call::ALL {
        let r = base_requirement(c);
        add(r.class, r.perms, c.name());
    }
    // Every IPC call, with argument words that decode (both access modes of a grant map).
    for c in IpcCall::ALL {
        for flags in [0, 1] {
            let r = Request::decode(c, [1, 2, flags, flags, 0])
                .expect("decodable words")
                .requirement();
            add(r.class, r.perms, c.name());
        }
    }
    for c in LifecycleCall::ALL {
        let (class, set) = lifecycle_requirement(c);
        add(class, set, c.name());
    }
    for c in DeviceCall::ALL {
        let (class, set) = device_requirement(c);
        add(class, set, c.name());
    }
    for c in IntrospectCall::ALL {
        let (class, set) = introspect_requirement(c);
        add(class, set, c.name());
    }
    for (class, set) in ASSIGNMENT_CHECKS {
        add(class, set, "device assignment at build");
    }
    let (class, set) = GRANT_CHECK;
    add(class, set, "platform TPM grant at build");
    t
}

#[test]
fn every_permission_has_exactly_one_check_site_or_is_listed_as_missing() {
    let table = dispatch_table();
    let mut missing = Vec::new();
    for class in CLASSES {
        for p in class.perms {
            let name = format!("{}.{}", class.name, p.name);
            match table.get(&name) {
                None => missing.push(name),
                Some(sites) => {
                    assert!(
                        !WITHOUT_CHECK_SITE.contains(&name.as_str()),
                        "{name} now has a check site ({sites:?}): remove it from WITHOUT_CHECK_SITE"
                    );
                    assert_eq!(
                        sites.len(),
                        1,
                        "{name} is checked at more than one site: {sites:?}"
                    );
                    let site = *sites.keys().next().unwrap();
                    assert_eq!(
                        site, p.hypercall,
                        "{name} is checked at {site}, the schema names {}",
                        p.hypercall
                    );
                }
            }
        }
    }
    assert_eq!(
        missing, WITHOUT_CHECK_SITE,
        "permissions without a check site changed"
    );
}

#[test]
fn every_lifecycle_permission_is_checked_by_a_lifecycle_or_base_call() {
    let table = dispatch_table();
    for class in LIFECYCLE_CLASSES {
        for p in class.info().perms {
            let name = format!("{}.{}", class.name(), p.name);
            if WITHOUT_CHECK_SITE.contains(&name.as_str()) {
                continue;
            }
            let calls: Vec<&String> = table[&name].values().flatten().collect();
            assert!(!calls.is_empty(), "{name}");
        }
    }
    // Each lifecycle call asks for one permission of a lifecycle class.
    for c in LifecycleCall::ALL {
        let (class, set) = lifecycle_requirement(c);
        assert!(LIFECYCLE_CLASSES.contains(&class), "{c:?}");
        assert_eq!(set.0.count_ones(), 1, "{c:?}");
    }
}
