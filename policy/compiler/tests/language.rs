//! Type-set operations (`*`, `~`, `-`) and compile-time conditionals (`bool`, `if`, `-D`),
//! checked through the engine's decisions on the compiled binary; and their errors.

use warden_policy::{Class, PermSet, Policy};
use warden_policy_compiler::{Code, Options, compile_defined};

const BASE: &str = "type xen_t: hypervisor;\nattribute guests;\ntype dom0_t: domain;\n\
                    type g1_t: domain, guests;\ntype g2_t: domain, guests;\ntype g3_t: domain, guests;\n\
                    type vtpm1_t: vtpm;\n";

/// (what, rules after BASE, defines, [(subject, target, class, perm, allowed)]).
type Case = (&'static str, &'static str, &'static [(&'static str, bool)], &'static [(&'static str, &'static str, Class, &'static str, bool)]);

const CASES: &[Case] = &[
    (
        "`*` as a source is every domain; as a target, every type the class applies to",
        "allow * xen_t: hypervisor console;\nallow dom0_t *: vtpm admin;\nallow dom0_t *: domain getinfo;\n",
        &[],
        &[
            ("g2_t", "xen_t", Class::Hypervisor, "console", true),
            ("dom0_t", "xen_t", Class::Hypervisor, "console", true),
            ("dom0_t", "vtpm1_t", Class::Vtpm, "admin", true),
            ("dom0_t", "g3_t", Class::Domain, "getinfo", true),
            ("dom0_t", "dom0_t", Class::Domain, "getinfo", true),
        ],
    ),
    (
        "difference removes from the union",
        "allow { guests -g2_t } dom0_t: evtchn send;\nallow dom0_t { * -dom0_t -g3_t }: domain pause;\n",
        &[],
        &[
            ("g1_t", "dom0_t", Class::Evtchn, "send", true),
            ("g2_t", "dom0_t", Class::Evtchn, "send", false),
            ("g3_t", "dom0_t", Class::Evtchn, "send", true),
            ("dom0_t", "g1_t", Class::Domain, "pause", true),
            ("dom0_t", "g3_t", Class::Domain, "pause", false),
            ("dom0_t", "dom0_t", Class::Domain, "pause", false),
        ],
    ),
    (
        "complement: every type but the set",
        "allow ~guests guests: domain pause;\nallow ~{ dom0_t g1_t } dom0_t: evtchn send;\n",
        &[],
        &[
            ("dom0_t", "g1_t", Class::Domain, "pause", true),
            ("g1_t", "g2_t", Class::Domain, "pause", false),
            ("g2_t", "dom0_t", Class::Evtchn, "send", true),
            ("g1_t", "dom0_t", Class::Evtchn, "send", false),
            ("dom0_t", "dom0_t", Class::Evtchn, "send", false),
        ],
    ),
    (
        "set operations in roles and neverallows",
        "role ops { domain { pause unpause }; vtpm admin; }\ngrant ops to dom0_t over *;\n\
         neverallow ~dom0_t *: introspect *;\n",
        &[],
        &[
            ("dom0_t", "g1_t", Class::Domain, "unpause", true),
            ("dom0_t", "vtpm1_t", Class::Vtpm, "admin", true),
        ],
    ),
    (
        "passthrough: an interrupt line and a device that may be assigned only behind an IOMMU",
        "type nic_t: device;\ntype nic_irq_t: irq;\ntype legacy_t: device;\n\
         allow g1_t nic_t: device assign;\nallow g1_t nic_irq_t: irq bind;\n\
         allow dom0_t legacy_t: device { assign assign_noiommu };\nneverallow guests *: device assign_noiommu;\n",
        &[],
        &[
            ("g1_t", "nic_t", Class::Device, "assign", true),
            ("g1_t", "nic_t", Class::Device, "assign_noiommu", false),
            ("g1_t", "nic_irq_t", Class::Irq, "bind", true),
            ("g2_t", "nic_irq_t", Class::Irq, "bind", false),
            ("dom0_t", "legacy_t", Class::Device, "assign_noiommu", true),
        ],
    ),
    (
        "`if` takes the declared value",
        "bool locked = false;\nif (locked) { allow dom0_t g1_t: domain pause; } else { allow dom0_t g1_t: domain getinfo; }\n\
         if (!locked) { allow g1_t xen_t: hypervisor console; }\n",
        &[],
        &[
            ("dom0_t", "g1_t", Class::Domain, "pause", false),
            ("dom0_t", "g1_t", Class::Domain, "getinfo", true),
            ("g1_t", "xen_t", Class::Hypervisor, "console", true),
        ],
    ),
    (
        "`-D` overrides the declared value",
        "bool locked = false;\nif (locked) { allow dom0_t g1_t: domain pause; } else { allow dom0_t g1_t: domain getinfo; }\n\
         if (!locked) { allow g1_t xen_t: hypervisor console; }\n",
        &[("locked", true)],
        &[
            ("dom0_t", "g1_t", Class::Domain, "pause", true),
            ("dom0_t", "g1_t", Class::Domain, "getinfo", false),
            ("g1_t", "xen_t", Class::Hypervisor, "console", false),
        ],
    ),
    (
        "nested conditionals and conditionals inside templates",
        "bool a = true;\nbool b = false;\ntemplate t($x) { if (b) { allow $x xen_t: hypervisor physinfo; } else { allow $x xen_t: hypervisor console; } }\n\
         if (a) { use t(g1_t); if (!b) { allow g2_t xen_t: hypervisor console; } }\n",
        &[],
        &[
            ("g1_t", "xen_t", Class::Hypervisor, "console", true),
            ("g1_t", "xen_t", Class::Hypervisor, "physinfo", false),
            ("g2_t", "xen_t", Class::Hypervisor, "console", true),
        ],
    ),
];

#[test]
fn set_operations_and_conditionals_decide_in_the_engine() {
    for (what, rules, defines, checks) in CASES {
        let src = format!("{BASE}{rules}");
        let defines: Vec<(String, bool)> = defines.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        let c = compile_defined(&src, Options { lints: false, verbose: false }, &defines)
            .unwrap_or_else(|e| panic!("{what}: {}", warden_policy_compiler::diag::render("t.wpol", &src, &e)));
        let bin = c.to_binary();
        let p = Policy::load(&bin).unwrap();
        for &(s, t, class, perm, allowed) in *checks {
            let (s_id, t_id) = (p.type_by_name(s).unwrap(), p.type_by_name(t).unwrap());
            let want = class.perm(perm).unwrap();
            let d = p.decide(s_id, t_id, class, want);
            assert_eq!(d.allowed == want, allowed, "{what}: {s} {t}: {} {perm}", class.name());
        }
        // Formatting keeps the meaning (the canonical form of `~x` is `{ * -x }`).
        let again = warden_policy_compiler::format_source(&src).unwrap();
        let c2 = compile_defined(&again, Options { lints: false, verbose: false }, &defines).unwrap();
        let (mut a, mut b) = (c.image(), c2.image());
        (a.source_hash, b.source_hash) = ([0; 32], [0; 32]);
        assert_eq!(warden_policy::encode::encode(&a), warden_policy::encode::encode(&b), "{what}: fmt changed meaning");
    }
}

#[test]
fn defines_are_part_of_the_measured_identity() {
    let src = format!("{BASE}bool x = false;\nif (x) {{ allow dom0_t g1_t: domain pause; }}\n");
    let a = compile_defined(&src, Options { lints: false, verbose: false }, &[]).unwrap();
    let b = compile_defined(&src, Options { lints: false, verbose: false }, &[("x".into(), false)]).unwrap();
    assert_ne!(a.source_hash, b.source_hash, "the -D values are hashed with the source");
}

/// (what, rules after BASE, defines, code, text in the message or help).
const ERRORS: &[(&str, &str, &[(&str, bool)], Code, &str)] = &[
    ("only removals", "allow { -g1_t } dom0_t: evtchn send;\n", &[], Code::E0001, "only removals"),
    ("unknown name after `-`", "allow { guests -g9_t } dom0_t: evtchn send;\n", &[], Code::E0002, "g9_t"),
    ("complement of everything", "allow ~* dom0_t: evtchn send;\n", &[], Code::E0001, "empty set"),
    ("undeclared boolean", "if (lockd) { allow dom0_t g1_t: domain pause; }\n", &[], Code::E0002, "unknown boolean `lockd`"),
    ("define of no boolean", "bool locked = true;\n", &[("lockd", true)], Code::E0002, "did you mean `locked`"),
    ("boolean twice", "bool a = true;\nbool a = false;\n", &[], Code::E0010, "declared twice"),
    ("boolean value", "bool a = yes;\n", &[], Code::E0001, "`true` or `false`"),
    ("boolean in a template", "template t($x) { bool $x = true; }\nuse t(a);\n", &[], Code::E0007, "top level"),
    (
        "a guest given a device without an IOMMU",
        "type nic_t: device;\nallow g1_t nic_t: device { assign assign_noiommu };\nneverallow guests *: device assign_noiommu;\n",
        &[],
        Code::E0020,
        "`g1_t` is allowed `device` assign_noiommu on `nic_t`",
    ),
    ("the retired evtchn kind", "type port_t: evtchn;\n", &[], Code::E0005, "kinds: domain, vtpm"),
    ("`&&` in a condition", "bool a = true;\nif (a && b) { }\n", &[], Code::E0001, "nest `if`s"),
];

#[test]
fn set_and_conditional_errors_are_explained() {
    for (what, rules, defines, code, text) in ERRORS {
        let src = format!("{BASE}{rules}");
        let defines: Vec<(String, bool)> = defines.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        let e = compile_defined(&src, Options { lints: false, verbose: false }, &defines).err().unwrap_or_else(|| panic!("{what}: compiled"));
        let shown = warden_policy_compiler::diag::render("t.wpol", &src, &e);
        assert!(e.iter().any(|d| d.code == *code), "{what}: wanted {code:?}\n{shown}");
        assert!(shown.contains(text), "{what}: `{text}` missing\n{shown}");
    }
}
