//! The project's own guest: its kernel (`ringfence image kernel`) and the guest agent as PID 1,
//! booted by the VMM in the nested-SVM lane, driven over vsock by `ringfence vm run -- CMD`
//! and `ringfence vm agent` (Refresh and a new MAC address as a snapshot's clone would get them
//! included). Prints its timings.

use std::path::Path;
use std::process::Command;

#[path = "common/guest_lane.rs"]
mod guest_lane;

use guest_lane::{CMDLINE, lane};

fn vm_run(dir: &Path, command: &[&str]) -> (Option<i32>, String, String) {
    vm_run_with(dir, CMDLINE, command)
}

/// `vm run -- command` with this kernel command line.
fn vm_run_with(dir: &Path, cmdline: &str, command: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec![
        "--",
        "-v",
        "vm",
        "run",
        "--kernel",
        "/guest/bzImage",
        "--initrd",
        "/guest/initrd",
        "--disk",
        "/guest/rootfs.img",
        "--vcpus",
        "2",
        "--mem",
        "256",
        "--cmdline",
        cmdline,
        "--",
    ];
    args.extend_from_slice(command);
    lane(dir, &[], &args)
}

/// The agent's "answered N ms after the VMM started (guest uptime M ms ...)" line.
fn boot_line(stdout: &str) -> String {
    stdout
        .lines()
        .find(|l| l.contains("answered"))
        .map(|l| l[l.find("guest agent").unwrap_or(0)..].to_owned())
        .unwrap_or_default()
}

#[test]
fn the_project_kernel_boots_to_the_agent_and_runs_a_command_from_the_rootfs_disk() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (status, stdout, stderr) = vm_run(
        dir.path(),
        &["busybox", "sh", "-c", "echo hello; uname -r; cat /proc/cpuinfo | grep -c processor"],
    );
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    // The command's output reaches stdout; the agent's and the VMM's logs go elsewhere.
    let out: Vec<&str> =
        stdout.lines().filter(|l| !l.contains("INFO") && !l.contains("WARN")).collect();
    assert_eq!(out.len(), 3, "{stdout}");
    assert_eq!(out[0], "hello");
    assert!(out[1].starts_with("6.1.") && out[1].ends_with("-ringfence"), "{stdout}");
    assert_eq!(out[2], "2");
    // The guest went down cleanly: the agent was asked, the VMM exited 0.
    assert!(stdout.contains("the VMM exited"), "{stdout}");
    assert!(!stdout.contains("WARN"), "{stdout}");
    eprintln!(
        "microVM: {}; {} ({:.1} s in all)",
        boot_line(&stdout),
        guest_lane::lane_kvm_line(&stderr),
        started.elapsed().as_secs_f64()
    );
}

/// A guest whose kernel panics (its init cannot be run) is reported with the console's last
/// lines, as a pod's event would carry them, and the run fails: nothing waits for an agent that
/// will never answer.
#[test]
fn a_guest_kernel_panic_is_reported_with_its_console() {
    let dir = tempfile::tempdir().unwrap();
    let cmdline = format!("{CMDLINE} init=/no/such/init rdinit=/no/such/init");
    let (status, stdout, stderr) = vm_run_with(dir.path(), &cmdline, &["true"]);
    assert_ne!(status, Some(0), "{stdout}\n{stderr}");
    let said = format!("{stdout}\n{stderr}");
    assert!(said.contains("the VMM ended"), "{said}");
    assert!(said.contains("last lines of the guest console"), "{said}");
    assert!(said.contains("Kernel panic"), "{said}");
}

#[test]
fn vm_run_streams_the_output_and_exits_with_the_status_of_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = vm_run(dir.path(), &["/bin/sh", "-c", "echo hi; exit 3"]);
    assert_eq!(status, Some(3), "{stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l == "hi"), "{stdout}");
    let (status, stdout, stderr) = vm_run(dir.path(), &["/no/such/program"]);
    assert_eq!(status, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("/no/such/program") && stdout.contains("No such file"), "{stdout}");
}

#[test]
fn exits_signals_and_large_output_are_reported_exactly_while_the_guest_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
V=/tmp/agent.sock
A="/lane/ringfence vm agent --vsock $V"
/lane/ringfence-vmm --kernel /guest/bzImage --initrd /guest/initrd --disk /guest/rootfs.img --vcpus 2 --mem 256 \
  --vsock 3,$V --serial /tmp/console.log --net rf0,02:00:00:00:00:02 \
  --cmdline "{CMDLINE} ringfence.ip=172.31.0.2/24 ringfence.gw=172.31.0.1" &
vmm=$!
# Should anything hang, the lane's console shows the guest's (the output is not held open).
( sleep 200; {{ echo "WATCHDOG: still running after 200 s"; tail -30 /tmp/console.log; }} >/dev/console; kill -9 $vmm ) >/dev/null 2>&1 &
(while ! ip link set rf0 up 2>/dev/null; do sleep 0.05; done; ip addr add 172.31.0.1/24 dev rf0) &
echo "HEALTH1 $($A health)"
$A create
$A exec -- sh -c 'echo out; echo err >&2; exit 42'; echo "STATUS $?"
$A exec -- sh -c 'kill -SEGV $$'; echo "STATUS $?"
echo "BIG $($A exec -- sh -c 'head -c 10485760 /dev/zero | tr "\0" x' | sha256sum)"
$A exec -- ping -c 1 -W 5 172.31.0.1 >/dev/null; echo "PING $?"
echo "HEALTH2 $($A health)"
echo "STATS $($A stats --container main)"
# As a clone restored from a snapshot: who it is now, then a MAC address of its own.
echo "REFRESH $($A refresh --generation 7 --hostname clone-7)"
echo "HOSTNAME $($A exec -- cat /proc/sys/kernel/hostname)"
$A interface --address 172.31.0.2/24 --gateway 172.31.0.1 --mac 02:00:00:00:00:99; echo "IFACE $?"
echo "MAC $($A exec -- cat /sys/class/net/eth0/address)"
$A exec -- ping -c 1 -W 5 172.31.0.1 >/dev/null; echo "REPING $?"
echo "HEALTH3 $($A health)"
$A shutdown
wait $vmm; echo "VMM $?"
"#
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let script = script.display().to_string();
    let (status, stdout, stderr) = lane(dir.path(), &["--script", &script], &[]);
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    let line = |p: &str| -> Vec<String> {
        stdout.lines().filter(|l| l.starts_with(p)).map(str::to_owned).collect()
    };
    assert_eq!(line("STATUS"), ["STATUS 42", "STATUS 139"], "{stdout}");
    assert!(stdout.contains("out\nerr\n") || stdout.contains("err\nout\n"), "{stdout}");
    assert!(stdout.contains("the command was killed by signal 11"), "{stdout}");
    // 10 MiB of 'x', byte-exact.
    let mut expected = Command::new("sh")
        .args(["-c", "head -c 10485760 /dev/zero | tr '\\0' x | sha256sum"])
        .output()
        .unwrap()
        .stdout;
    expected.retain(|&b| b != b'\n');
    assert_eq!(line("BIG"), [format!("BIG {}", String::from_utf8_lossy(&expected))], "{stdout}");
    // The address from the command line: the guest reaches the outer VM's end of the tap.
    assert_eq!(line("PING"), ["PING 0"], "{stdout}");
    // One boot throughout: the uptime only grew; the container is still there; then a clean end.
    let uptime = |l: &str| -> u64 {
        l.split_whitespace().skip_while(|w| *w != "uptime_ms").nth(1).unwrap().parse().unwrap()
    };
    let (h1, h2) = (&line("HEALTH1")[0], &line("HEALTH2")[0]);
    assert!(uptime(h2) > uptime(h1), "{h1} / {h2}");
    assert!(h2.contains("containers 1"), "{h2}");
    let stats = &line("STATS")[0];
    assert!(!stats.contains("cpu_usage_usec 0 "), "{stats}");
    // Refresh: entropy added and the CRNG reseeded (or it fails), the host name and the
    // generation taken; then the new MAC address, with the route back and the network working.
    assert!(h2.ends_with("generation 0"), "{h2}");
    let refresh = &line("REFRESH")[0];
    assert!(refresh.starts_with("REFRESH generation 7 boot_id "), "{stdout}\n{stderr}");
    assert_eq!(refresh.split_whitespace().last().map(str::len), Some(36), "{refresh}");
    assert_eq!(line("HOSTNAME"), ["HOSTNAME clone-7"], "{stdout}");
    assert_eq!(line("IFACE"), ["IFACE 0"], "{stdout}\n{stderr}");
    assert_eq!(line("MAC"), ["MAC 02:00:00:00:00:99"], "{stdout}");
    assert_eq!(line("REPING"), ["REPING 0"], "{stdout}");
    let h3 = &line("HEALTH3")[0];
    assert!(h3.ends_with("generation 7") && uptime(h3) > uptime(h2), "{h3}");
    assert_eq!(line("VMM"), ["VMM 0"], "{stdout}");
    eprintln!(
        "microVM agent session: {h1}; {} ({:.1} s in all)",
        guest_lane::lane_kvm_line(&stderr),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn vm_run_without_a_command_gives_a_shell_on_the_serial_console() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("console.sh");
    // A human's keys, typed once the prompt shows: stdin is a FIFO the script writes to.
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
mkfifo /tmp/in
/lane/ringfence vm run --kernel /guest/bzImage --initrd /guest/initrd --disk /guest/rootfs.img \
  --vcpus 2 --mem 256 --cmdline "{CMDLINE}" </tmp/in >/tmp/console.out 2>&1 &
vm=$!
( sleep 150; {{ echo "WATCHDOG: still running after 150 s"; tail -30 /tmp/console.out; }} >/dev/console; kill -9 $vm ) >/dev/null 2>&1 &
exec 3>/tmp/in
i=0
while ! grep -q '/ # ' /tmp/console.out && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
echo 'echo console-$((6*7)) on $(uname -r); exit 5' >&3
wait $vm; echo "VMRUN $?"
cat /tmp/console.out
"#
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let script = script.display().to_string();
    let (status, stdout, stderr) = lane(dir.path(), &["--script", &script], &[]);
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l == "VMRUN 0"), "{stdout}");
    // What the shell printed (not the echo of the typed line, which has `$((6*7))`).
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("console-42 on 6.1.") && l.trim_end().ends_with("-ringfence")),
        "{stdout}"
    );
    assert!(stdout.contains("the console shell ended (exit code 5); shutting down"), "{stdout}");
    eprintln!(
        "microVM console: {} ({:.1} s in all)",
        guest_lane::lane_kvm_line(&stderr),
        started.elapsed().as_secs_f64()
    );
}

/// The guest boots with `ringfence.share_later=1` (as a snapshot's template would), so the
/// directory is mounted by Refresh, which also renames the guest.
#[test]
fn a_directory_the_host_shares_is_a_container_image_and_its_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
S=/tmp/share
mkdir -p $S/img/bin $S/img/etc $S/vol $S/ro
cp /bin/busybox $S/img/bin/busybox
for a in sh cat hostname echo ls; do ln -s busybox $S/img/bin/$a; done
echo "setting=1" > $S/ro/setting
/lane/virtiofsd --socket-path=/tmp/fs.sock -o source=$S -o sandbox=chroot -o announce_submounts -o log_level=warn &
while [ ! -S /tmp/fs.sock ]; do sleep 0.05; done
V=/tmp/agent.sock
A="/lane/ringfence vm agent --timeout 120 --vsock $V"
/lane/ringfence-vmm --kernel /guest/bzImage --initrd /guest/initrd --vcpus 2 --mem 256 \
  --vsock 3,$V --serial /tmp/console.log --fs pod,/tmp/fs.sock \
  --cmdline "{CMDLINE} ringfence.share=pod ringfence.share_later=1 ringfence.hostname=web-0" &
vmm=$!
( sleep 150; {{ echo "WATCHDOG: still running after 150 s"; tail -30 /tmp/console.log; }} >/dev/console; kill -9 $vmm ) >/dev/null 2>&1 &
# ringfence.share_later=1: nothing is mounted until Refresh names the tag (idempotent after).
$A create --id early --image-dir /run/ringfence/shared/img 2>/dev/null; echo "EARLY $?"
echo "REFRESH $($A refresh --generation 41 --hostname web-1 --share-tag pod)"
echo "AGAIN $($A refresh --generation 42 --share-tag pod)"
OTHER=$($A refresh --generation 43 --share-tag other 2>&1); echo "OTHER $? $OTHER"
echo "HEALTH $($A health)"
$A create --id c1 --image-dir /run/ringfence/shared/img \
  --mount /run/ringfence/shared/vol:/data --mount /run/ringfence/shared/ro:/config:ro
echo "CREATE $?"
$A exec --container c1 -- sh -c 'echo "HOST $(hostname)"; echo "CONFIG $(cat /config/setting)"; echo from-guest > /data/out; echo scribble > /bin/new && echo "LAYER $(cat /bin/new)"; (echo x > /config/x) 2>/dev/null; echo "READONLY $?"'
$A create --id bad --image-dir /etc; echo "OUTSIDE $?"
$A shutdown
wait $vmm; echo "VMM $?"
echo "VOLUME $(cat $S/vol/out)"
[ -e $S/img/bin/new ] && echo "IMAGE written" || echo "IMAGE untouched"
[ -e $S/ro/x ] && echo "RO written" || echo "RO untouched"
"#
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let script = script.display().to_string();
    let extra = ["--script", &script, "--file", "/usr/lib/qemu/virtiofsd:/lane/virtiofsd"];
    let (status, stdout, stderr) = lane(dir.path(), &extra, &[]);
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    for want in [
        "EARLY 1",
        "CREATE 0",
        "HOST web-1",
        "CONFIG setting=1",
        "LAYER scribble",
        "OUTSIDE 1",
        "VMM 0",
        "VOLUME from-guest",
        "IMAGE untouched",
        "RO untouched",
    ] {
        assert!(stdout.lines().any(|l| l == want), "{want:?} missing:\n{stdout}\n{stderr}");
    }
    assert!(stdout.lines().any(|l| l.starts_with("READONLY ") && l != "READONLY 0"), "{stdout}");
    for want in ["REFRESH generation 41 boot_id ", "AGAIN generation 42 boot_id "] {
        assert!(stdout.lines().any(|l| l.starts_with(want)), "{want:?} missing:\n{stdout}");
    }
    // Another tag is refused while one is mounted; the generation stays the last good one.
    assert!(
        stdout.lines().any(|l| l.starts_with("OTHER 1 ") && l.contains("\"pod\" mounted already")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("HEALTH ") && l.ends_with(" generation 42")),
        "{stdout}"
    );
    eprintln!(
        "microVM shared directory: {} ({:.1} s in all)",
        guest_lane::lane_kvm_line(&stderr),
        started.elapsed().as_secs_f64()
    );
}
