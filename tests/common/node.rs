//! What tests of `ringfence up` need besides `common`: images built from Debian's busybox and
//! imported into the node, and plain HTTP requests to pods and Services. Included by those
//! tests next to `images/tests/common` (`image_common`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// An image holding busybox (every applet) and `files` (path, contents), as an OCI layout in
/// `dir/layout`; returns the layout's directory.
pub fn busybox_image_layout(dir: &Path, files: &[(&str, &str)]) -> std::path::PathBuf {
    busybox_image_layout_with(dir, files, &[])
}

/// [`busybox_image_layout`] that also holds the host's `programs` in `/bin`, with their
/// shared libraries.
pub fn busybox_image_layout_with(
    dir: &Path,
    files: &[(&str, &str)],
    programs: &[&Path],
) -> std::path::PathBuf {
    let root = crate::common::sentry::busybox_rootfs(&dir.join("root"));
    for program in programs {
        crate::common::sentry::with_libraries(&root, program);
    }
    for (path, text) in files {
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write image file");
    }
    image_layout_of(dir, &root)
}

/// An image whose one layer is the directory `root`, as an OCI layout in `dir/layout`;
/// returns the layout's directory.
pub fn image_layout_of(dir: &Path, root: &Path) -> std::path::PathBuf {
    let tar = dir.join("layer.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar).expect("create layer"));
    b.follow_symlinks(false);
    b.append_dir_all(".", root).expect("tar the root");
    b.into_inner().expect("finish the layer");
    let layer = std::fs::read(&tar).expect("read layer");
    let image = crate::image_common::TestImage {
        layers: vec![layer],
        gzip: false,
        arch: "amd64",
        cmd: vec!["/bin/sh"],
        user: "0",
    };
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).expect("mkdir layout");
    image.write_oci_layout(&layout);
    layout
}

/// The same image as one tar file of the layout (what `ringfence image import` takes too).
pub fn busybox_image_tar(dir: &Path, files: &[(&str, &str)]) -> std::path::PathBuf {
    let layout = busybox_image_layout(dir, files);
    let out = dir.join("image.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&out).expect("create the image tar"));
    b.append_dir_all(".", &layout).expect("tar the layout");
    b.into_inner().expect("finish the image tar");
    out
}

/// [`busybox_image_layout`] imported into the node whose state is in `data` as `name`.
pub fn import_busybox_image(data: &Path, dir: &Path, name: &str, files: &[(&str, &str)]) {
    import_layout(data, &busybox_image_layout(dir, files), name);
}

/// The OCI layout in `layout` imported into the node whose state is in `data` as `name`.
pub fn import_layout(data: &Path, layout: &Path, name: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["image", "import", "--data-dir"])
        .arg(data)
        .arg(layout)
        .args(["--name", name])
        .output()
        .expect("run ringfence image import");
    assert!(out.status.success(), "import {name}: {}", String::from_utf8_lossy(&out.stderr));
}

/// One `GET path` over a fresh connection: (status, body), or why it failed.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).map_err(|e| format!("read from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or(format!("no HTTP reply: {text:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(format!("bad status line: {head:?}"))?;
    Ok((code, body.to_owned()))
}
