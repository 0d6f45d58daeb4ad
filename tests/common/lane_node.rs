//! A node offering the `microvm` runtime handler, run inside the nested-SVM lane (whose KVM
//! boots Linux guests in seconds) and joined to a cluster on this host: `ringfence cri` and
//! `ringfence node` in the outer VM, reaching the API server at 10.0.2.2 (QEMU's user-mode
//! network), the API server reaching the node through a forwarded port. What the node leaves
//! behind is asked for while it runs ([`LaneNode::leftovers`]) and after it stops.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Cluster;

/// The lane's own bound on the whole node's life.
const LANE_TIMEOUT_S: u64 = 1500;

/// Inside the outer VM: the node's ports (forwarded from the host).
const STOP_PORT: u16 = 7777;
const REPORT_PORT: u16 = 7778;

pub struct LaneNode {
    child: Option<Child>,
    pub name: String,
    stop_port: u16,
    report_port: u16,
    output: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

/// A free TCP port of the host's loopback (the lane forwards it; the race with another taker
/// in between is the same as any test's).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The guest kernel and the agent's initramfs (`ringfence image kernel`, cached).
pub fn guest_image() -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(["image", "kernel"])
        .output()
        .expect("run ringfence image kernel");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("paths");
    let mut lines = text.lines().map(str::to_owned);
    (lines.next().expect("kernel"), lines.next().expect("initramfs"))
}

const SCRIPT: &str = r#"#!/bin/sh
export PATH=/lane/bin:/bin
D=/tmp/node
mkdir -p $D
cat > /lane/report.sh <<'EOF'
#!/bin/sh
# (busybox ps: PID USER COMMAND...; programs told by their path)
echo "vmm-processes $(ps | awk '$3 == "/lane/ringfence-vmm"' | wc -l)"
echo "vmm $(ps | awk '$3 == "/lane/ringfence-vmm" && ($2 == "65534" || $2 == "nobody")' | wc -l)"
echo "virtiofsd $(ps | awk '$3 == "/lane/virtiofsd"' | wc -l)"
echo "netns $(/lane/bin/ip netns list | wc -l)"
echo "tap $( (/lane/bin/ip -o link; for n in $(/lane/bin/ip netns list | cut -d' ' -f1); do /lane/bin/ip -n $n -o link; done) | grep -c tap)"
echo "sandboxes $(ls /tmp/node/cri/sandboxes 2>/dev/null | wc -l)"
echo "mounts $(grep -c /tmp/node/cri/ /proc/self/mountinfo)"
echo "image-binds $(grep '/share/containers/[^ ]*/rootfs ' /proc/self/mountinfo | wc -l)"
echo "image-sources $(grep '/share/containers/[^ ]*/rootfs ' /proc/self/mountinfo | cut -d' ' -f4 | sort -u | wc -l)"
ps | awk '$3 == "/lane/virtiofsd" || $3 == "/lane/ringfence-vmm"' | sed 's/^/process: /'
EOF
chmod +x /lane/report.sh
nc -ll -p @REPORT_PORT@ -e /lane/report.sh &
for image in /lane/images/*.tar; do
  name=$(basename $image .tar | tr '+' ':')
  /lane/ringfence image import --data-dir $D $image --name $name >/dev/null || echo "IMPORT-FAILED $name"
done
/lane/ringfence cri --socket $D/cri.sock --data-dir $D --pod-cidr 10.77.0.0/24 --bridge rf0 \
  --runtime-handlers microvm --guest-kernel /guest/bzImage --guest-initrd /guest/initrd \
  --virtiofsd /lane/virtiofsd --microvm-boot-timeout 120 > /tmp/cri.log 2>&1 &
cri=$!
/lane/ringfence node --name @NODE_NAME@ --kubeconfig /lane/kubeconfig --cri-socket $D/cri.sock \
  --address 127.0.0.1 --listen-address 0.0.0.0 --port @NODE_PORT@ --pod-cidr 10.77.0.0/24 \
  --log-dir $D/logs --root-dir $D/root > /tmp/node.log 2>&1 &
node=$!
echo NODE-STARTED
nc -l -p @STOP_PORT@ >/dev/null
echo STOPPING
kill -TERM $node $cri; wait $node $cri
/lane/report.sh | sed 's/^/AFTER-STOP /'
echo "--- cri log"; tail -40 /tmp/cri.log
echo "--- node log"; tail -40 /tmp/node.log
"#;

impl LaneNode {
    /// Starts node `name` inside the lane for cluster `c` (started with `--tls-san 10.0.2.2`),
    /// with the docker-save tars in `images` (name, file) imported into its image store.
    pub fn start(c: &Cluster, name: &str, images: &[(&str, &Path)]) -> LaneNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = std::fs::read_to_string(&c.kubeconfig)
            .expect("read kubeconfig")
            .replace("server: https://127.0.0.1:", "server: https://10.0.2.2:");
        let kc = dir.path().join("kubeconfig");
        std::fs::write(&kc, kubeconfig).expect("write kubeconfig");
        let node_port = free_port();
        let (stop_port, report_port) = (free_port(), free_port());
        let script = SCRIPT
            .replace("@NODE_PORT@", &node_port.to_string())
            .replace("@STOP_PORT@", &STOP_PORT.to_string())
            .replace("@REPORT_PORT@", &REPORT_PORT.to_string())
            .replace("@NODE_NAME@", name);
        let script_path = dir.path().join("node.sh");
        std::fs::write(&script_path, script).expect("write the node script");
        let (kernel, initrd) = guest_image();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfence"));
        cmd.args(["dev", "nested-run", "--ringfence", "--timeout"])
            .arg(LANE_TIMEOUT_S.to_string())
            .args(["--vmm", env!("CARGO_BIN_EXE_ringfence-vmm")])
            .arg("--script")
            .arg(&script_path);
        let mut files = vec![
            format!("{kernel}:/guest/bzImage"),
            format!("{initrd}:/guest/initrd"),
            "/usr/lib/qemu/virtiofsd:/lane/virtiofsd".to_owned(),
            "/usr/sbin/ip:/lane/bin/ip".to_owned(),
            "/usr/sbin/tc:/lane/bin/tc".to_owned(),
            format!("{}:/lane/kubeconfig", kc.display()),
        ];
        for (image, tar) in images {
            files.push(format!("{}:/lane/images/{}.tar", tar.display(), image.replace(':', "+")));
        }
        for f in files {
            cmd.arg("--file").arg(f);
        }
        for (h, g) in [(node_port, node_port), (stop_port, STOP_PORT), (report_port, REPORT_PORT)] {
            cmd.arg("--forward").arg(format!("{h}:{g}"));
        }
        let mut child = cmd
            .env("RINGFENCE_LANE_ECHO", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the lane");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap_or_else(|e| e.into_inner()).push_str(&(line + "\n"));
                }
            });
        }
        let node = LaneNode {
            child: Some(child),
            name: name.to_owned(),
            stop_port,
            report_port,
            output,
            _dir: dir,
        };
        let started = Instant::now();
        let ready = super::eventually(Duration::from_secs(300), || {
            let out = c.kubectl(&["get", "node", name, "-o", "jsonpath={.status.conditions}"]);
            String::from_utf8_lossy(&out.stdout).contains(r#""status":"True","type":"Ready""#)
        });
        assert!(ready, "the lane node never became Ready:\n{}", node.output());
        eprintln!(
            "lane node {name} Ready {:.1} s after the lane started",
            started.elapsed().as_secs_f64()
        );
        node
    }

    /// What the lane has printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The node's leftovers now: `vmm` (machines: jailed VMMs), `vmm-processes` (with their
    /// jails' supervisors), `virtiofsd`, `netns`, `tap`, `sandboxes`, `mounts`, `image-binds`,
    /// `image-sources` and their counts.
    pub fn leftovers(&self) -> Vec<(String, u32)> {
        parse_report(&self.report())
    }

    /// The report as the node wrote it (with its processes).
    pub fn report(&self) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.report_port)).expect("reach the report");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read the report");
        text
    }

    pub fn leftover(&self, what: &str) -> u32 {
        let all = self.leftovers();
        all.iter()
            .find(|(k, _)| k == what)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {what} in the lane's report {all:?}:\n{}", self.output()))
    }

    /// Stops the node (SIGTERM: it stops its pods) and the lane; returns what the node left,
    /// counted after it stopped, and everything the lane printed.
    pub fn stop(mut self) -> (Vec<(String, u32)>, String) {
        let _ = TcpStream::connect(("127.0.0.1", self.stop_port));
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait for the lane") {
                break Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        std::thread::sleep(Duration::from_millis(300));
        let out = self.output();
        assert!(status.is_some_and(|s| s.success()), "the lane did not end cleanly:\n{out}");
        let after: Vec<String> =
            out.lines().filter_map(|l| l.strip_prefix("AFTER-STOP ")).map(str::to_owned).collect();
        let after = parse_report(&after.join("\n"));
        (after, out)
    }
}

/// The `name count` lines of a report (its `process:` lines are for people).
fn parse_report(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|l| {
            let (name, count) = l.split_once(' ')?;
            Some((name.to_owned(), count.trim().parse().ok()?))
        })
        .collect()
}

impl Drop for LaneNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = TcpStream::connect(("127.0.0.1", self.stop_port));
            std::thread::sleep(Duration::from_secs(2));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
