//! A node offering the `microvm` runtime handler inside the nested-SVM lane, joined to a
//! cluster of the test: `ringfence dev lane-node` (see `src/lane/node.rs`), its reports of
//! what it holds read while it runs and after it stops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Cluster;

pub struct LaneNode {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    pub name: String,
    report_port: u16,
    chaos_port: u16,
    output: Arc<Mutex<String>>,
}

impl LaneNode {
    /// Starts node `name` in the lane for cluster `c` (started with `--tls-san 10.0.2.2`),
    /// with `images` (name, OCI layout tar) in its store; returns once the Node is Ready.
    pub fn start(c: &Cluster, name: &str, images: &[(&str, &Path)]) -> LaneNode {
        Self::start_with(c, name, images, &[])
    }

    /// [`LaneNode::start`] with more `ringfence dev lane-node` arguments (`--runtime
    /// containerd`).
    pub fn start_with(
        c: &Cluster,
        name: &str,
        images: &[(&str, &Path)],
        extra: &[&str],
    ) -> LaneNode {
        let (kernel, initrd) = super::guest_lane::guest_image();
        // Pods boot the ELF vmlinux beside the bzImage (PVH entry), as nodes do by default.
        let kernel = Path::new(&kernel).with_file_name("vmlinux").display().to_string();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfence"));
        cmd.args(["dev", "lane-node", "--name", name, "--kubeconfig"]).arg(&c.kubeconfig).args([
            "--guest-kernel",
            &kernel,
            "--guest-initrd",
            &initrd,
        ]);
        for (image, tar) in images {
            cmd.arg("--image").arg(format!("{image}={}", tar.display()));
        }
        cmd.args(extra);
        // A process group of its own, which Drop kills whole: the lane's QEMU outlives a
        // lane node that is killed alone (one left spinning a core for hours after a failure).
        let mut child = cmd
            .process_group(0)
            .env("RINGFENCE_LANE_ECHO", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringfence dev lane-node");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("the lane node's ports");
        let port = |key: &str| -> u16 {
            first
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {first:?}"))
        };
        let (report_port, chaos_port) = (port("report="), port("chaos="));
        let output = Arc::new(Mutex::new(String::new()));
        let streams: [Box<dyn Read + Send>; 2] =
            [Box::new(stdout), Box::new(child.stderr.take().expect("stderr"))];
        for stream in streams {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap_or_else(|e| e.into_inner()).push_str(&(line + "\n"));
                }
            });
        }
        let node = LaneNode {
            child: Some(child),
            stdin,
            name: name.to_owned(),
            report_port,
            chaos_port,
            output,
        };
        let started = Instant::now();
        let ready = super::eventually(Duration::from_secs(300), || {
            let out = c.kubectl(&["get", "node", name, "-o", "jsonpath={.status.conditions}"]);
            String::from_utf8_lossy(&out.stdout).contains(r#""status":"True","type":"Ready""#)
        });
        assert!(ready, "the lane node never became Ready:\n{}", node.output());
        eprintln!(
            "lane node {name} Ready {:.1} s after it started",
            started.elapsed().as_secs_f64()
        );
        node
    }

    /// What the lane has printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn ask(&self, port: u16) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("reach the lane node");
        s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read the lane node's answer");
        text
    }

    /// The report as the node wrote it: `name count` lines (`vmm`: jailed VMMs,
    /// `vmm-processes`: with their jails' supervisors, `virtiofsd`, `netns`, `tap`,
    /// `sandboxes`, `mounts`, `image-binds`, `image-sources`, `sandbox-pss-kib`) and
    /// `process:` lines.
    pub fn report(&self) -> String {
        self.ask(self.report_port)
    }

    pub fn leftovers(&self) -> Vec<(String, u64)> {
        parse_report(&self.report())
    }

    pub fn leftover(&self, what: &str) -> u64 {
        let report = self.report();
        parse_report(&report)
            .into_iter()
            .find(|(k, _)| k == what)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {what} in the lane node's report:\n{report}"))
    }

    /// SIGKILLs one of the node's VMMs; returns what the node said.
    pub fn kill_a_vmm(&self) -> String {
        self.ask(self.chaos_port)
    }

    /// Stops the node (SIGTERM: it stops its pods) and the lane; returns what the node left,
    /// counted after it stopped, and everything the lane printed.
    pub fn stop(mut self) -> (Vec<(String, u64)>, String) {
        drop(self.stdin.take());
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(180);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait for the lane node") {
                break Some(st);
            }
            if Instant::now() > deadline {
                kill_group(&mut child);
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        std::thread::sleep(Duration::from_millis(300));
        let out = self.output();
        assert!(status.is_some_and(|s| s.success()), "the lane node did not end cleanly:\n{out}");
        let after: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("AFTER-STOP ")).collect();
        (parse_report(&after.join("\n")), out)
    }
}

/// The `name count` lines of a report.
fn parse_report(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (name, count) = l.split_once(' ')?;
            Some((name.to_owned(), count.trim().parse().ok()?))
        })
        .collect()
}

impl Drop for LaneNode {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(200));
            }
            kill_group(&mut c);
        }
    }
}

/// Kills the lane node's process group (its QEMU included) and reaps the node.
fn kill_group(child: &mut Child) {
    // SAFETY: kill has no memory effects; the group is the one the child leads (its pid stays
    // reserved while the child is unreaped or any member of its group lives).
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}
