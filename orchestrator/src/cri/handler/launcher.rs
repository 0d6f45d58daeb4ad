//! A program and the leading arguments that start one of a handler's processes. The binary
//! that embeds the runtime says what to run (`ringfence sentry sandbox`, `ringfence-vmm`...),
//! so the library never spawns a program by name.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launcher {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl Launcher {
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Launcher {
        Launcher { program: program.into(), args: args.iter().map(OsString::from).collect() }
    }

    /// A command running the program with the leading arguments.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        c
    }
}
