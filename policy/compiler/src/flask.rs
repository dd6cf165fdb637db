//! What SELinux/FLASK (and Xen XSM) policy constructs become in Warden: the advice the parser
//! gives when a newcomer writes one, instead of tripping over its first odd character.

/// A construct of the FLASK policy language with no direct Warden counterpart.
pub(crate) struct Advice {
    /// The statement keyword.
    pub(crate) keyword: &'static str,
    /// What Warden says about it.
    pub(crate) message: &'static str,
    /// What to write instead.
    pub(crate) help: &'static str,
}

const TRANSITION: &str = "a domain's label comes from its manifest; a build label that becomes a run label is `transition BUILD -> RUN;`";
const CONSTRAIN: &str = "write the pairs that may interact as rules and forbid the rest with `neverallow` over type sets (`{ * -dom0_t }`, `~guests`); for per-user separation give each user's types an attribute";
const RESOURCE: &str = "declare a type of kind `irq`, `ioport`, `mmio` or `device` and label the resource in the domain's manifest";

/// Every construct the parser recognises, by keyword.
pub(crate) const ADVICE: &[Advice] = &[
    Advice { keyword: "type_transition", message: "`type_transition` is not supported: Warden does not relabel objects at run time", help: TRANSITION },
    Advice { keyword: "type_change", message: "`type_change` is not supported: Warden does not relabel objects at run time", help: TRANSITION },
    Advice { keyword: "type_member", message: "`type_member` is not supported: Warden does not relabel objects at run time", help: TRANSITION },
    Advice { keyword: "range_transition", message: "`range_transition` is not supported: Warden policies have no MLS ranges", help: TRANSITION },
    Advice { keyword: "constrain", message: "`constrain` is not supported: Warden has no constraint expressions", help: CONSTRAIN },
    Advice { keyword: "mlsconstrain", message: "`mlsconstrain` is not supported: Warden policies have no MLS levels", help: CONSTRAIN },
    Advice { keyword: "validatetrans", message: "`validatetrans` is not supported: Warden does not relabel objects at run time", help: CONSTRAIN },
    Advice { keyword: "user", message: "`user` is not supported: Warden labels are types only (no SELinux user or role part)", help: "drop the user statements; Xen's per-user VM separation is an attribute per user's types, with rules over it and `neverallow` or `assert noflow` between users" },
    Advice { keyword: "roleattribute", message: "`roleattribute` is not supported: a Warden role is a bundle of permissions, not a set of types", help: "write `role NAME { class perms; ... }` and `grant NAME to SUBJECTS over TARGETS;`" },
    Advice { keyword: "attribute_role", message: "`attribute_role` is not supported: a Warden role is a bundle of permissions, not a set of types", help: "write `role NAME { class perms; ... }` and `grant NAME to SUBJECTS over TARGETS;`" },
    Advice { keyword: "typeattribute", message: "`typeattribute` is not supported: attributes are named where the type is declared", help: "list the attribute in the declaration: `type guest_t: domain, guests;`" },
    Advice { keyword: "typealias", message: "`typealias` is not supported: each label has one name", help: "rename the uses, or group the names with an `attribute`" },
    Advice { keyword: "class", message: "`class` declarations are not needed: the classes are fixed by the hypervisor's schema", help: "use the classes of the schema table in `policy/README.md` (`unknown class` errors list them too)" },
    Advice { keyword: "common", message: "`common` declarations are not needed: the classes are fixed by the hypervisor's schema", help: "see the schema table in `policy/README.md`" },
    Advice { keyword: "sid", message: "initial SIDs are not needed: the hypervisor labels itself with the one type of kind `hypervisor`", help: "declare `type xen_t: hypervisor;`; every domain's label comes from its manifest" },
    Advice { keyword: "initial_sid", message: "initial SIDs are not needed: the hypervisor labels itself with the one type of kind `hypervisor`", help: "declare `type xen_t: hypervisor;`" },
    Advice { keyword: "pirqcon", message: "`pirqcon` is not supported: resources are labelled in the manifest", help: RESOURCE },
    Advice { keyword: "iomemcon", message: "`iomemcon` is not supported: resources are labelled in the manifest", help: RESOURCE },
    Advice { keyword: "ioportcon", message: "`ioportcon` is not supported: resources are labelled in the manifest", help: RESOURCE },
    Advice { keyword: "pcidevicecon", message: "`pcidevicecon` is not supported: resources are labelled in the manifest", help: RESOURCE },
    Advice { keyword: "devicetreecon", message: "`devicetreecon` is not supported: resources are labelled in the manifest", help: RESOURCE },
    Advice { keyword: "allowxperm", message: "`allowxperm` is not supported: Warden permissions have no extended (ioctl) part", help: "grant the permission with `allow`" },
    Advice { keyword: "sensitivity", message: "MLS `sensitivity` is not supported", help: "separate with types, attributes and `neverallow`/`assert noflow`" },
    Advice { keyword: "category", message: "MLS `category` is not supported", help: "separate with types, attributes and `neverallow`/`assert noflow`" },
    Advice { keyword: "level", message: "MLS `level` is not supported", help: "separate with types, attributes and `neverallow`/`assert noflow`" },
    Advice { keyword: "dominance", message: "MLS `dominance` is not supported", help: "separate with types, attributes and `neverallow`/`assert noflow`" },
    Advice { keyword: "define", message: "m4 macros are not needed: Warden has templates", help: "write `template NAME($x) { ... }` and `use NAME(arg);`" },
];

/// The advice for a statement keyword, if it is a FLASK construct.
pub(crate) fn advice(keyword: &str) -> Option<&'static Advice> {
    ADVICE.iter().find(|a| a.keyword == keyword)
}
