//! The server's log: one line per event, to stderr or to the file given with `--log file=L`.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

static FILE: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// Sends further log lines to `path` (appended), as swtpm's `--log file=L` does.
pub fn to_file(path: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let _ = FILE.set(Mutex::new(f));
    Ok(())
}

/// Writes one line, prefixed with `vtpm-sim: `.
pub fn line(msg: std::fmt::Arguments<'_>) {
    match FILE.get() {
        Some(f) => {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(f, "vtpm-sim: {msg}");
        }
        // Not eprintln!, which panics when stderr is gone (a `-d` server's parent exited).
        None => {
            let _ = writeln!(std::io::stderr(), "vtpm-sim: {msg}");
        }
    }
}

/// `log!("…", args)`: one line in the server's log.
#[macro_export]
macro_rules! log {
    ($($t:tt)*) => { $crate::log::line(format_args!($($t)*)) };
}
