//! Lifecycle test domain: a management domain driving the lifecycle hypercalls locally (no
//! network). From the two boot images it may read (`spinner`, `counter`) it creates three
//! domains, builds, relabels and starts them, lists them, pauses one and shows its progress
//! stop while the others go on, resumes it, raises a priority and shows the effect, destroys
//! one and shows its memory returned; a forbidden label, a Chinese Wall conflict, a bad image,
//! an oversized image and stale ids get their documented answers. Every claim is checked here
//! (a failed check panics, and the scenario fails); the lines it prints are what the system
//! test reads. Then it shuts the host down.
//!
//! With `args = "intruder"` it is instead a domain without management rights: everything it
//! tries is denied, and listing shows it only itself.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
mod guest {
    use warden_rt::abi::lifecycle::{
        CreateRequest, DomainState, DomainStatus, EndReason, IMAGE_MAX, LifecycleError,
    };
    use warden_rt::abi::{StartInfo, Status};
    use warden_rt::lifecycle::{self as lc, LifecycleFail};
    use warden_rt::println;

    fn sleep_ms(ms: u64) {
        let _ = warden_rt::hypercall::block(Some(ms * 1000));
    }

    fn ticks(id: u32) -> u64 {
        lc::info(id).expect("getinfo").cpu_ticks
    }

    fn show(s: &DomainStatus) {
        println!(
            "list: {} id={} state={} label={} priority={} cpu_ticks={} memory_mib={} end={}",
            s.name(),
            s.domain_id,
            s.state().map_or("?", DomainState::name),
            s.label(),
            s.priority,
            s.cpu_ticks,
            s.memory_bytes >> 20,
            s.end().map_or("?", EndReason::name)
        );
    }

    fn list_all(when: &str) -> usize {
        let mut out = [DomainStatus::from_bytes(&[0; DomainStatus::SIZE]); 16];
        let n = lc::list(&mut out).expect("list");
        println!("list {when}: {n} domains");
        for s in &out[..n.min(out.len())] {
            show(s);
        }
        n
    }

    fn create(name: &str, label: &str, prio: u32) -> Result<u32, LifecycleFail> {
        lc::create(&CreateRequest::new(name, label, 4, prio, "from:mgmt"))
    }

    fn build(id: u32, image: &str) {
        let (gpa, len) = lc::boot_image(image).expect("the boot image is in the window");
        lc::build_raw(id, gpa, len).expect("build");
    }

    pub fn intruder(info: &StartInfo) {
        println!("intruder: running as {}", info.label());
        let tries: [(&str, Result<(), LifecycleFail>); 4] = [
            ("pause domain 0", lc::pause(0)),
            ("destroy domain 0", lc::destroy(0)),
            (
                "create a domain",
                create("evil", "counter_t", 5).map(|_| ()),
            ),
            ("shut the host down", lc::host_shutdown()),
        ];
        for (what, r) in tries {
            assert_eq!(r, Err(LifecycleFail::Denied), "{what}");
            println!("intruder: {what}: denied");
        }
        // Listing is not refused: it shows only what the caller may see, here itself.
        let mut out = [DomainStatus::from_bytes(&[0; DomainStatus::SIZE]); 16];
        let n = lc::list(&mut out).expect("list");
        assert!(
            n == 1 && out[0].domain_id == info.domain_id,
            "{n} domains visible"
        );
        println!("intruder: list shows {n} domain (itself)");
    }

    pub fn mgmt(info: &StartInfo) {
        println!("mgmt: running as {}", info.label());
        let before = lc::physinfo().expect("physinfo");
        println!(
            "mgmt: physinfo: {} MiB free of {} MiB, {} live domains, room for {}",
            before.free_bytes >> 20,
            before.total_bytes >> 20,
            before.live_domains,
            before.max_domains
        );

        // Three domains from two images: w1 from `spinner` under a build label, w2 and w3
        // from `counter` under two labels of one Chinese Wall conflict set.
        let w1 = create("w1", "worker_build_t", 5).expect("create w1");
        let w2 = create("w2", "bank_a_t", 5).expect("create w2");
        let w3 = create("w3", "bank_b_t", 5).expect("create w3");
        println!("mgmt: created w1={w1} w2={w2} w3={w3}");
        assert_eq!(lc::info(w1).unwrap().state(), Some(DomainState::Building));

        // Refused requests change nothing.
        assert_eq!(create("bad", "forbidden_t", 5), Err(LifecycleFail::Denied));
        println!("mgmt: create under forbidden_t: denied");
        assert_eq!(
            create("Bad Name", "counter_t", 5),
            Err(LifecycleFail::Invalid(LifecycleError::BadName))
        );
        assert_eq!(
            create("huge", "counter_t", 5000),
            Err(LifecycleFail::Invalid(LifecycleError::BadPriority))
        );
        assert_eq!(
            create("nolabel", "no_such_t", 5),
            Err(LifecycleFail::Invalid(LifecycleError::BadLabel))
        );
        let garbage = [0x5au8; 512];
        assert_eq!(
            lc::build(w1, &garbage),
            Err(LifecycleFail::Invalid(LifecycleError::BadImage))
        );
        println!("mgmt: build from a bad ELF: bad image");
        assert_eq!(
            lc::build_raw(w1, 0x30_0000, IMAGE_MAX + 1),
            Err(LifecycleFail::Other(Status::BadLength))
        );
        println!("mgmt: build from an oversized image: bad length");
        // Output buffers follow the caller's own page tables (issue 16, finding 10): the
        // start-info page is read-only to this domain, so no status record lands on it.
        {
            use warden_rt::abi::lifecycle::LifecycleCall as C;
            let start_info = 0x1000;
            let size = DomainStatus::SIZE as u64;
            for (c, args) in [
                (C::DomainGetInfo, [u64::from(w1), start_info, 0, 0, 0]),
                (C::DomainList, [start_info, size, 0, 0, 0]),
                (C::PhysInfo, [start_info, 0, 0, 0, 0]),
            ] {
                assert_eq!(
                    lc::call_raw(c as u64, args),
                    Err(LifecycleFail::Other(Status::BadAddress)),
                    "{c:?} into the read-only start-info page"
                );
            }
            assert_eq!(info.name(), "mgmt", "the start-info page is intact");
        }
        println!("mgmt: status records into its read-only start-info page: bad address");
        // Starting a domain before it is built is wrong; the worker under its build label
        // may not be started by mgmt at all (the policy decides before the state is looked at).
        assert_eq!(
            lc::unpause(w2),
            Err(LifecycleFail::Invalid(LifecycleError::WrongState))
        );
        assert_eq!(lc::unpause(w1), Err(LifecycleFail::Denied));
        assert_eq!(lc::info(w1).unwrap().state(), Some(DomainState::Building));

        build(w1, "spinner");
        assert_eq!(
            lc::build_raw(w1, 0, 0),
            Err(LifecycleFail::Invalid(LifecycleError::WrongState)),
            "built once only"
        );
        assert_eq!(
            lc::transition(w1, "bank_a_t"),
            Err(LifecycleFail::Invalid(LifecycleError::NoTransition))
        );
        lc::transition(w1, "worker_t").expect("transition w1");
        build(w2, "counter");
        // w3 gets its arguments at build time instead (they replace the create request's).
        let (gpa, len) = lc::boot_image("counter").expect("counter image");
        let args = "from:build";
        let bad = [0xffu8, 0xfe];
        let call = warden_rt::abi::lifecycle::LifecycleCall::DomainBuild as u64;
        let r = lc::call_raw(call, [w3.into(), gpa, len, bad.as_ptr() as u64, 2]);
        assert_eq!(r, Err(LifecycleFail::Invalid(LifecycleError::BadArgs)));
        lc::call_raw(
            call,
            [w3.into(), gpa, len, args.as_ptr() as u64, args.len() as u64],
        )
        .expect("build w3");
        list_all("after build");

        lc::unpause(w1).expect("start w1");
        lc::unpause(w2).expect("start w2");
        assert_eq!(
            lc::unpause(w3),
            Err(LifecycleFail::Invalid(LifecycleError::WallConflict))
        );
        println!("mgmt: start w3: Chinese Wall conflict with w2");
        // While bank_a_t runs, a bank_b_t domain cannot even be created.
        assert_eq!(
            create("w4", "bank_b_t", 5),
            Err(LifecycleFail::Invalid(LifecycleError::WallConflict))
        );
        println!("mgmt: create w4 as bank_b_t while w2 runs: Chinese Wall conflict");
        sleep_ms(40);
        list_all("running");

        // Pause w2: its CPU time stops while w1 goes on.
        lc::pause(w2).expect("pause w2");
        let (a1, a2) = (ticks(w1), ticks(w2));
        sleep_ms(40);
        let (b1, b2) = (ticks(w1), ticks(w2));
        assert_eq!(a2, b2, "a paused domain makes no progress");
        assert!(b1 > a1, "the others go on: w1 {a1} -> {b1}");
        assert_eq!(lc::info(w2).unwrap().state(), Some(DomainState::Paused));
        println!("mgmt: w2 paused: cpu_ticks stayed at {b2} while w1 went {a1} -> {b1}");
        lc::unpause(w2).expect("resume w2");
        sleep_ms(40);
        let c2 = ticks(w2);
        assert!(c2 > b2, "resumed: {b2} -> {c2}");
        println!("mgmt: w2 resumed: cpu_ticks {b2} -> {c2}");

        // Raise w2 above w1: strict priorities starve w1 while w2 runs.
        lc::set_priority(w2, 8).expect("setpriority");
        sleep_ms(5);
        let (d1, d2) = (ticks(w1), ticks(w2));
        sleep_ms(40);
        let (e1, e2) = (ticks(w1), ticks(w2));
        assert_eq!(d1, e1, "w1 gets no CPU below w2");
        assert!(e2 > d2);
        assert_eq!(lc::info(w2).unwrap().priority, 8);
        println!("mgmt: w2 priority 8: w2 cpu_ticks {d2} -> {e2}, w1 stayed at {e1}");

        // Destroy w2: its memory comes back, and the wall lets w3 start.
        let free_before = lc::physinfo().unwrap().free_bytes;
        lc::destroy(w2).expect("destroy w2");
        let free_after = lc::physinfo().unwrap().free_bytes;
        let s = lc::info(w2).unwrap();
        assert_eq!(
            (s.state(), s.end(), s.memory_bytes),
            (Some(DomainState::Ended), Some(EndReason::Destroyed), 0)
        );
        assert!(
            free_after >= free_before + (4 << 20),
            "{free_before} -> {free_after}"
        );
        println!(
            "mgmt: w2 destroyed: free memory {} KiB -> {} KiB",
            free_before >> 10,
            free_after >> 10
        );
        assert_eq!(
            lc::pause(w2),
            Err(LifecycleFail::Invalid(LifecycleError::Ended))
        );
        assert_eq!(
            lc::info(99),
            Err(LifecycleFail::Invalid(LifecycleError::NoSuchDomain))
        );
        assert_eq!(
            lc::pause(info.domain_id),
            Err(LifecycleFail::Invalid(LifecycleError::SelfTarget))
        );
        println!("mgmt: stale and unknown ids refused");
        lc::unpause(w3).expect("start w3 once w2 has gone");
        println!("mgmt: w3 started after w2 was destroyed");
        sleep_ms(20);
        let n = list_all("final");
        assert_eq!(n, 5, "itself, the intruder, w1, w2 (ended) and w3");
        println!("mgmt: lifecycle checks passed; shutting the host down");
        lc::host_shutdown().expect("host shutdown");
    }
}

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    if info.args() == "intruder" {
        guest::intruder(info)
    } else {
        guest::mgmt(info)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
