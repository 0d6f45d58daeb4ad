//! `ringfence image ...` end to end: concurrent imports into one data directory while another
//! process reads it, and pull / list / rm against Debian's docker-registry.

#[path = "../images/tests/common/mod.rs"]
mod image_common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use image_common::registry::{Pusher, Registry};
use image_common::{Entry, TestImage, busybox_layer, layer};
use images::ImageStore;

fn ringfence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringfence")).args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn concurrent_imports_while_another_process_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let data_arg = data.to_str().unwrap();
    // Four images sharing the busybox layer, each with a layer of its own; half as OCI layouts,
    // half as `docker save` tarballs.
    let mut sources = Vec::new();
    for i in 0..4 {
        let own = format!("only-in-{i}");
        let image = TestImage {
            layers: vec![busybox_layer(), layer(&[Entry::File(&own, b"x", 0o644)])],
            ..TestImage::busybox()
        };
        let src = dir.path().join(format!("src{i}"));
        fs::create_dir(&src).unwrap();
        let path = if i % 2 == 0 {
            image.write_oci_layout(&src);
            src
        } else {
            image.write_docker_archive(&src);
            image_common::tar_dir(&src, &dir.path().join(format!("src{i}.tar")))
        };
        sources.push(path);
    }
    // The reader (standing in for a running node) opens the store first and keeps reading.
    let reader = ImageStore::open(&data.join(images::DATA_SUBDIR)).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reads = s.spawn(|| {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                for info in reader.list().expect("the catalog is always readable") {
                    // Whatever is listed is complete: its root filesystem is in place.
                    let root = reader.rootfs(&info.id.to_string()).unwrap();
                    assert!(root.join("bin/busybox").is_file());
                }
                reads += 1;
            }
            reads
        });
        let children: Vec<_> = sources
            .iter()
            .enumerate()
            .map(|(i, src)| {
                Command::new(env!("CARGO_BIN_EXE_ringfence"))
                    .args([
                        "image",
                        "import",
                        "--data-dir",
                        data_arg,
                        src.to_str().unwrap(),
                        "--name",
                        &format!("app:{i}"),
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            ok(c.wait_with_output().unwrap());
        }
        done.store(true, Ordering::SeqCst);
        assert!(reads.join().unwrap() > 0);
    });
    let list = ok(ringfence(&["image", "list", "--data-dir", data_arg]));
    for i in 0..4 {
        assert!(
            list.lines().any(|l| l.starts_with("docker.io/library/app")
                && l.split_whitespace().nth(1) == Some(&i.to_string())),
            "{list}"
        );
        let root = reader.rootfs(&format!("app:{i}")).unwrap();
        assert!(root.join(format!("only-in-{i}")).is_file());
        for j in (0..4).filter(|j| *j != i) {
            assert!(!root.join(format!("only-in-{j}")).exists());
        }
    }
    assert!(fs::read_dir(data.join("images/tmp")).unwrap().next().is_none(), "no work files left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_list_and_remove() {
    let registry = Registry::start("").await;
    Pusher::new(&registry).image("demo/busybox", "v1", &TestImage::busybox()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let reference = format!("{}/demo/busybox:v1", registry.addr);
    let out = ok(ringfence(&["image", "pull", "--data-dir", &data, &reference]));
    assert!(out.starts_with(&reference), "{out}");
    let list = ok(ringfence(&["image", "list", "--data-dir", &data]));
    let row = list.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>();
    assert_eq!(&row[..2], [format!("{}/demo/busybox", registry.addr).as_str(), "v1"]);
    assert!(Path::new(&data).join("images/rootfs").read_dir().unwrap().next().is_some());

    let missing = ringfence(&[
        "image",
        "pull",
        "--data-dir",
        &data,
        &format!("{}/demo/absent:v1", registry.addr),
    ]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    ok(ringfence(&["image", "rm", "--data-dir", &data, &reference]));
    assert_eq!(
        ok(ringfence(&["image", "list", "--data-dir", &data])).lines().count(),
        1,
        "only the header"
    );
    assert!(Path::new(&data).join("images/rootfs").read_dir().unwrap().next().is_none());
}
