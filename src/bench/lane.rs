//! `ringfence bench lane`: inside one outer VM of the nested-SVM lane (or directly on a host
//! with hardware KVM), this VMM and QEMU's microvm machine boot the same Linux kernel (the
//! project's guest kernel) and initramfs, turn about: time from process start to the guest's
//! init (seen on its console, polled every 50 ms) and the VMM's peak RSS (VmHWM, guest memory
//! it touched included, for both alike), medians of N boots each.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::lane;
use images::cpio::Cpio;

pub struct Row {
    pub name: String,
    pub init_s: f64,
    pub exit_s: f64,
    pub rss_mib: f64,
    pub runs: usize,
}

/// The guest's command line; each VMM adds the reset it has: ours an i8042 (`reboot=k`),
/// QEMU's microvm none, so there the kernel ends with a triple fault (`reboot=t`).
const CMDLINE: &str = "console=ttyS0 panic=1 8250.nr_uarts=1 io_delay=none";
const QEMU: &str = "/usr/bin/qemu-system-x86_64";
/// The firmware QEMU's microvm machine loads (qboot, under either name) and the option ROM
/// that boots a `-kernel` with it.
const MICROVM_FIRMWARE: [&str; 4] = [
    "/usr/share/qemu/qboot.rom",
    "/usr/share/qemu/bios-microvm.bin",
    "/usr/share/qemu/linuxboot_dma.bin",
    "/usr/share/qemu/linuxboot.bin",
];

/// An initramfs whose init says so and reboots.
fn guest_initramfs() -> anyhow::Result<Vec<u8>> {
    let mut c = Cpio::new();
    c.file("bin/busybox", 0o755, &std::fs::read("/bin/busybox").context("busybox-static")?);
    c.char_device("dev/console", 5, 1);
    c.dir("proc");
    c.file(
        "init",
        0o755,
        b"#!/bin/busybox sh\n/bin/busybox echo GUEST-INIT\n/bin/busybox reboot -f\n",
    );
    Ok(c.finish())
}

/// The script the outer VM runs: each VMM in turn, `runs` times, polling its console for the
/// guest's init and its VmHWM until it exits (every 50 ms: the outer VM has one CPU, which
/// the polling takes from the guest); a boot still running after 60 s is killed and reported
/// with its console.
fn script(runs: usize) -> String {
    let ours = format!(
        "/lane/ringfence-vmm --kernel /guest/vmlinuz --initrd /guest/initrd --mem 256 --cmdline '{CMDLINE} reboot=k'"
    );
    // Without ACPI, as the kernel is built: QEMU then describes the machine with an MP table.
    let qemu = format!(
        "{QEMU} -M microvm,acpi=off -enable-kvm -cpu host -m 256 -smp 1 -nodefaults -no-user-config \
         -nographic -serial stdio -no-reboot -kernel /guest/vmlinuz -initrd /guest/initrd \
         -append '{CMDLINE} reboot=t'"
    );
    format!(
        r#"#!/bin/sh
up() {{ cut -d' ' -f1 /proc/uptime; }}
measure() {{
    name=$1; shift
    start=$(up)
    "$@" >/tmp/console 2>&1 &
    pid=$!
    hwm=0; init=""; polls=0
    while kill -0 $pid 2>/dev/null; do
        polls=$((polls + 1))
        if [ $polls -gt 1200 ]; then echo "$name: still running after 60 s"; kill -9 $pid; fi
        h=$(grep VmHWM /proc/$pid/status 2>/dev/null | tr -s ' ' | cut -d' ' -f2)
        [ -n "$h" ] && hwm=$h
        if [ -z "$init" ] && grep -q GUEST-INIT /tmp/console; then init=$(up); fi
        sleep 0.05
    done
    wait $pid
    rc=$?
    [ -z "$init" ] && grep -q GUEST-INIT /tmp/console && init=$(up)
    echo "RESULT $name $start ${{init:-none}} $(up) $hwm $rc"
    [ -z "$init" ] && tail -n 20 /tmp/console
}}
i=0
while [ $i -lt {runs} ]; do
    measure ringfence-vmm {ours}
    measure qemu-microvm {qemu}
    i=$((i + 1))
done
"#
    )
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(runs: usize, transport: lane::Transport) -> anyhow::Result<Vec<Row>> {
    let cache = images::guest::cache_dir();
    std::fs::create_dir_all(&cache)?;
    let kernel = images::guest::kernel::build(&cache, &images::guest::LogProgress)
        .context("building the guest kernel")?;
    let dir = tempfile::tempdir()?;
    let initrd = dir.path().join("guest.cpio");
    std::fs::write(&initrd, guest_initramfs()?)?;
    let mut files = vec![
        (kernel, "/guest/vmlinuz".to_owned()),
        (initrd, "/guest/initrd".to_owned()),
        (QEMU.into(), QEMU.to_owned()),
    ];
    files.extend(MICROVM_FIRMWARE.iter().map(|f| (f.into(), f.to_string())));
    files.retain(|(host, _)| host.exists() || host.as_os_str() == QEMU);
    let out = lane::execute(&lane::Run {
        ringfence: None,
        vmm: lane::default_vmm()?,
        args: Vec::new(),
        files,
        sums: Vec::new(),
        script: Some(script(runs)),
        timeout: Duration::from_secs(120 + 60 * runs as u64),
        transport,
        forwards: Vec::new(),
        host_ports: Vec::new(),
    })?;
    if out.output.contains(": still running after 60 s") {
        bail!("a boot did not end:\n{}", out.output);
    }
    let mut rows: Vec<Row> = Vec::new();
    for name in ["ringfence-vmm", "qemu-microvm"] {
        let (mut init, mut exit, mut rss) = (Vec::new(), Vec::new(), Vec::new());
        for line in out.output.lines().filter(|l| l.starts_with(&format!("RESULT {name} "))) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            let (Some(start), Some(end), Some(hwm)) = (num(2), num(4), num(5)) else { continue };
            let Some(at) = num(3) else {
                bail!("{name} never reached the guest's init:\n{}", out.output);
            };
            init.push(at - start);
            exit.push(end - start);
            rss.push(hwm / 1024.0);
        }
        if init.is_empty() {
            bail!("no results for {name}:\n{}", out.output);
        }
        rows.push(Row {
            name: name.into(),
            init_s: median(&mut init),
            exit_s: median(&mut exit),
            rss_mib: median(&mut rss),
            runs: init.len(),
        });
    }
    Ok(rows)
}

pub fn render(rows: &[Row]) -> String {
    let mut s = String::from(
        "Boot to init of the project's guest kernel and a busybox initramfs, both VMMs in the same \
         place (one outer VM of the nested-SVM lane, or this host) (medians; polled every 50 ms)\n\n",
    );
    s.push_str("| VMM | runs | start -> init s | start -> exit s | peak RSS MiB |\n|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {:.1} |\n",
            r.name, r.runs, r.init_s, r.exit_s, r.rss_mib
        ));
    }
    if let [a, b] = rows {
        s.push_str(&format!(
            "\nringfence-vmm vs QEMU microvm: to init {:.2}x, to exit {:.2}x, RSS {:.2}x (lower is better)\n",
            a.init_s / b.init_s,
            a.exit_s / b.exit_s,
            a.rss_mib / b.rss_mib
        ));
    }
    s
}
