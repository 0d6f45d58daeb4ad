//! Writing initramfs archives: cpio in the "newc" format the kernel unpacks. Archives may be
//! concatenated; the kernel unpacks each in turn.
//!
//! Kept here rather than taken from crates.io: it is about 100 lines and writes only what the
//! kernel's initramfs unpacker reads (newc headers, directories, regular files, character
//! devices, the trailer), with no dependency. The crates.io cpio crates are either
//! read-oriented (`cpio-archive` reads newc but builds only the odc format) or general archive
//! libraries whose API is larger than this whole writer; none would remove code here.

use std::collections::BTreeSet;
use std::io::Write;

/// An archive being built in memory; parent directories are added as needed.
#[derive(Default)]
pub struct Cpio {
    data: Vec<u8>,
    dirs: BTreeSet<String>,
    ino: u32,
}

const DIR: u32 = 0o040_000;
const FILE: u32 = 0o100_000;
const CHAR: u32 = 0o020_000;

impl Cpio {
    pub fn new() -> Cpio {
        Cpio::default()
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), body: &[u8]) {
        self.ino += 1;
        let name = name.trim_start_matches('/');
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            body.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        let mut head = String::from("070701");
        for f in fields {
            head.push_str(&format!("{f:08x}"));
        }
        self.data.extend_from_slice(head.as_bytes());
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
        self.data.extend_from_slice(body);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
    }

    fn parents(&mut self, path: &str) {
        let path = path.trim_start_matches('/');
        let mut at = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(p);
            if self.dirs.insert(at.clone()) {
                let name = at.clone();
                self.entry(&name, DIR | 0o755, (0, 0), &[]);
            }
        }
    }

    pub fn dir(&mut self, path: &str) {
        self.parents(&format!("{}/x", path.trim_end_matches('/')));
    }

    pub fn file(&mut self, path: &str, mode: u32, body: &[u8]) {
        self.parents(path);
        self.entry(path, FILE | (mode & 0o7777), (0, 0), body);
    }

    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        self.parents(path);
        self.entry(path, CHAR | 0o600, (major, minor), &[]);
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        // The kernel reads archives in 512-byte blocks.
        while !self.data.len().is_multiple_of(512) {
            self.data.push(0);
        }
        self.data
    }

    pub fn write_to(self, mut out: impl Write) -> std::io::Result<()> {
        out.write_all(&self.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_cpio_lists_what_was_written() {
        let mut c = Cpio::new();
        c.file("/bin/hello", 0o755, b"#!/bin/sh\necho hi\n");
        c.char_device("/dev/console", 5, 1);
        let bytes = c.finish();
        assert_eq!(&bytes[..6], b"070701");
        let mut child = std::process::Command::new("busybox")
            .args(["cpio", "-t"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        let names: Vec<String> =
            String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
        assert_eq!(names, ["bin", "bin/hello", "dev", "dev/console"]);
    }
}
