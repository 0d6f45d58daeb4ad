//! Builds the vDSO image (vdso/vdso.c) that the Sentry maps into every process. A C source and
//! a linker script give a real ELF shared object (hash tables, versioned dynamic symbols) with
//! the same toolchain as the tests' C programs; see src/kernel/vdso/mod.rs for why.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("vdso.so");
    let src = dir.join("vdso");
    for f in ["vdso.c", "vdso.lds", "vdso.map"] {
        println!("cargo:rerun-if-changed=vdso/{f}");
    }
    println!("cargo:rerun-if-env-changed=CC");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-O2",
            "-fPIC",
            "-shared",
            "-nostdlib",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-stack-protector",
            "-fcf-protection=none",
            "-mno-sse",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wl,--hash-style=both",
            "-Wl,--build-id=none",
            "-Wl,--no-undefined",
            "-Wl,-soname=linux-vdso.so.1",
            "-Wl,-z,max-page-size=4096",
        ])
        .arg(format!("-Wl,-T,{}", src.join("vdso.lds").display()))
        .arg(format!("-Wl,--version-script={}", src.join("vdso.map").display()))
        .arg("-o")
        .arg(&out)
        .arg(src.join("vdso.c"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("building the vDSO with {cc} failed ({s})"),
        Err(e) => {
            panic!("building the vDSO needs a C compiler ({cc}: {e}); scripts/setup installs gcc")
        }
    }
}
