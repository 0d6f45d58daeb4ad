//! Classic BPF as seccomp uses it: a checker that admits only the instructions a seccomp
//! filter may use, and an interpreter over `struct seccomp_data`. Programs only jump
//! forwards, so a run takes at most one step per instruction.

/// The most instructions one program may have.
pub const MAX_INSNS: usize = 4096;
/// Scratch memory words.
const MEM_WORDS: u32 = 16;
/// Size of `struct seccomp_data`: nr, arch, instruction_pointer, args[6].
pub const DATA_LEN: u32 = 64;

// Instruction classes and fields (the kernel's UAPI values).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const K: u16 = 0x00;
const X: u16 = 0x08;
const RET_A: u16 = 0x10;
const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const MUL: u16 = 0x20;
const DIV: u16 = 0x30;
const OR: u16 = 0x40;
const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const NEG: u16 = 0x80;
const XOR: u16 = 0xa0;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JGT: u16 = 0x20;
const JGE: u16 = 0x30;
const JSET: u16 = 0x40;
const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

/// `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Insn {
    pub const SIZE: usize = 8;

    pub const fn stmt(code: u16, k: u32) -> Insn {
        Insn { code, jt: 0, jf: 0, k }
    }

    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
        Insn { code, jt, jf, k }
    }

    pub fn from_bytes(b: &[u8; 8]) -> Insn {
        Insn {
            code: u16::from_le_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Opcodes the profile compiler emits.
pub mod op {
    use super::*;
    pub const LD_ABS: u16 = LD | W | ABS;
    pub const LD_IMM: u16 = LD | IMM;
    pub const LD_MEM: u16 = LD | MEM;
    pub const ST_MEM: u16 = ST;
    pub const AND_K: u16 = ALU | AND | K;
    pub const JA_K: u16 = JMP | JA;
    pub const JEQ_K: u16 = JMP | JEQ | K;
    pub const JGT_K: u16 = JMP | JGT | K;
    pub const JGE_K: u16 = JMP | JGE | K;
    pub const RET_K: u16 = RET | K;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BpfError {
    #[error("a filter has 1 to {MAX_INSNS} instructions, not {0}")]
    Length(usize),
    #[error("instruction {0}: opcode {1:#x} is not allowed in a seccomp filter")]
    Opcode(usize, u16),
    #[error("instruction {0}: jump out of the program")]
    Jump(usize),
    #[error("instruction {0}: offset {1} is outside seccomp_data or unaligned")]
    Offset(usize, u32),
    #[error("instruction {0}: division by zero")]
    DivisionByZero(usize),
    #[error("instruction {0}: shift by {1}")]
    Shift(usize, u32),
    #[error("instruction {0}: scratch memory {1} out of range or read before written")]
    Memory(usize, u32),
    #[error("the last instruction is not a return")]
    NoReturn,
}

/// A checked program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program(Vec<Insn>);

impl Program {
    /// Checks `insns` as Linux does for seccomp (the same refusals, all EINVAL to the caller).
    pub fn new(insns: Vec<Insn>) -> Result<Program, BpfError> {
        check(&insns)?;
        Ok(Program(lower(insns)))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The program as `struct sock_filter`s for a Linux kernel's seccomp (a microVM guest's).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * Insn::SIZE);
        for i in &self.0 {
            out.extend_from_slice(&i.code.to_le_bytes());
            out.extend_from_slice(&[i.jt, i.jf]);
            out.extend_from_slice(&i.k.to_le_bytes());
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs the program over `data` (a `struct seccomp_data`); returns its result.
    pub fn run(&self, data: &[u8; DATA_LEN as usize]) -> u32 {
        let p = &self.0;
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; MEM_WORDS as usize];
        let mut pc = 0usize;
        // The checker guarantees forward jumps within the program ending at a return; the
        // bounds below only keep a bug from turning into a panic.
        while let Some(i) = p.get(pc) {
            pc += 1;
            let k = i.k;
            let src = if i.code & X != 0 { x } else { k };
            match i.code {
                c if c == LD | W | ABS => {
                    let o = k as usize;
                    a = data
                        .get(o..o + 4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(0);
                }
                c if c == LD | IMM => a = k,
                c if c == LDX | IMM => x = k,
                c if c == LD | MEM => a = mem.get(k as usize).copied().unwrap_or(0),
                c if c == LDX | MEM => x = mem.get(k as usize).copied().unwrap_or(0),
                c if c == ST => {
                    if let Some(m) = mem.get_mut(k as usize) {
                        *m = a;
                    }
                }
                c if c == STX => {
                    if let Some(m) = mem.get_mut(k as usize) {
                        *m = x;
                    }
                }
                c if c == MISC | TAX => x = a,
                c if c == MISC | TXA => a = x,
                c if c & 0x07 == ALU => match c & 0xf0 {
                    ADD => a = a.wrapping_add(src),
                    SUB => a = a.wrapping_sub(src),
                    MUL => a = a.wrapping_mul(src),
                    DIV => {
                        // Linux ends a program dividing by a zero X with result 0.
                        if src == 0 {
                            return 0;
                        }
                        a /= src;
                    }
                    OR => a |= src,
                    AND => a &= src,
                    XOR => a ^= src,
                    LSH => a = a.wrapping_shl(src),
                    RSH => a = a.wrapping_shr(src),
                    NEG => a = a.wrapping_neg(),
                    _ => return 0,
                },
                c if c == JMP | JA => pc += k as usize,
                c if c & 0x07 == JMP => {
                    let taken = match c & 0xf0 {
                        JEQ => a == src,
                        JGT => a > src,
                        JGE => a >= src,
                        JSET => a & src != 0,
                        _ => return 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                c if c == RET | K => return k,
                c if c == RET | RET_A => return a,
                _ => return 0,
            }
        }
        0
    }
}

fn check(p: &[Insn]) -> Result<(), BpfError> {
    let len = p.len();
    if len == 0 || len > MAX_INSNS {
        return Err(BpfError::Length(len));
    }
    for (pc, i) in p.iter().enumerate() {
        let code = i.code;
        let k = i.k;
        match code {
            c if c == LD | W | ABS => {
                if k >= DATA_LEN || k % 4 != 0 {
                    return Err(BpfError::Offset(pc, k));
                }
            }
            // LD|W|LEN and LDX|W|LEN are the data's length: the checked program loads 64.
            c if c == LD | W | LEN || c == LDX | W | LEN => {}
            c if c == LD | IMM || c == LDX | IMM || c == MISC | TAX || c == MISC | TXA => {}
            c if c == LD | MEM || c == LDX | MEM || c == ST || c == STX => {
                if k >= MEM_WORDS {
                    return Err(BpfError::Memory(pc, k));
                }
            }
            c if c & 0x07 == ALU => {
                let op = c & 0xf0;
                let ok_op = matches!(op, ADD | SUB | MUL | DIV | OR | AND | XOR | LSH | RSH)
                    && c & !(0xf0 | X | 0x07) == 0
                    || c == ALU | NEG;
                if !ok_op {
                    return Err(BpfError::Opcode(pc, code));
                }
                if c & X == 0 {
                    if op == DIV && k == 0 {
                        return Err(BpfError::DivisionByZero(pc));
                    }
                    if (op == LSH || op == RSH) && k >= 32 {
                        return Err(BpfError::Shift(pc, k));
                    }
                }
            }
            c if c == JMP | JA => {
                if k as usize >= len - pc - 1 {
                    return Err(BpfError::Jump(pc));
                }
            }
            c if c & 0x07 == JMP => {
                if !matches!(c & 0xf0, JEQ | JGT | JGE | JSET) || c & !(0xf0 | X | 0x07) != 0 {
                    return Err(BpfError::Opcode(pc, code));
                }
                if pc + usize::from(i.jt) + 1 >= len || pc + usize::from(i.jf) + 1 >= len {
                    return Err(BpfError::Jump(pc));
                }
            }
            c if c == RET | K || c == RET | RET_A => {}
            _ => return Err(BpfError::Opcode(pc, code)),
        }
    }
    if !matches!(p[len - 1].code, c if c == RET | K || c == RET | RET_A) {
        return Err(BpfError::NoReturn);
    }
    check_memory(p)
}

/// Refuses a program that may read a scratch word no path has written (which Linux refuses
/// rather than leaking kernel stack).
fn check_memory(p: &[Insn]) -> Result<(), BpfError> {
    // valid[pc]: the words written on every path reaching pc.
    let mut valid = vec![u16::MAX; p.len()];
    valid[0] = 0;
    for (pc, i) in p.iter().enumerate() {
        let mut v = valid[pc];
        match i.code {
            c if c == ST || c == STX => v |= 1 << i.k,
            c if (c == LD | MEM || c == LDX | MEM) && v & (1 << i.k) == 0 => {
                return Err(BpfError::Memory(pc, i.k));
            }
            _ => {}
        }
        let mut flow = |t: usize| {
            if let Some(m) = valid.get_mut(t) {
                *m &= v;
            }
        };
        match i.code {
            c if c == JMP | JA => flow(pc + 1 + i.k as usize),
            c if c & 0x07 == JMP => {
                flow(pc + 1 + usize::from(i.jt));
                flow(pc + 1 + usize::from(i.jf));
            }
            c if c & 0x07 == RET => {}
            _ => flow(pc + 1),
        }
    }
    Ok(())
}

/// Turns the length loads into immediates, so that the interpreter never sees them.
fn lower(mut insns: Vec<Insn>) -> Vec<Insn> {
    for i in &mut insns {
        if i.code == LD | W | LEN {
            *i = Insn::stmt(LD | IMM, DATA_LEN);
        } else if i.code == LDX | W | LEN {
            *i = Insn::stmt(LDX | IMM, DATA_LEN);
        }
    }
    insns
}

#[cfg(test)]
mod tests {
    use super::op::*;
    use super::*;

    fn data(nr: u32, arg0: u64) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&nr.to_le_bytes());
        d[16..24].copy_from_slice(&arg0.to_le_bytes());
        d
    }

    fn prog(insns: &[Insn]) -> Result<Program, BpfError> {
        Program::new(insns.to_vec())
    }

    #[test]
    fn runs_a_simple_filter() {
        let p = prog(&[
            Insn::stmt(LD_ABS, 0),
            Insn::jump(JEQ_K, 39, 0, 1),
            Insn::stmt(RET_K, 0x0005_0001),
            Insn::stmt(RET_K, 0x7fff_0000),
        ])
        .unwrap();
        assert_eq!(p.run(&data(39, 0)), 0x0005_0001);
        assert_eq!(p.run(&data(40, 0)), 0x7fff_0000);
        let bytes = p.to_bytes();
        assert_eq!(&bytes[8..16], &[0x15, 0, 0, 1, 39, 0, 0, 0]);
        let again: Vec<Insn> =
            bytes.chunks_exact(8).map(|c| Insn::from_bytes(c.try_into().unwrap())).collect();
        assert_eq!(Program::new(again).unwrap(), p);
    }

    #[test]
    fn arithmetic_memory_and_length() {
        let p = prog(&[
            Insn::stmt(LD | W | LEN, 0),
            Insn::stmt(ST, 3),
            Insn::stmt(LDX | MEM, 3),
            Insn::stmt(LD_ABS, 16),
            Insn::stmt(ALU | ADD | X, 0),
            Insn::stmt(ALU | RSH | K, 1),
            Insn::stmt(RET | RET_A, 0),
        ])
        .unwrap();
        assert_eq!(p.run(&data(0, 100)), (100 + 64) >> 1);
    }

    #[test]
    fn division_by_a_zero_register_ends_with_zero() {
        let p = prog(&[
            Insn::stmt(LDX | IMM, 0),
            Insn::stmt(LD | IMM, 7),
            Insn::stmt(ALU | DIV | X, 0),
            Insn::stmt(RET_K, 0x7fff_0000),
        ])
        .unwrap();
        assert_eq!(p.run(&data(0, 0)), 0);
    }

    #[test]
    fn hostile_programs_are_refused() {
        let ret = Insn::stmt(RET_K, 0);
        assert_eq!(prog(&[]), Err(BpfError::Length(0)));
        assert_eq!(prog(&vec![ret; MAX_INSNS + 1]), Err(BpfError::Length(MAX_INSNS + 1)));
        assert!(prog(&vec![ret; MAX_INSNS]).is_ok());
        assert_eq!(prog(&[Insn::jump(JEQ_K, 0, 1, 0), ret]), Err(BpfError::Jump(0)));
        assert_eq!(prog(&[Insn::jump(JEQ_K, 0, 0, 200), ret]), Err(BpfError::Jump(0)));
        assert_eq!(prog(&[Insn::stmt(JA_K, u32::MAX), ret]), Err(BpfError::Jump(0)));
        assert_eq!(prog(&[Insn::stmt(JA_K, 1), ret]), Err(BpfError::Jump(0)));
        assert_eq!(prog(&[Insn::stmt(ALU | DIV | K, 0), ret]), Err(BpfError::DivisionByZero(0)));
        assert_eq!(prog(&[Insn::stmt(ALU | LSH | K, 32), ret]), Err(BpfError::Shift(0, 32)));
        assert_eq!(prog(&[Insn::stmt(LD_ABS, 64), ret]), Err(BpfError::Offset(0, 64)));
        assert_eq!(prog(&[Insn::stmt(LD_ABS, 2), ret]), Err(BpfError::Offset(0, 2)));
        assert_eq!(prog(&[Insn::stmt(LD_MEM, 0), ret]), Err(BpfError::Memory(0, 0)));
        assert_eq!(prog(&[Insn::stmt(ST_MEM, 16), ret]), Err(BpfError::Memory(0, 16)));
        assert_eq!(prog(&[Insn::stmt(LD_IMM, 0)]), Err(BpfError::NoReturn));
        // Packet loads (LD|H|ABS, LD|B|IND) and MOD are not for seccomp.
        assert_eq!(prog(&[Insn::stmt(0x28, 0), ret]), Err(BpfError::Opcode(0, 0x28)));
        assert_eq!(prog(&[Insn::stmt(0x50, 0), ret]), Err(BpfError::Opcode(0, 0x50)));
        assert_eq!(prog(&[Insn::stmt(0x94, 3), ret]), Err(BpfError::Opcode(0, 0x94)));
        assert_eq!(prog(&[Insn::stmt(0xffff, 3), ret]), Err(BpfError::Opcode(0, 0xffff)));
        // A word stored on one branch only may not be read after the branches meet.
        let one_branch =
            [Insn::jump(JEQ_K, 0, 0, 1), Insn::stmt(ST_MEM, 1), Insn::stmt(LD_MEM, 1), ret];
        assert_eq!(prog(&one_branch), Err(BpfError::Memory(2, 1)));
    }

    #[test]
    fn random_programs_never_panic() {
        // A small xorshift keeps the test deterministic without a dependency.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..20_000 {
            let n = (next() % 12 + 1) as usize;
            let insns: Vec<Insn> = (0..n)
                .map(|_| {
                    let r = next();
                    Insn {
                        code: (r & 0xff) as u16,
                        jt: (r >> 8) as u8 % 4,
                        jf: (r >> 16) as u8 % 4,
                        k: (r >> 32) as u32 % 80,
                    }
                })
                .collect();
            if let Ok(p) = prog(&insns) {
                let _ = p.run(&data(next() as u32, next()));
            }
        }
    }
}
