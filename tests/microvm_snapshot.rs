//! The project's Linux guest snapshotted with its agent ready and restored as three clones at
//! once, in the nested-SVM lane: each clone answers on its own vsock socket at once (no boot),
//! carries on the template's uptime, takes a fresh identity from Refresh (entropy, host name,
//! generation, its own virtio-fs daemon's share mounted now) and runs containers; the clones'
//! random numbers differ; what the template wrote to a disk before the snapshot (flushed by
//! it) reads back the same in each. Prints the snapshot, restore and first-answer times.

#[path = "common/guest_lane.rs"]
mod guest_lane;

use guest_lane::{CMDLINE, lane};

/// Milliseconds since the outer VM booted, from busybox's /proc/uptime.
const MS: &str = "ms() { awk '{printf \"%d\", $1 * 1000}' /proc/uptime; }";

#[test]
fn clones_of_a_snapshot_answer_at_once_with_identities_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
{MS}
S=/tmp/share
mkdir -p $S/img/bin
cp /bin/busybox $S/img/bin/busybox
for a in sh cat head od tr hostname; do ln -s busybox $S/img/bin/$a; done
for n in 0 1 2 3; do
  /lane/virtiofsd --socket-path=/tmp/fs$n.sock -o source=$S -o sandbox=chroot -o log_level=warn &
done
for n in 0 1 2 3; do while [ ! -S /tmp/fs$n.sock ]; do sleep 0.05; done; done
dd if=/dev/zero of=/tmp/scratch.img bs=1M count=1 2>/dev/null
( sleep 200; {{ echo "WATCHDOG: still running after 200 s"; for n in 0 1 2 3; do tail -20 /tmp/console$n.log; done; }} >/dev/console; kill -9 $(pidof ringfence-vmm) ) >/dev/null 2>&1 &
agent() {{ /lane/ringfence vm agent --timeout 120 --vsock /tmp/v$1.sock "$@"; }}
# The template: booted once, agent ready, the share not mounted (ringfence.share_later=1).
/lane/ringfence-vmm --api-sock /tmp/api0.sock --kernel /guest/bzImage --initrd /guest/initrd \
  --vcpus 2 --mem 256 --vsock 3,/tmp/v0.sock --serial /tmp/console0.log --entropy \
  --fs pod,/tmp/fs0.sock --net rf0,02:00:00:00:00:02 --disk /guest/rootfs.img:ro --disk /tmp/scratch.img \
  --cmdline "{CMDLINE} ringfence.share=pod ringfence.share_later=1 ringfence.hostname=template" &
vmm0=$!
h=$(/lane/ringfence vm agent --timeout 120 --vsock /tmp/v0.sock health) || exit 1
echo "TEMPLATE $h"
# A container from the root disk, and a write to the scratch disk, before the snapshot.
/lane/ringfence vm agent --vsock /tmp/v0.sock create --id t || exit 1
/lane/ringfence vm agent --vsock /tmp/v0.sock exec --container t -- sh -c 'echo written-before-the-snapshot > /dev/vdb; sync' || exit 1
t=$(ms)
/lane/ringfence vm snapshot --api-sock /tmp/api0.sock --snapshot /tmp/t.snap --mem-file /tmp/t.mem || exit 1
echo "SNAPSHOT 0 $(( $(ms) - t )) ms"
kill $vmm0; wait $vmm0
echo "MEMFILE $(du -k /tmp/t.mem | cut -f1) KiB of $(( $(stat -c %s /tmp/t.mem) / 1024 ))"
for n in 1 2 3; do
  t=$(ms)
  /lane/ringfence vm restore --snapshot /tmp/t.snap --mem-file /tmp/t.mem --resume \
    --vsock-override /tmp/v$n.sock --fs-override fs0=/tmp/fs$n.sock --net-override eth0=rf$n \
    -- --api-sock /tmp/api$n.sock --serial /tmp/console$n.log &
  eval vmm$n=$!
  A="/lane/ringfence vm agent --timeout 60 --vsock /tmp/v$n.sock"
  h=$($A health) || {{ tail -30 /tmp/console$n.log; exit 1; }}
  echo "CLONE$n $(( $(ms) - t )) ms $h"
  echo "REFRESH$n $($A refresh --generation $n --hostname clone-$n --share-tag pod)"
  $A create --id c --image-dir /run/ringfence/shared/img; echo "CREATE$n $?"
done
for n in 1 2 3; do
  A="/lane/ringfence vm agent --timeout 60 --vsock /tmp/v$n.sock"
  echo "DISK$n $($A exec --container t -- head -n 1 /dev/vdb)"
  echo "RANDOM$n $($A exec --container c -- sh -c 'head -c 16 /dev/urandom | od -An -tx1 | tr -d " \n"')"
  echo "HOST$n $($A exec --container c -- hostname)"
  echo "HEALTH$n $($A health)"
done
for n in 1 2 3; do
  /lane/ringfence vm agent --vsock /tmp/v$n.sock shutdown
done
wait $vmm1; echo "VMM1 $?"
wait $vmm2; echo "VMM2 $?"
wait $vmm3; echo "VMM3 $?"
"#
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let script = script.display().to_string();
    let extra = ["--script", &script, "--file", "/usr/lib/qemu/virtiofsd:/lane/virtiofsd"];
    let (status, stdout, stderr) = lane(dir.path(), &extra, &[]);
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    let line = |p: &str| -> String {
        stdout.lines().find(|l| l.starts_with(p)).map(str::to_owned).unwrap_or_default()
    };
    let word = |l: &str, key: &str| -> u64 {
        l.split_whitespace()
            .skip_while(|w| *w != key)
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {l:?}"))
    };
    assert!(line("SNAPSHOT").starts_with("SNAPSHOT 0 "), "{stdout}\n{stderr}");
    let template_uptime = word(&line("TEMPLATE"), "uptime_ms");
    for n in ["1", "2", "3"] {
        let clone = line(&format!("CLONE{n} "));
        // A restore, not a boot: the guest's clock carries on from the template's.
        assert!(word(&clone, "uptime_ms") >= template_uptime, "{clone}\n{stdout}\n{stderr}");
        assert!(clone.contains("generation 0"), "{clone}");
        assert!(
            line(&format!("REFRESH{n} ")).starts_with(&format!("REFRESH{n} generation {n} ")),
            "{stdout}\n{stderr}"
        );
        assert_eq!(line(&format!("CREATE{n} ")), format!("CREATE{n} 0"), "{stdout}\n{stderr}");
        assert_eq!(line(&format!("HOST{n} ")), format!("HOST{n} clone-{n}"), "{stdout}");
        assert!(line(&format!("HEALTH{n} ")).ends_with(&format!("generation {n}")), "{stdout}");
        assert_eq!(line(&format!("VMM{n} ")), format!("VMM{n} 0"), "{stdout}\n{stderr}");
        assert_eq!(
            line(&format!("DISK{n} ")),
            format!("DISK{n} written-before-the-snapshot"),
            "{stdout}\n{stderr}"
        );
    }
    let random: Vec<String> = ["1", "2", "3"]
        .iter()
        .map(|n| {
            line(&format!("RANDOM{n} ")).split_whitespace().nth(1).unwrap_or_default().to_owned()
        })
        .collect();
    assert!(random.iter().all(|r| r.len() == 32), "{stdout}");
    assert!(
        random[0] != random[1] && random[1] != random[2] && random[0] != random[2],
        "clones draw different numbers: {random:?}"
    );
    eprintln!(
        "microVM snapshot: {}; {}; restore -> agent: {}, {}, {} ms; {} ({:.1} s in all)",
        line("SNAPSHOT"),
        line("MEMFILE"),
        word(&line("CLONE1 "), "CLONE1"),
        word(&line("CLONE2 "), "CLONE2"),
        word(&line("CLONE3 "), "CLONE3"),
        guest_lane::lane_kvm_line(&stderr),
        started.elapsed().as_secs_f64()
    );
}
