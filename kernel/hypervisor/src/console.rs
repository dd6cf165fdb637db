//! The hypervisor console on COM1: `print!`/`println!` with whole lines kept together.

use core::fmt::Write;
use warden_hw::serial::Serial;

static LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Writes formatted text; used by the macros.
pub(crate) fn print(args: core::fmt::Arguments<'_>) {
    let _guard = LOCK.lock();
    let _ = Serial.write_fmt(args);
}

/// Writes formatted text without taking the lock: for the fatal-error paths, which may run
/// while the interrupted code holds it.
pub(crate) fn print_unlocked(args: core::fmt::Arguments<'_>) {
    let _ = Serial.write_fmt(args);
}

macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

macro_rules! fatal_println {
    ($($arg:tt)*) => { $crate::console::print_unlocked(format_args!("{}\n", format_args!($($arg)*))) };
}
