//! The seccomp filter checker and interpreter against programs made of fuzzer input (what a
//! sandboxed program hands seccomp(2)): the first 64 bytes are the system call's
//! seccomp_data, the rest its instructions. Nothing may panic, and a checked program must
//! answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sentry_kvm::kernel::seccomp::bpf::{DATA_LEN, Insn, Program};

fuzz_target!(|input: &[u8]| {
    let n = DATA_LEN as usize;
    if input.len() < n {
        return;
    }
    let mut data = [0u8; 64];
    data.copy_from_slice(&input[..n]);
    let insns = input[n..]
        .chunks_exact(Insn::SIZE)
        .map(|c| Insn::from_bytes(c.try_into().expect("8-byte chunks")))
        .collect();
    if let Ok(p) = Program::new(insns) {
        let _ = p.run(&data);
    }
});
