//! Compiles an OCI seccomp profile to a classic BPF program.
//!
//! Profiles are compiled rather than interpreted so that a runtime's profile and the filters
//! a program installs itself go through one checker, one interpreter and one stacking rule
//! (and /proc reports them alike). The program checks the architecture, then finds the system
//! call by binary search over the numbers the profile names (a few comparisons even for an
//! allow list of hundreds of calls), then tries that call's rules in profile order; calls no
//! rule names take the default action.

use std::collections::BTreeMap;

use super::bpf::{Insn, MAX_INSNS, Program, op};
use super::filter::{AUDIT_ARCH_X86_64, Action};
use super::oci::{ArgOp, ArgRule, ProfileError, SeccompProfile, action};
use crate::syscalls::table;

/// Numbers compared one by one at the bottom of the search.
const LEAF: usize = 4;

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

/// Emits a binary search over `nrs` (sorted) with the syscall number in A: each number
/// jumps to its block, anything else to `default`.
fn search(a: &mut Asm, nrs: &[(u32, usize)], default: usize) {
    if nrs.len() <= LEAF {
        for &(nr, block) in nrs {
            let other = a.label();
            a.jump(op::JEQ_K, nr, To::Next, To::Label(other));
            a.goto(block);
            a.bind(other);
        }
        a.goto(default);
        return;
    }
    let (low, high) = nrs.split_at(nrs.len() / 2);
    let (left, right) = (a.label(), a.label());
    // Long jumps go through JA: conditional offsets are 8 bits.
    a.jump(op::JGE_K, high[0].0, To::Next, To::Label(left));
    a.goto(right);
    a.bind(left);
    search(a, low, default);
    a.bind(right);
    search(a, high, default);
}

pub(super) fn compile(p: &SeccompProfile) -> Result<Program, ProfileError> {
    let default = action(p.default_action, None, p.default_errno_ret)?;
    // Each named call's rules, in profile order (a rule naming a call twice counts once).
    let mut rules: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    let mut actions = Vec::with_capacity(p.syscalls.len());
    for (i, rule) in p.syscalls.iter().enumerate() {
        actions.push(action(rule.action, rule.errno_ret, p.default_errno_ret)?);
        for name in &rule.names {
            let Some(e) = table::TABLE.iter().find(|e| e.name == name) else { continue };
            let list = rules.entry(e.nr as u32).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    let mut a = Asm::default();
    let (native, fallback) = (a.label(), a.label());
    a.stmt(op::LD_ABS, 4);
    a.jump(op::JEQ_K, AUDIT_ARCH_X86_64, To::Label(native), To::Next);
    a.stmt(op::RET_K, Action::KillProcess.to_ret());
    a.bind(native);
    a.stmt(op::LD_ABS, 0);
    let blocks: Vec<(u32, usize)> = rules.keys().map(|nr| (*nr, a.label())).collect();
    search(&mut a, &blocks, fallback);
    for ((_, block), list) in blocks.iter().zip(rules.values()) {
        a.bind(*block);
        for &i in list {
            let fail = a.label();
            for c in &p.syscalls[i].args {
                condition(&mut a, c, fail)?;
            }
            a.stmt(op::RET_K, actions[i].to_ret());
            a.bind(fail);
        }
        // Unreachable after a rule without conditions.
        if list.last().is_some_and(|&i| !p.syscalls[i].args.is_empty()) {
            a.goto(fallback);
        }
    }
    a.bind(fallback);
    a.stmt(op::RET_K, default.to_ret());
    Ok(Program::new(a.finish()?)?)
}

#[cfg(test)]
mod tests {
    use super::super::filter::seccomp_data;
    use super::super::oci::{OciAction, SyscallRule};
    use super::*;

    fn run(p: &Program, nr: u64, args: [u64; 6]) -> Action {
        Action::from_ret(p.run(&seccomp_data(nr, 0, &args)))
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

    /// What a profile means, read directly: the reference the compiled program must match.
    fn reference(p: &SeccompProfile, nr: u64, args: [u64; 6]) -> Action {
        let name = table::TABLE.iter().find(|e| e.nr == nr).map(|e| e.name);
        for r in &p.syscalls {
            if !r.names.iter().any(|n| Some(n.as_str()) == name) {
                continue;
            }
            let holds = |c: &ArgRule| {
                let v = args[c.index as usize];
                match c.op {
                    ArgOp::Equal => v == c.value,
                    ArgOp::NotEqual => v != c.value,
                    ArgOp::Less => v < c.value,
                    ArgOp::LessOrEqual => v <= c.value,
                    ArgOp::Greater => v > c.value,
                    ArgOp::GreaterOrEqual => v >= c.value,
                    ArgOp::MaskedEqual => v & c.value == c.value_two,
                }
            };
            if r.args.iter().all(holds) {
                return action(r.action, r.errno_ret, p.default_errno_ret).unwrap();
            }
        }
        action(p.default_action, None, p.default_errno_ret).unwrap()
    }

    #[test]
    fn compiled_profiles_mean_what_their_rules_say() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let values = [0, 1, 2, 7, 0xffff_ffff, 1 << 32, (1 << 32) | 7, u64::MAX, u64::MAX - 1];
        let ops = [
            ArgOp::Equal,
            ArgOp::NotEqual,
            ArgOp::Less,
            ArgOp::LessOrEqual,
            ArgOp::Greater,
            ArgOp::GreaterOrEqual,
            ArgOp::MaskedEqual,
        ];
        let actions = [
            OciAction::Allow,
            OciAction::Errno,
            OciAction::Trap,
            OciAction::Log,
            OciAction::KillProcess,
        ];
        let names: Vec<&str> = table::TABLE.iter().map(|e| e.name).take(40).collect();
        for _ in 0..300 {
            let pick = |r: u64, n: usize| (r % n as u64) as usize;
            let syscalls = (0..pick(next(), 30) + 1)
                .map(|_| SyscallRule {
                    names: (0..pick(next(), 4) + 1)
                        .map(|_| names[pick(next(), names.len())].to_string())
                        .collect(),
                    action: actions[pick(next(), actions.len())],
                    errno_ret: Some(pick(next(), 4) as u32 + 1),
                    args: (0..pick(next(), 3))
                        .map(|_| ArgRule {
                            index: pick(next(), 3) as u32,
                            value: values[pick(next(), values.len())],
                            value_two: values[pick(next(), values.len())],
                            op: ops[pick(next(), ops.len())],
                        })
                        .collect(),
                })
                .collect();
            let p = SeccompProfile {
                default_action: OciAction::Errno,
                default_errno_ret: Some(9),
                architectures: vec![],
                flags: vec![],
                syscalls,
            };
            let prog = p.compile().unwrap();
            for _ in 0..60 {
                let nr = table::TABLE[pick(next(), 45)].nr;
                let args = [0, 1, 2].map(|_| values[pick(next(), values.len())]);
                let args = [args[0], args[1], args[2], 0, 0, 0];
                assert_eq!(run(&prog, nr, args), reference(&p, nr, args), "{p:?} nr {nr} {args:?}");
            }
        }
    }

    #[test]
    fn a_long_allow_list_fits_and_allows_every_call() {
        let all: Vec<String> = table::TABLE.iter().map(|e| e.name.to_string()).collect();
        let p = SeccompProfile {
            default_action: OciAction::Errno,
            default_errno_ret: None,
            architectures: vec![],
            flags: vec![],
            syscalls: vec![SyscallRule {
                names: all,
                action: OciAction::Allow,
                errno_ret: None,
                args: vec![],
            }],
        };
        let prog = p.compile().unwrap();
        assert!(prog.len() < 5 * table::TABLE.len(), "{} instructions", prog.len());
        for e in table::TABLE {
            assert_eq!(run(&prog, e.nr, [0; 6]), Action::Allow, "{}", e.name);
        }
        assert_eq!(run(&prog, 335, [0; 6]), Action::Errno(1));
        assert_eq!(run(&prog, 100_000, [0; 6]), Action::Errno(1));
    }

    #[test]
    fn a_profile_too_large_for_one_filter_is_refused() {
        let arg = |v| ArgRule { index: 0, value: v, value_two: 0, op: ArgOp::Equal };
        let rules = (0..1000)
            .map(|v| SyscallRule {
                names: vec!["read".into()],
                action: OciAction::Log,
                errno_ret: None,
                args: vec![arg(v)],
            })
            .collect();
        let p = SeccompProfile {
            default_action: OciAction::Allow,
            default_errno_ret: None,
            architectures: vec![],
            flags: vec![],
            syscalls: rules,
        };
        assert_eq!(p.compile(), Err(ProfileError::TooLarge));
    }
}
