//! Where `ringfence sentry ...` runs: in the small `ringfence-sentry` beside this binary where
//! it is installed. A sandbox's Sentry process then holds that binary's code (the Sentry, its
//! command line, logging) rather than the whole of `ringfence`'s (API server, node agent,
//! images, VMM tooling), most of an idle sandbox's memory.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use orchestrator::cri::handler::Launcher;

/// `ringfence-sentry` beside `exe`, if it is installed.
fn small_binary(exe: &Path) -> Option<PathBuf> {
    Some(exe.with_file_name("ringfence-sentry")).filter(|small| small.is_file())
}

/// What starts `ringfence sentry <command>` for a runtime handler: `ringfence-sentry <command>`
/// where it is installed beside `exe` (not `exe` first, only to execute it), else `exe`'s.
pub fn sentry_launcher(exe: &Path, command: &str) -> Launcher {
    match small_binary(exe) {
        Some(small) => Launcher::new(small, &[command]),
        None => Launcher::new(exe, &[super::SENTRY_COMMAND[0], command]),
    }
}

/// Replaces this process with `ringfence-sentry`, given the arguments that followed `sentry`
/// (and the global flags before it). Returns only if there is no such binary or it cannot be
/// executed; the command then runs here.
pub fn exec_sentry_binary() {
    let Ok(exe) = std::env::current_exe() else { return };
    let Some(small) = small_binary(&exe) else { return };
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(args) = after_subcommand(&args) else { return };
    let e = Command::new(&small).args(args).exec();
    tracing::warn!("running the Sentry in ringfence itself: executing {}: {e}", small.display());
}

/// `args` (argv without the program) without the `sentry` word: the global flags before it,
/// then everything after it. `None` if the first word is not `sentry`.
fn after_subcommand(args: &[OsString]) -> Option<Vec<OsString>> {
    let at = args.iter().position(|a| !a.to_string_lossy().starts_with('-'))?;
    if args[at] != *super::SENTRY_COMMAND.first()? {
        return None;
    }
    Some(args[..at].iter().chain(&args[at + 1..]).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn the_sentry_word_goes_and_the_rest_stays_in_order() {
        let got = after_subcommand(&words("-v sentry run --rootfs /r -- ls -v sentry"));
        assert_eq!(got, Some(words("-v run --rootfs /r -- ls -v sentry")));
        assert_eq!(after_subcommand(&words("vm run sentry")), None);
        assert_eq!(after_subcommand(&words("-vv")), None);
    }
}
