//! Checkpoint test domain (issue 13 part A): a checkpoint service (`ckpt_t`) drives the
//! hypervisor's checkpoint/restore mechanism locally. It creates a counter from its boot image,
//! lets it count, pauses it, captures every page and the vCPU into its own memory, destroys it,
//! restores it as a new domain and starts it: the counter must go on from the next step with
//! its x87/SSE registers as planted (the system test reads both lines). On the way every
//! refusal it can provoke gets its documented answer (a running target, a page out of range,
//! an output buffer it cannot write, restore calls on a domain not being restored, vCPU
//! records a domain could not reach). Then it tracks the pages the restored counter writes
//! (dirty logging) and prints them for the system test to compare with the pages the counter
//! says it wrote. Every claim is checked here; a failed check panics.
//!
//! With `args = "denied"` it is a management domain the policy forbids introspection
//! (`neverallow mgmt_t counter_t: introspect *`): each call it tries is denied and audited.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
warden_rt::entry!(main);

#[cfg(target_os = "none")]
mod guest {
    use alloc::vec::Vec;
    use warden_rt::abi::introspect::{IntrospectError, VcpuProblem, VcpuRecord};
    use warden_rt::abi::lifecycle::CreateRequest;
    use warden_rt::abi::{START_INFO_MAGIC, StartInfo, Status};
    use warden_rt::introspect::{self as ix, IntroFail};
    use warden_rt::lifecycle as lc;
    use warden_rt::println;

    const PAGE: usize = 4096;

    fn sleep_ms(ms: u64) {
        let _ = warden_rt::hypercall::block(Some(ms * 1000));
    }

    /// The management domain: everything is denied.
    pub fn denied() {
        // Wait for the counter (id 2) to exist: before that the answer would be "no such domain".
        while lc::info(2).is_err() {
            sleep_ms(10);
        }
        let mut page = [0u8; PAGE];
        assert_eq!(ix::read_page(2, 0, &mut page), Err(IntroFail::Denied));
        assert_eq!(ix::get_vcpu(2).err(), Some(IntroFail::Denied));
        assert_eq!(ix::target_info(2).err(), Some(IntroFail::Denied));
        let req = CreateRequest::new("forged", "counter_t", 3, 5, "ckpt");
        assert_eq!(ix::restore_create(&req), Err(IntroFail::Denied));
        assert!(
            page.iter().all(|&b| b == 0),
            "a denied read wrote into the buffer"
        );
        println!("mgmt: read page, get vCPU, target info and restore of counter_t: denied");
    }

    /// `cargo xtask bench checkpoint`: this domain's memcpy over half the captured size, then a
    /// full capture of a `mib:N` counter and a full restore, timed by the TSC (instructions
    /// under `-icount`).
    pub fn bench(info: &StartInfo) {
        use warden_rt::abi::guest::rdtsc;
        let mib = warden_guests::arg_u64(info.args(), "mib").unwrap_or(64) as usize;
        let req = CreateRequest::new("victim", "counter_t", mib as u32, 5, "");
        let id = lc::create(&req).expect("create");
        let (gpa, len) = lc::boot_image("counter").expect("the counter image is in the window");
        lc::build_raw(id, gpa, len).expect("build");
        lc::unpause(id).expect("start");
        sleep_ms(20);
        lc::pause(id).expect("pause");
        let pages = mib << 8;
        let mut image: Vec<u8> = alloc::vec![0u8; pages * PAGE];
        // The reference: this domain's own memcpy, half of the buffer onto the other half.
        let half = image.len() / 2;
        let t0 = rdtsc();
        image.copy_within(..half, half);
        let memcpy_ticks = rdtsc() - t0;
        let mut page = [0u8; PAGE];
        let t0 = rdtsc();
        for (p, chunk) in image.chunks_exact_mut(PAGE).enumerate() {
            let out: &mut [u8; PAGE] = chunk.try_into().unwrap();
            ix::read_page(id, p as u64, out).expect("read page");
        }
        let vcpu = ix::get_vcpu(id).expect("get vCPU");
        let capture_ticks = rdtsc() - t0;
        lc::destroy(id).expect("destroy");
        let t0 = rdtsc();
        let new = ix::restore_create(&CreateRequest::new(
            "victim2",
            "counter_t",
            mib as u32,
            5,
            "",
        ))
        .expect("restore create");
        let mut restored = 0;
        for (p, chunk) in image.chunks_exact(PAGE).enumerate() {
            if chunk.iter().any(|&b| b != 0) {
                page.copy_from_slice(chunk);
                ix::restore_page(new, p as u64, &page).expect("restore page");
                restored += 1;
            }
        }
        ix::set_vcpu(new, &vcpu).expect("set vCPU");
        let restore_ticks = rdtsc() - t0;
        lc::unpause(new).expect("start the restored domain");
        println!(
            "bench: mib={mib} memcpy_bytes={half} memcpy_ticks={memcpy_ticks} capture_ticks={capture_ticks} restore_ticks={restore_ticks} restored_pages={restored}"
        );
        lc::host_shutdown().expect("host shutdown");
    }

    /// The checkpoint service.
    pub fn service(info: &StartInfo) {
        println!("ckpt: running as {}", info.label());
        let req = CreateRequest::new("counter", "counter_t", 3, 5, "ckpt");
        let id = lc::create(&req).expect("create the counter");
        let (gpa, len) = lc::boot_image("counter").expect("the counter image is in the window");
        lc::build_raw(id, gpa, len).expect("build");
        lc::unpause(id).expect("start");
        sleep_ms(300);

        // Capture needs a paused target.
        let mut page = [0u8; PAGE];
        assert_eq!(
            ix::read_page(id, 0, &mut page),
            Err(IntroFail::Introspect(IntrospectError::Running))
        );
        assert_eq!(
            ix::get_vcpu(id).err(),
            Some(IntroFail::Introspect(IntrospectError::Running))
        );
        lc::pause(id).expect("pause");
        let target = ix::target_info(id).expect("target info");
        let pages = target.memory_bytes as usize / PAGE;
        assert_eq!(target.in_flight, 0);
        println!(
            "ckpt: counter (id {id}) paused: {} pages, label {}",
            pages,
            warden_rt::abi::fixed_str(&target.label)
        );

        // Refusals at the boundary: an index past the end, an output buffer the caller cannot
        // write (its own read-only start-info page), no restore calls on a live domain.
        assert_eq!(
            ix::read_page(id, pages as u64, &mut page),
            Err(IntroFail::Introspect(IntrospectError::PageOutOfRange))
        );
        let ro = warden_rt::abi::introspect::IntrospectCall::GetVcpu as u64;
        let start_info = core::ptr::from_ref(info) as u64;
        assert_eq!(
            ix::call_raw(ro, [id.into(), start_info, 0, 0, 0]),
            Err(IntroFail::Other(Status::BadAddress))
        );
        assert_eq!(
            ix::restore_page(id, 0, &page),
            Err(IntroFail::Introspect(IntrospectError::NotRestoring))
        );
        assert_eq!(
            ix::read_page(info.domain_id, 0, &mut page),
            Err(IntroFail::Lifecycle(
                warden_rt::abi::lifecycle::LifecycleError::SelfTarget
            ))
        );
        println!(
            "ckpt: running target, page out of range, read-only buffer, self and restore of a live domain refused"
        );

        // Capture: every page and the vCPU, into this domain's own memory.
        let mut image: Vec<u8> = alloc::vec![0u8; pages * PAGE];
        for (p, chunk) in image.chunks_exact_mut(PAGE).enumerate() {
            ix::read_page(id, p as u64, &mut page).expect("read page");
            chunk.copy_from_slice(&page);
        }
        let vcpu = ix::get_vcpu(id).expect("get vCPU");
        let mxcsr = vcpu.mxcsr();
        assert_eq!(
            mxcsr,
            0x1f80 | 3 << 13,
            "the planted MXCSR is in the captured FXSAVE image"
        );
        let nonzero = image
            .chunks_exact(PAGE)
            .filter(|c| c.iter().any(|&b| b != 0))
            .count();
        println!(
            "ckpt: captured {pages} pages ({nonzero} not zero) and the vCPU: rip={:#x} rsp={:#x} mxcsr={mxcsr:#x} tsc={}",
            vcpu.rip, vcpu.gprs[4], vcpu.tsc
        );
        // The start-info page in the image is the counter's.
        let si = StartInfo::from_bytes(image[PAGE..PAGE + StartInfo::SIZE].try_into().unwrap());
        assert_eq!((si.magic, si.domain_id), (START_INFO_MAGIC, id));

        lc::destroy(id).expect("destroy the counter");
        println!("ckpt: counter destroyed");

        // Restore as a new domain.
        let req = CreateRequest::new(
            "counter2",
            "counter_t",
            (pages * PAGE >> 20) as u32,
            5,
            "ckpt",
        );
        let new = ix::restore_create(&req).expect("restore create");
        assert_ne!(new, id);
        for (p, chunk) in image.chunks_exact(PAGE).enumerate() {
            if chunk.iter().any(|&b| b != 0) {
                page.copy_from_slice(chunk);
                ix::restore_page(new, p as u64, &page).expect("restore page");
            }
        }
        assert_eq!(
            ix::restore_page(new, pages as u64, &page),
            Err(IntroFail::Introspect(IntrospectError::PageOutOfRange))
        );
        // Records no domain could reach are refused, and change nothing.
        type Edit = fn(&mut VcpuRecord);
        let bad: [(&str, Edit, VcpuProblem); 5] = [
            ("EFER.SVME", |r| r.efer |= 1 << 12, VcpuProblem::Efer),
            (
                "a non-canonical RIP",
                |r| r.rip = 0x0000_8000_0000_0000,
                VcpuProblem::NotCanonical,
            ),
            (
                "CR0 without paging",
                |r| r.cr0 &= !(1 << 31),
                VcpuProblem::Cr0,
            ),
            (
                "an MXCSR reserved bit",
                |r| r.fx[27] = 0x80,
                VcpuProblem::Fpu,
            ),
            ("version 9", |r| r.version = 9, VcpuProblem::Version),
        ];
        for (what, edit, want) in bad {
            let mut r = vcpu.clone();
            edit(&mut r);
            assert_eq!(ix::set_vcpu(new, &r), Err(IntroFail::Vcpu(want)), "{what}");
        }
        // Not startable before its vCPU is set, nor buildable: a build would measure an image
        // the restore then overwrites (and its VMCB would be lost to `SetVcpu`).
        assert!(lc::unpause(new).is_err(), "a restoring domain started");
        assert_eq!(
            lc::build(new, &page),
            Err(lc::LifecycleFail::Invalid(
                warden_rt::abi::lifecycle::LifecycleError::WrongState
            )),
            "a restoring domain was built"
        );
        ix::set_vcpu(new, &vcpu).expect("set vCPU");
        assert_eq!(
            ix::set_vcpu(new, &vcpu),
            Err(IntroFail::Introspect(IntrospectError::NotRestoring))
        );
        println!("ckpt: bad vCPU records refused; counter restored as id {new}");
        lc::unpause(new).expect("start the restored counter");
        sleep_ms(300);
        let s = lc::info(new).expect("getinfo");
        assert!(s.cpu_ticks > 0, "the restored counter ran");
        println!("ckpt: restored counter ran for {} ticks", s.cpu_ticks);

        // Dirty logging: the pages the counter writes while tracked, and none while paused.
        let mut bitmap = alloc::vec![0u8; pages / 8];
        assert_eq!(
            ix::dirty_fetch(new, &mut bitmap),
            Err(IntroFail::Introspect(IntrospectError::NotTracking))
        );
        lc::pause(new).expect("pause");
        ix::dirty_start(new).expect("dirty start");
        lc::unpause(new).expect("resume");
        sleep_ms(200);
        lc::pause(new).expect("pause");
        assert_eq!(
            ix::dirty_fetch(new, &mut bitmap[..pages / 8 - 1]),
            Err(IntroFail::Introspect(IntrospectError::ShortBitmap))
        );
        let n = ix::dirty_fetch(new, &mut bitmap).expect("dirty fetch");
        let dirty: Vec<usize> = (0..pages)
            .filter(|p| bitmap[p / 8] & 1 << (p % 8) != 0)
            .collect();
        assert_eq!(dirty.len() as u64, n);
        let mut list = alloc::string::String::new();
        for p in &dirty {
            list.push_str(&alloc::format!(" {:#x}", p * PAGE));
        }
        println!("ckpt: dirty pages ({n}):{list}");
        let again = ix::dirty_fetch(new, &mut bitmap).expect("dirty fetch");
        assert_eq!(again, 0, "pages written while paused");
        assert!(bitmap.iter().all(|&b| b == 0));
        println!("ckpt: none written while paused; shutting the host down");
        lc::host_shutdown().expect("host shutdown");
    }
}

#[cfg(target_os = "none")]
fn main(info: &'static warden_rt::abi::StartInfo) {
    if info.args().starts_with("bench") {
        guest::bench(info);
    } else if info.args() == "denied" {
        guest::denied();
    } else {
        guest::service(info);
    }
}

#[cfg(not(target_os = "none"))]
fn main() {}
