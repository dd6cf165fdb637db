//! Compiling a scenario's policy source into the binary module the hypervisor loads, with the
//! same compiler `wardenpol compile` uses.

use crate::{RigError, workspace_root};
use std::path::{Path, PathBuf};

/// Compiles `source` (relative to the workspace root) into `dir/policy.bin`.
pub(crate) fn compile(source: &str, dir: &Path) -> Result<PathBuf, RigError> {
    let path = workspace_root().join(source);
    let text = std::fs::read_to_string(&path).map_err(RigError::io(format!("reading policy {}", path.display())))?;
    let compiled = warden_policy_compiler::compile(&text).map_err(|diags| {
        RigError::Build(format!(
            "policy {source} does not compile:\n{}",
            warden_policy_compiler::diag::render(source, &text, &diags)
        ))
    })?;
    let out = dir.join("policy.bin");
    std::fs::write(&out, compiled.to_binary()).map_err(RigError::io("writing the compiled policy"))?;
    Ok(out)
}
