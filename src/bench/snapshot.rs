//! `ringfence bench snapshot`: the project's Linux guest, booted to its agent N times, and
//! restored N times from a snapshot of it, in the same place (one outer VM of the nested-SVM
//! lane, or this host with `--transport direct`): snapshot time and size, start -> agent
//! answering for boots and for restores, and PSS per VM with all N running (clones share the
//! snapshot's pages). The snapshot is of a guest booted as the node's templates are (freed
//! pages zeroed, `init_on_free=1`), the N timed boots are plain.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::lane;

/// What restore -> agent is judged against: this fraction of cold boot -> agent.
pub const RESTORE_TARGET: f64 = 0.1;
/// What a clone's PSS is judged against: this fraction of a booted VM's.
pub const PSS_TARGET: f64 = 0.3;

pub struct Report {
    pub vms: usize,
    pub boots: Starts,
    pub restores: Starts,
    pub boot_pss_kib: u64,
    pub clone_pss_kib: u64,
    pub snapshot_ms: f64,
    pub state_kib: u64,
    pub memory_kib: u64,
    pub memory_data_kib: u64,
}

/// Milliseconds from each VMM's InstanceStart or snapshot load, one entry per VM.
pub struct Starts {
    /// To its agent answering Health.
    pub answering: Vec<f64>,
    /// To its vsock socket listening.
    pub listening: Vec<f64>,
    /// To the guest accepting a connection to the agent's port.
    pub accepting: Vec<f64>,
    /// From spawning the VMM (before its API socket existed) to its agent answering.
    pub from_spawn: Vec<f64>,
}

const CMDLINE: &str = "console=ttyS0 reboot=k panic=1 io_delay=none";

/// The outer VM's script: N boots (each timed to the agent's first answer, all left running),
/// their PSS; all stopped; a template-style guest booted and snapshotted; N restores (timed
/// the same way), their PSS.
fn script(vms: usize) -> String {
    format!(
        r#"#!/bin/sh
ms() {{ awk '{{printf "%d", $1 * 1000}}' /proc/uptime; }}
pss() {{ t=0; for p in "$@"; do k=$(awk '/^Pss:/ {{print $2}}' /proc/$p/smaps_rollup); t=$((t + ${{k:-0}})); done; echo $t; }}
agent() {{ /lane/ringfence vm agent --timeout 600 --vsock /tmp/v$1.sock health >/dev/null; }}
# Started and timed by ringfence itself: no client's start-up in the figures. Each VMM is
# started bare and driven through its API; the clock starts at InstanceStart or the snapshot
# load, as Firecracker measures. Prints the VMM's pid, then ms to its agent answering, to its
# vsock socket listening and to the guest accepting a connection to the agent's port, then ms
# from spawning the VMM to its agent answering.
timed() {{ /lane/ringfence bench start-to-agent --timeout "$@"; }}
# From the second VM on, the timer's client code is warmed on the first VM's agent.
warm() {{ [ $1 -gt 1 ] && echo "--warm-up $2"; }}
# The VMMs are not this shell's children (the timer started them): wait until they are gone.
gone() {{ for p in "$@"; do while grep -qs '^State:[[:space:]]*[^Z]' /proc/$p/status; do sleep 0.05; done; done; }}
printf '{{"action_type":"InstanceStart"}}' > /tmp/start.json
printf '{{"vcpu_count":1,"mem_size_mib":256}}' > /tmp/machine.json
printf '{{"kernel_image_path":"/guest/kernel","initrd_path":"/guest/initrd","boot_args":"{CMDLINE}"}}' > /tmp/boot.json
printf '{{}}' > /tmp/entropy.json
pids=""
for n in $(seq 1 {vms}); do
  printf '{{"guest_cid":3,"uds_path":"/tmp/v%s.sock"}}' $n > /tmp/vsock$n.json
  r=$(timed 600 --vsock /tmp/v$n.sock $(warm $n /tmp/v1.sock) --api-sock /tmp/api$n.sock \
    --put /boot-source=/tmp/boot.json --put /machine-config=/tmp/machine.json \
    --put /vsock=/tmp/vsock$n.json --put /entropy=/tmp/entropy.json --put /actions=/tmp/start.json \
    -- /lane/ringfence-vmm --api-sock /tmp/api$n.sock --serial /tmp/console$n.log) ||
    {{ echo "BOOT-FAILED $n"; tail -20 /tmp/console$n.log; exit 1; }}
  set -- $r; pids="$pids $1"
  echo "BOOT $n $2 $3 $4 $5"
done
sleep 1
echo "BOOTPSS $(pss $pids)"
kill $pids; gone $pids
/lane/ringfence-vmm --api-sock /tmp/api0.sock --kernel /guest/kernel --initrd /guest/initrd \
  --mem 256 --vsock 3,/tmp/v0.sock --serial /tmp/console0.log --entropy \
  --cmdline "{CMDLINE} init_on_free=1" &
template=$!
agent 0 || {{ echo "BOOT-FAILED template"; exit 1; }}
t=$(ms)
/lane/ringfence vm snapshot --api-sock /tmp/api0.sock --snapshot /tmp/t.snap --mem-file /tmp/t.mem >/dev/null || exit 1
echo "SNAPSHOT $(( $(ms) - t )) $(stat -c %s /tmp/t.snap) $(stat -c %s /tmp/t.mem) $(du -k /tmp/t.mem | cut -f1)"
kill $template; wait
pids=""
for n in $(seq 1 {vms}); do
  printf '{{"snapshot_path":"/tmp/t.snap","mem_backend":{{"backend_type":"File","backend_path":"/tmp/t.mem"}},"resume_vm":true,"vsock_override":{{"uds_path":"/tmp/c%s.sock"}}}}' $n > /tmp/restore$n.json
  r=$(timed 60 --vsock /tmp/c$n.sock $(warm $n /tmp/c1.sock) --api-sock /tmp/capi$n.sock \
    --put /snapshot/load=/tmp/restore$n.json \
    -- /lane/ringfence-vmm --api-sock /tmp/capi$n.sock --serial /tmp/clone$n.log) ||
    {{ echo "RESTORE-FAILED $n"; exit 1; }}
  set -- $r; pids="$pids $1"
  echo "RESTORE $n $2 $3 $4 $5"
done
sleep 1
echo "CLONEPSS $(pss $pids)"
kill $pids; gone $pids
"#
    )
}

pub fn run(vms: usize, transport: lane::Transport) -> anyhow::Result<Report> {
    let (kernel, initrd) = lane::node::last_guest()?;
    let boot_limit = if transport == lane::Transport::Direct { 600 } else { 120 };
    let out = lane::execute(&lane::Run {
        vmm: lane::default_vmm()?,
        ringfence: Some(std::env::current_exe()?),
        args: Vec::new(),
        files: vec![(kernel, "/guest/kernel".into()), (initrd, "/guest/initrd".into())],
        sums: Vec::new(),
        script: Some(script(vms)),
        timeout: Duration::from_secs(120 + boot_limit * vms as u64),
        transport,
        forwards: Vec::new(),
        host_ports: Vec::new(),
    })?;
    let text = &out.output;
    if text.contains("-FAILED") || out.exit_code != 0 {
        bail!("the run failed ({}):\n{text}", out.exit_code);
    }
    let fields = |tag: &str| -> Vec<Vec<f64>> {
        text.lines()
            .filter_map(|l| l.strip_prefix(tag))
            .map(|rest| rest.split_whitespace().filter_map(|w| w.parse().ok()).collect())
            .collect()
    };
    // "TAG n answering listening accepting from-spawn", one line per VM.
    let starts = |tag: &str| -> anyhow::Result<Starts> {
        let lines = fields(tag);
        let column = |at: usize| -> anyhow::Result<Vec<f64>> {
            let v: Vec<f64> = lines.iter().filter_map(|f| f.get(at).copied()).collect();
            if v.len() != vms {
                bail!("{} of {vms} {tag}timings in:\n{text}", v.len());
            }
            Ok(v)
        };
        Ok(Starts {
            answering: column(1)?,
            listening: column(2)?,
            accepting: column(3)?,
            from_spawn: column(4)?,
        })
    };
    let one = |tag: &str| -> anyhow::Result<Vec<f64>> {
        fields(tag).into_iter().next().with_context(|| format!("no {tag} in:\n{text}"))
    };
    let snap = one("SNAPSHOT ")?;
    if snap.len() < 4 {
        bail!("incomplete results:\n{text}");
    }
    Ok(Report {
        vms,
        boots: starts("BOOT ")?,
        restores: starts("RESTORE ")?,
        boot_pss_kib: one("BOOTPSS ")?.first().copied().unwrap_or(0.0) as u64,
        clone_pss_kib: one("CLONEPSS ")?.first().copied().unwrap_or(0.0) as u64,
        snapshot_ms: snap[0],
        state_kib: snap[1] as u64 / 1024,
        memory_kib: snap[2] as u64 / 1024,
        memory_data_kib: snap[3] as u64,
    })
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

pub fn render(r: &Report, transport: lane::Transport) -> String {
    let place = match transport {
        lane::Transport::Nested => "one outer VM of the nested-SVM lane",
        lane::Transport::Direct => "this host's KVM",
    };
    let (boot, restore) = (median(&r.boots.answering), median(&r.restores.answering));
    let per_vm = |kib: u64| kib as f64 / 1024.0 / r.vms as f64;
    let (boot_pss, clone_pss) = (per_vm(r.boot_pss_kib), per_vm(r.clone_pss_kib));
    format!(
        "The project's guest (256 MiB, 1 vCPU, agent as PID 1) in {place}: {n} boots and {n} \
         restores of a snapshot of it (booted with init_on_free=1, as node templates are); \
         InstanceStart or snapshot load -> agent answering, PSS per VM with all {n} running\n\n\
         | what | count | p50 ms | max ms | vs cold boot (target {RESTORE_TARGET}x) | PSS MiB per VM | vs cold boot (target {PSS_TARGET}x) |\n\
         |---|---|---|---|---|---|---|\n\
         | cold boot -> agent | {n} | {boot:.0} | {bmax:.0} | 1.00x | {boot_pss:.1} | 1.00x |\n\
         | restore -> agent | {n} | {restore:.0} | {rmax:.0} | {rratio:.3}x | {clone_pss:.1} | {pratio:.2}x |\n\n\
         Timed by the process that starts each VMM (no client start-up in the figures), from the \
         request to a VMM already started bare, as Firecracker measures; from spawning the VMM, \
         p50: {bspawn:.0} ms (boot), {rspawn:.0} ms (restore), {sratio:.3}x. The VMM's \
         vsock socket was listening after {blisten:.0} ms (boot) and {rlisten:.0} ms (restore), the \
         guest accepted a connection to the agent's port after {baccept:.0} and {raccept:.0} ms, p50.\n\
         snapshot: {snap:.0} ms to write; state {state} KiB; memory file {mem} MiB, {data} MiB of it data\n",
        bspawn = median(&r.boots.from_spawn),
        rspawn = median(&r.restores.from_spawn),
        sratio = median(&r.restores.from_spawn) / median(&r.boots.from_spawn).max(1.0),
        blisten = median(&r.boots.listening),
        rlisten = median(&r.restores.listening),
        baccept = median(&r.boots.accepting),
        raccept = median(&r.restores.accepting),
        n = r.vms,
        bmax = max(&r.boots.answering),
        rmax = max(&r.restores.answering),
        rratio = restore / boot.max(1.0),
        pratio = clone_pss / boot_pss.max(0.001),
        snap = r.snapshot_ms,
        state = r.state_kib,
        mem = r.memory_kib / 1024,
        data = r.memory_data_kib / 1024,
    )
}
