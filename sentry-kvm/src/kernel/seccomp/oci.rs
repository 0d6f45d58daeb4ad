//! OCI runtime-spec seccomp profiles (`linux.seccomp`): the serde types, and their
//! compilation to a classic BPF program.
//!
//! Profiles are compiled, not interpreted, so that a runtime's profile and the filters a
//! program installs itself go through one checker, one interpreter and one stacking rule (and
//! /proc reports them alike). Rules are tried in order and the first whose syscall and
//! argument conditions match decides; a syscall named in several rules thus gets the first
//! matching one (rules with arguments before a catch-all, as profiles write them). Names this
//! architecture lacks are skipped, as libseccomp does. Docker's `includes`/`excludes`/`comment`
//! extensions are not part of the OCI format and are ignored.

use serde::{Deserialize, Serialize};

use super::bpf::{BpfError, Insn, MAX_INSNS, Program, op};
use super::filter::{AUDIT_ARCH_X86_64, Action};
use crate::syscalls::table;

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

/// A jump target while assembling: the next instruction, or a label.
#[derive(Clone, Copy)]
enum To {
    Next,
    Label(usize),
}

/// A small assembler with forward labels.
#[derive(Default)]
struct Asm {
    code: Vec<(Insn, To, To)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.code.len());
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.code.push((Insn::stmt(code, k), To::Next, To::Next));
    }

    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.code.push((Insn::jump(code, k, 0, 0), jt, jf));
    }

    /// An unconditional jump (32-bit reach).
    fn goto(&mut self, l: usize) {
        self.code.push((Insn::stmt(op::JA_K, 0), To::Label(l), To::Next));
    }

    fn finish(self) -> Result<Vec<Insn>, ProfileError> {
        if self.code.len() > MAX_INSNS {
            return Err(ProfileError::TooLarge);
        }
        let off = |pc: usize, t: To| -> Result<usize, ProfileError> {
            match t {
                To::Next => Ok(0),
                To::Label(l) => {
                    let at = self.labels[l].ok_or(ProfileError::TooLarge)?;
                    at.checked_sub(pc + 1).ok_or(ProfileError::TooLarge)
                }
            }
        };
        let mut out = Vec::with_capacity(self.code.len());
        for (pc, (mut i, jt, jf)) in self.code.iter().copied().enumerate() {
            if i.code == op::JA_K {
                i.k = off(pc, jt)? as u32;
            } else {
                i.jt = u8::try_from(off(pc, jt)?).map_err(|_| ProfileError::TooLarge)?;
                i.jf = u8::try_from(off(pc, jf)?).map_err(|_| ProfileError::TooLarge)?;
            }
            out.push(i);
        }
        Ok(out)
    }
}

fn action(
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

/// Emits a check of one 64-bit argument condition: falls through when it holds, jumps to
/// `fail` when not. seccomp_data holds each argument as two little-endian words.
fn condition(a: &mut Asm, c: &ArgRule, fail: usize) -> Result<(), ProfileError> {
    if c.index >= 6 {
        return Err(ProfileError::ArgIndex(c.index));
    }
    let lo_off = 16 + 8 * c.index;
    let hi_off = lo_off + 4;
    let (vhi, vlo) = ((c.value >> 32) as u32, c.value as u32);
    let pass = a.label();
    let f = To::Label(fail);
    let p = To::Label(pass);
    let n = To::Next;
    match c.op {
        ArgOp::Equal => {
            a.stmt(op::LD_ABS, hi_off);
            a.jump(op::JEQ_K, vhi, n, f);
            a.stmt(op::LD_ABS, lo_off);
            a.jump(op::JEQ_K, vlo, n, f);
        }
        ArgOp::NotEqual => {
            a.stmt(op::LD_ABS, hi_off);
            a.jump(op::JEQ_K, vhi, n, p);
            a.stmt(op::LD_ABS, lo_off);
            a.jump(op::JEQ_K, vlo, f, p);
        }
        ArgOp::MaskedEqual => {
            let (mhi, mlo) = (vhi, vlo);
            let (dhi, dlo) = ((c.value_two >> 32) as u32, c.value_two as u32);
            a.stmt(op::LD_ABS, hi_off);
            a.stmt(op::AND_K, mhi);
            a.jump(op::JEQ_K, dhi, n, f);
            a.stmt(op::LD_ABS, lo_off);
            a.stmt(op::AND_K, mlo);
            a.jump(op::JEQ_K, dlo, n, f);
        }
        ArgOp::Greater | ArgOp::GreaterOrEqual => {
            a.stmt(op::LD_ABS, hi_off);
            a.jump(op::JGT_K, vhi, p, n);
            a.jump(op::JEQ_K, vhi, n, f);
            a.stmt(op::LD_ABS, lo_off);
            let last = if c.op == ArgOp::Greater { op::JGT_K } else { op::JGE_K };
            a.jump(last, vlo, p, f);
        }
        ArgOp::Less | ArgOp::LessOrEqual => {
            a.stmt(op::LD_ABS, hi_off);
            a.jump(op::JGT_K, vhi, f, n);
            a.jump(op::JEQ_K, vhi, n, p);
            a.stmt(op::LD_ABS, lo_off);
            // lo < v  <=>  !(lo >= v);  lo <= v  <=>  !(lo > v)
            let last = if c.op == ArgOp::Less { op::JGE_K } else { op::JGT_K };
            a.jump(last, vlo, f, p);
        }
    }
    a.bind(pass);
    Ok(())
}

impl SeccompProfile {
    /// Compiles the profile into a checked filter program.
    pub fn compile(&self) -> Result<Program, ProfileError> {
        let default = action(self.default_action, None, self.default_errno_ret)?;
        let mut a = Asm::default();
        let native = a.label();
        a.stmt(op::LD_ABS, 4);
        a.jump(op::JEQ_K, AUDIT_ARCH_X86_64, To::Label(native), To::Next);
        a.stmt(op::RET_K, Action::KillProcess.to_ret());
        a.bind(native);
        for rule in &self.syscalls {
            let act = action(rule.action, rule.errno_ret, self.default_errno_ret)?;
            let numbers: Vec<u64> = rule
                .names
                .iter()
                .filter_map(|n| table::TABLE.iter().find(|e| e.name == n).map(|e| e.nr))
                .collect();
            if numbers.is_empty() {
                continue;
            }
            let (body, fail) = (a.label(), a.label());
            a.stmt(op::LD_ABS, 0);
            for nr in numbers {
                let other = a.label();
                a.jump(op::JEQ_K, nr as u32, To::Next, To::Label(other));
                a.goto(body);
                a.bind(other);
            }
            a.goto(fail);
            a.bind(body);
            for c in &rule.args {
                condition(&mut a, c, fail)?;
            }
            a.stmt(op::RET_K, act.to_ret());
            a.bind(fail);
        }
        a.stmt(op::RET_K, default.to_ret());
        Ok(Program::new(a.finish()?)?)
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
    fn comparisons_are_64_bit_and_unsigned() {
        // (operator, operand, [(argument, holds)])
        type Case = (ArgOp, u64, &'static [(u64, bool)]);
        let cases: [Case; 6] = [
            (ArgOp::Equal, 5 << 32 | 7, &[(5 << 32 | 7, true), (7, false), (5 << 32, false)]),
            (ArgOp::NotEqual, 5 << 32 | 7, &[(5 << 32 | 7, false), (7, true), (u64::MAX, true)]),
            (
                ArgOp::Greater,
                1 << 32,
                &[
                    (1 << 32, false),
                    ((1 << 32) + 1, true),
                    (2 << 32, true),
                    (u32::MAX as u64, false),
                ],
            ),
            (
                ArgOp::GreaterOrEqual,
                1 << 32 | 5,
                &[(1 << 32 | 5, true), (1 << 32 | 4, false), (u64::MAX, true), (6, false)],
            ),
            (
                ArgOp::Less,
                1 << 32 | 5,
                &[(1 << 32 | 4, true), (1 << 32 | 5, false), (0, true), (2 << 32, false)],
            ),
            (
                ArgOp::LessOrEqual,
                1 << 32 | 5,
                &[(1 << 32 | 5, true), (1 << 32 | 6, false), (u32::MAX as u64, true)],
            ),
        ];
        for (op, value, samples) in cases {
            let p = SeccompProfile {
                default_action: OciAction::Errno,
                default_errno_ret: None,
                architectures: vec![],
                flags: vec![],
                syscalls: vec![SyscallRule {
                    names: vec!["read".into()],
                    action: OciAction::Allow,
                    errno_ret: None,
                    args: vec![ArgRule { index: 2, value, value_two: 0, op }],
                }],
            };
            let prog = p.compile().unwrap();
            for (arg, want) in samples {
                let got = run(&prog, 0, [0, 0, *arg, 0, 0, 0]) == Action::Allow;
                assert_eq!(got, *want, "{op:?} {value:#x} against {arg:#x}");
            }
        }
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
        // Thousands of rules: too large, refused.
        let names: Vec<String> = (0..3000).map(|_| "\"read\"".to_string()).collect();
        let big = format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{{"names": [{}], "action": "SCMP_ACT_LOG"}}]}}"#,
            names.join(",")
        );
        assert_eq!(bad(&big), Err(ProfileError::TooLarge.to_string()));
    }
}
