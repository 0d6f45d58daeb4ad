//! The guest agent binary for the initramfs: statically linked, since it is the only
//! program there. Built from the workspace (a separate target directory, static glibc) or
//! given ready-made.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{BuildProgress, GuestError};

pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Where the agent comes from.
#[derive(Debug, Clone)]
pub enum AgentSource {
    /// A static binary already built.
    Binary(PathBuf),
    /// The Ringfence workspace at this path: `cargo build` it (incremental, cached).
    Workspace(PathBuf),
}

/// True for an ELF executable without a program interpreter (statically linked).
pub fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| bytes.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at =
        |o: usize| bytes.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at =
        |o: usize| bytes.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    if !bytes.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).all(|i| {
        let at = (phoff as usize).saturating_add(i * phentsize);
        // PT_INTERP names the dynamic loader.
        u32_at(at).is_some_and(|t| t != 3)
    })
}

/// The agent's own cargo target directory, under the project's [`crate::cache_root`].
fn target_dir() -> PathBuf {
    crate::cache_root().join("target-agent")
}

/// The static agent binary, building it first from a workspace.
pub fn locate(source: &AgentSource, progress: &dyn BuildProgress) -> Result<PathBuf, GuestError> {
    let path = match source {
        AgentSource::Binary(p) => p.clone(),
        AgentSource::Workspace(ws) => build(ws, progress)?,
    };
    let bytes =
        std::fs::read(&path).map_err(GuestError::io(format!("reading {}", path.display())))?;
    if !is_static_elf(&bytes) {
        return Err(GuestError::Input(format!(
            "{} is not a statically linked x86-64 executable; the initramfs has no libraries",
            path.display()
        )));
    }
    Ok(path)
}

fn build(workspace: &Path, progress: &dyn BuildProgress) -> Result<PathBuf, GuestError> {
    let target = target_dir();
    progress.step("building the guest agent (static, optimised for size)");
    // RUSTFLAGS with --target apply to the agent and its dependencies only, not to build
    // scripts; static glibc is what crt-static links.
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--profile",
            "guest-agent",
            "--locked",
            "-p",
            "guest-agent",
            "--bin",
            "ringfence-agent",
            "--target",
            TARGET,
        ])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", "-C target-feature=+crt-static -C strip=symbols")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(GuestError::io("running cargo"))?;
    if !out.status.success() {
        return Err(GuestError::Tool(format!(
            "building the guest agent failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(target.join(TARGET).join("guest-agent/ringfence-agent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        let busybox = std::fs::read("/bin/busybox").unwrap();
        assert!(is_static_elf(&busybox), "busybox-static");
        let ls = std::fs::read("/bin/ls").unwrap();
        assert!(!is_static_elf(&ls));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        assert!(!is_static_elf(b"\x7fELF\x02\x01"));
    }
}
