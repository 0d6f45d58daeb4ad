//! OCI runtime-spec seccomp profiles (`linux.seccomp`): the serde types and what their
//! actions mean; [`super::compile`] turns a profile into a filter.
//!
//! Rules are tried in order and the first whose syscall and argument conditions match
//! decides; a syscall named in several rules thus gets the first matching one (rules with
//! arguments before a catch-all, as profiles write them). Names this architecture lacks are
//! skipped, as libseccomp does. Docker's `includes`/`excludes`/`comment` extensions are not
//! part of the OCI format and are ignored.

use serde::{Deserialize, Serialize};

use super::bpf::{BpfError, MAX_INSNS, Program};
use super::filter::Action;

const EPERM: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OciAction {
    #[serde(rename = "SCMP_ACT_KILL")]
    Kill,
    #[serde(rename = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArgOp {
    #[serde(rename = "SCMP_CMP_NE")]
    NotEqual,
    #[serde(rename = "SCMP_CMP_LT")]
    Less,
    #[serde(rename = "SCMP_CMP_LE")]
    LessOrEqual,
    #[serde(rename = "SCMP_CMP_EQ")]
    Equal,
    #[serde(rename = "SCMP_CMP_GE")]
    GreaterOrEqual,
    #[serde(rename = "SCMP_CMP_GT")]
    Greater,
    /// `(arg & value) == valueTwo`.
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEqual,
}

/// A condition on one argument (all of a rule's conditions must hold).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgRule {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: ArgOp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    pub names: Vec<String>,
    pub action: OciAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgRule>,
}

/// An OCI seccomp profile (what a node's localhost profile file or `RuntimeDefault` holds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile {
    pub default_action: OciAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// SCMP_ARCH_* names. Only x86-64 system calls reach the Sentry: calls from any other
    /// architecture cannot happen, and the compiled filter kills them should one appear.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// SECCOMP_FILTER_FLAG_* names; accepted and ignored (the runtime installs the filter
    /// before the process has a second thread, and logging goes to the Sentry's own log).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("SCMP_ACT_NOTIFY needs a user-notification listener, which the Sentry does not offer")]
    Notify,
    #[error("argument index {0} (system calls have 6 arguments)")]
    ArgIndex(u32),
    #[error("errno {0} out of range (1-4095)")]
    Errno(u32),
    #[error("the profile compiles to more than {MAX_INSNS} instructions")]
    TooLarge,
    #[error("the compiled filter is invalid: {0}")]
    Bpf(#[from] BpfError),
}

/// What a rule's action means, with its errno (EPERM unless the rule or profile says).
pub(super) fn action(
    a: OciAction,
    errno: Option<u32>,
    default_errno: Option<u32>,
) -> Result<Action, ProfileError> {
    let data = |e: Option<u32>| -> Result<u16, ProfileError> {
        match e {
            None => Ok(EPERM),
            Some(n @ 1..=4095) => Ok(n as u16),
            Some(n) => Err(ProfileError::Errno(n)),
        }
    };
    Ok(match a {
        OciAction::Kill | OciAction::KillThread => Action::KillThread,
        OciAction::KillProcess => Action::KillProcess,
        OciAction::Trap => Action::Trap(0),
        OciAction::Errno => Action::Errno(data(errno.or(default_errno))?),
        OciAction::Trace => Action::Trace(errno.map(|e| e as u16).unwrap_or(0)),
        OciAction::Allow => Action::Allow,
        OciAction::Log => Action::Log,
        OciAction::Notify => return Err(ProfileError::Notify),
    })
}

impl SeccompProfile {
    /// Compiles the profile into a checked filter program.
    pub fn compile(&self) -> Result<Program, ProfileError> {
        super::compile::compile(self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::filter::seccomp_data;
    use super::*;

    fn run(p: &Program, nr: u64, args: [u64; 6]) -> Action {
        Action::from_ret(p.run(&seccomp_data(nr, 0, &args)))
    }

    #[test]
    fn parses_and_compiles_an_oci_profile() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["sethostname", "setdomainname", "no_such_call"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS", "args": [{"index": 1, "value": 4294967295, "valueTwo": 9, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["getpid"], "action": "SCMP_ACT_TRAP", "comment": "ignored"}
            ]
        }"#;
        let p: SeccompProfile = serde_json::from_str(json).unwrap();
        let prog = p.compile().unwrap();
        assert_eq!(run(&prog, 170, [0; 6]), Action::Errno(1));
        assert_eq!(run(&prog, 171, [0; 6]), Action::Errno(1));
        assert_eq!(run(&prog, 135, [8, 0, 0, 0, 0, 0]), Action::Allow);
        assert_eq!(run(&prog, 135, [9, 0, 0, 0, 0, 0]), Action::Errno(38), "defaultErrnoRet");
        assert_eq!(run(&prog, 135, [8 | 1 << 32, 0, 0, 0, 0, 0]), Action::Errno(38));
        assert_eq!(run(&prog, 62, [1, 9, 0, 0, 0, 0]), Action::KillProcess);
        assert_eq!(run(&prog, 62, [1, 15, 0, 0, 0, 0]), Action::Allow);
        assert_eq!(run(&prog, 39, [0; 6]), Action::Trap(0));
        assert_eq!(run(&prog, 0, [0; 6]), Action::Allow);
        let mut d = seccomp_data(0, 0, &[0; 6]);
        d[4] = 3; // i386
        assert_eq!(Action::from_ret(prog.run(&d)), Action::KillProcess);
        // Round trip through serde.
        let again: SeccompProfile =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn bad_profiles_are_errors_not_panics() {
        let bad = |json: &str| {
            serde_json::from_str::<SeccompProfile>(json)
                .map_err(|e| e.to_string())
                .and_then(|p| p.compile().map_err(|e| e.to_string()))
        };
        assert!(bad(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#).is_err());
        assert!(bad(r#"{"defaultAction": "SCMP_ACT_BOGUS"}"#).is_err());
        assert!(bad(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#).is_err());
        assert!(bad(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#).is_err());
    }
}
