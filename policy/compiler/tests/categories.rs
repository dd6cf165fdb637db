//! Per-domain separation with categories: two domains of one type are two principals, tenant
//! separation is one `separate` statement, the engine decides with categories in O(1), and the
//! flow analysis (`assert noflow ... across categories`) sees flows between categories.

use warden_policy::{Category, Class, PermSet, Policy, perms};
use warden_policy_compiler::{Code, compile};

const ISOLATED: &str = "type xen_t: hypervisor;\ntype dom0_t: domain;\ntype isolated_t: domain;\n\
    allow isolated_t self: grant { offer map_rw unmap };\nallow isolated_t self: evtchn { alloc bind send };\n\
    allow dom0_t isolated_t: domain { pause unpause };\n";

#[test]
fn two_domains_of_one_type_are_two_principals() {
    // Without categories, `self` is "the same type": two isolated_t domains share memory, and
    // the flow analysis says so.
    let open = format!("{ISOLATED}assert noflow isolated_t -> isolated_t across categories;\n");
    let e = compile(&open).expect_err("two isolated_t domains can talk");
    assert_eq!(e[0].code, Code::E0021);
    assert!(e[0].message.contains("from `isolated_t` to `isolated_t`"), "{}", e[0].message);

    // One statement makes each domain (each category) its own principal.
    let closed = format!("{ISOLATED}separate isolated_t;\nassert noflow isolated_t -> isolated_t across categories;\n");
    let c = compile(&closed).unwrap();
    let bin = c.to_binary();
    let p = Policy::load(&bin).unwrap();
    let (iso, dom0) = (p.type_by_name("isolated_t").unwrap(), p.type_by_name("dom0_t").unwrap());
    let (a, b) = ((iso, Category(7)), (iso, Category(8)));
    let rw = perms::grant::MAP_RW;
    assert_eq!(p.decide_in(a, a, Class::Grant, rw).allowed, rw, "a domain with itself");
    assert_eq!(p.decide_in(a, b, Class::Grant, rw).allowed, PermSet::EMPTY, "two isolated_t domains");
    assert_eq!(p.decide_in(a, b, Class::Evtchn, perms::evtchn::SEND).allowed, PermSet::EMPTY);
    // Rules from outside the separated set hold whatever the categories.
    let pause = perms::domain::PAUSE;
    assert_eq!(p.decide_in((dom0, Category(0)), a, Class::Domain, pause).allowed, pause);
    assert_eq!(p.decide_in((dom0, Category(0)), b, Class::Domain, pause).allowed, pause);
    // Type-level analyses still see the grant; `wardenpol flow` without categories is unchanged.
    assert!(c.model.av.values().any(|e| e.same != 0));
}

/// Tenants as categories: each tenant runs a web, a db and its own vTPM daemon instance; the
/// types are shared by every tenant. Separation costs one statement, whatever the number of
/// tenants (the port of Xen's per-user policy needed three types per user and n(n-1)/2 walls).
const TENANTS: &str = "type xen_t: hypervisor;\nattribute tenants;\ntype mgmt_t: domain;\n\
    type web_t: domain, tenants;\ntype db_t: domain, tenants;\ntype vtpmd_t: domain, tenants;\n\
    allow web_t db_t: grant { map_ro map_rw unmap };\nallow db_t web_t: grant { offer revoke };\n\
    allow { web_t db_t } vtpmd_t: evtchn { alloc bind send close };\nallow vtpmd_t { web_t db_t }: evtchn { bind send };\n\
    allow mgmt_t tenants: domain { getinfo pause unpause destroy };\n\
    separate tenants;\n\
    assert noflow tenants -> tenants across categories;\n";

#[test]
fn tenant_separation_is_one_statement() {
    let c = compile(TENANTS).unwrap_or_else(|e| panic!("{}", warden_policy_compiler::diag::render("t", TENANTS, &e)));
    let bin = c.to_binary();
    let p = Policy::load(&bin).unwrap();
    let t = |n: &str| p.type_by_name(n).unwrap();
    let send = perms::evtchn::SEND;
    for i in 0..50u32 {
        for j in 0..50u32 {
            let want = if i == j { send } else { PermSet::EMPTY };
            let d = p.decide_in((t("web_t"), Category(i)), (t("vtpmd_t"), Category(j)), Class::Evtchn, send);
            assert_eq!(d.allowed, want, "tenant {i} -> tenant {j}'s vTPM daemon");
        }
    }
    let rw = perms::grant::MAP_RW;
    assert_eq!(p.decide_in((t("web_t"), Category(1)), (t("db_t"), Category(1)), Class::Grant, rw).allowed, rw);
    assert_eq!(p.decide_in((t("web_t"), Category(1)), (t("db_t"), Category(2)), Class::Grant, rw).allowed, PermSet::EMPTY);

    // Drop the one statement and the analysis finds the cross-tenant path through the daemon.
    let shared = TENANTS.replace("separate tenants;\n", "");
    let e = compile(&shared).expect_err("without separation tenants share the daemon");
    assert_eq!(e[0].code, Code::E0021);
    assert!(e[0].help.as_deref().is_some_and(|h| h.contains("`separate`")), "{:?}", e[0].help);
}

#[test]
fn a_shared_hub_outside_the_set_joins_categories() {
    // A daemon that is not separated (one instance for every tenant) carries data between
    // categories: the assertion fails unless the daemon is trusted (`excluding`).
    let src = "type xen_t: hypervisor;\nattribute tenants;\ntype web_t: domain, tenants;\ntype hub_t: domain;\n\
        allow web_t hub_t: evtchn send;\nallow hub_t web_t: evtchn send;\nseparate tenants;\n";
    let e = compile(&format!("{src}assert noflow web_t -> web_t across categories;\n")).expect_err("hub");
    assert_eq!(e[0].secondary.len(), 2, "two hops: into the hub and out of it");
    compile(&format!("{src}assert noflow web_t -> web_t across categories excluding hub_t;\n")).unwrap();
    // Type-level: the hub path also exists between distinct types only; web_t alone has none.
    compile(&format!("{src}assert noflow web_t -> web_t;\n")).unwrap();
}

#[test]
fn separate_takes_domains() {
    let e = compile("type xen_t: hypervisor;\ntype v_t: vtpm;\ntype d_t: domain;\nseparate { d_t v_t };\n").unwrap_err();
    // `*`-free sets name their members explicitly: a vTPM has no category.
    assert!(e.iter().any(|d| d.code == Code::E0012 && d.message.contains("only domains carry a category")), "{e:?}");
}
