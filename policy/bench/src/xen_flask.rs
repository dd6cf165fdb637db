//! Builds Xen's example FLASK policy (the copy in `policy/bench/xen-flask`) with m4 and Debian's
//! `checkpolicy`, as Xen's own Makefile does: the reference for the size of Warden's binary.

/// Builds Xen's example policy the way `tools/flask/policy/Makefile.common` does (m4 over the
/// sections in its order, then `checkpolicy -t Xen -c 30`) from `src` (the `xen-flask` folder),
/// and returns the binary's size.
pub fn checkpolicy_size(src: &std::path::Path) -> Result<usize, String> {
    use std::process::Command;
    let conf =
        std::fs::read_to_string(src.join("modules/modules.conf")).map_err(|e| e.to_string())?;
    let modules: Vec<String> = conf
        .lines()
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_lowercase()))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[2] == "on").then(|| f[0].to_string())
        })
        .collect();
    let mut sections: Vec<std::path::PathBuf> = vec![
        src.join("xsm/security_classes"),
        src.join("policy/security_classes"),
        src.join("xsm/initial_sids"),
        src.join("xsm/access_vectors"),
        src.join("policy/access_vectors"),
    ];
    let mut support: Vec<_> = std::fs::read_dir(src.join("policy/support"))
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "spt"))
        .collect();
    support.sort();
    sections.extend(support);
    sections.push(src.join("policy/mls"));
    let with = |ext: &str| -> Vec<std::path::PathBuf> {
        modules
            .iter()
            .map(|m| src.join(format!("modules/{m}.{ext}")))
            .filter(|p| p.exists())
            .collect()
    };
    sections.extend(with("if"));
    sections.push(src.join("policy/global_tunables"));
    sections.extend(with("te"));
    sections.push(src.join("policy/users"));
    sections.extend(with("cons"));
    sections.push(src.join("policy/initial_sids"));
    sections.push(src.join("policy/device_contexts"));
    let dir = std::env::temp_dir().join(format!("warden-xen-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let m4 = Command::new("m4")
        .args([
            "-D",
            "self_contained_policy",
            "-s",
            "-D",
            "mls_num_sens=16",
            "-D",
            "mls_num_cats=256",
        ])
        .args(&sections)
        .output()
        .map_err(|e| format!("m4: {e} (`cargo xtask setup` installs it)"))?;
    if !m4.status.success() {
        return Err(format!(
            "m4 failed: {}",
            String::from_utf8_lossy(&m4.stderr)
        ));
    }
    std::fs::write(dir.join("policy.conf"), &m4.stdout).map_err(|e| e.to_string())?;
    let out = dir.join("xenpolicy");
    let cp = Command::new("checkpolicy")
        .args(["-t", "Xen", "-c", "30"])
        .arg(dir.join("policy.conf"))
        .arg("-o")
        .arg(&out)
        .output()
        .map_err(|e| format!("checkpolicy: {e} (`cargo xtask setup` installs it)"))?;
    if !cp.status.success() {
        return Err(format!(
            "checkpolicy failed: {}",
            String::from_utf8_lossy(&cp.stderr)
        ));
    }
    let size = std::fs::metadata(&out).map_err(|e| e.to_string())?.len() as usize;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(size)
}
