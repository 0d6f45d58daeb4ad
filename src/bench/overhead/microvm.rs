//! The microVM runtime: `ringfence vm run` (the project's kernel, the guest agent, the rootfs
//! as an ext4 disk) for every sandbox, all inside one run of the lane: the nested-SVM lane on
//! hosts whose KVM runs guest kernels slowly (its numbers then carry QEMU's software
//! emulation and are marked so), or this host's KVM with the direct transport. One guest
//! boot per start sample, one per repetition of the in-guest workloads (all jobs in one
//! boot), one idle guest for memory (every process of the sandbox: `vm run` and its VMM).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::Context;
use super::model::{Job, METRICS, Outcome};
use super::workloads::{self, PeerAddr, Sizes};
use crate::lane::{self, Transport};

/// Largest file the guest writes (its root is an overlay in guest memory).
const GUEST_FILE_MIB: u64 = 64;
const GUEST_MEM_MIB: u64 = 1024;

/// Why microVMs cannot run here, if they cannot.
pub fn unavailable(transport: Transport) -> Option<String> {
    if let Some(r) = super::runtimes::kvm_unusable() {
        return Some(r);
    }
    if let Err(e) = lane::default_vmm() {
        return Some(e.to_string());
    }
    if let Err(e) = lane::node::last_guest() {
        return Some(format!("no guest kernel: {e:#}"));
    }
    let qemu = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if transport == Transport::Nested && !qemu {
        return Some("qemu-system-x86_64 (for the nested-SVM lane) is not installed".into());
    }
    None
}

/// Why `job` is not measured in a microVM.
fn skip_reason(job: Job, ctx: &Context) -> Option<String> {
    match job {
        Job::Http | Job::Network => Some(
            "this benchmark gives the guest no route to the host (microVM pod networking is \
             measured by `ringfence bench pods --runtime microvm`)"
                .into(),
        ),
        Job::FileVolume => Some("`ringfence vm run` mounts no host directory".into()),
        Job::App if !ctx.sqlite => Some(format!("{} is not installed", super::rootfs::SQLITE3)),
        _ => None,
    }
}

/// The sizes inside the guest: files capped (they live in guest memory).
fn guest_sizes(s: &Sizes) -> Sizes {
    Sizes {
        file_mib: s.file_mib.min(GUEST_FILE_MIB),
        cpu_mib: s.cpu_mib.min(GUEST_FILE_MIB),
        ..s.clone()
    }
}

/// Quotes for a single-quoted shell word.
fn sh_quote(a: &str) -> String {
    format!("'{}'", a.replace('\'', r"'\''"))
}

fn script(jobs: &[Job], ctx: &Context) -> String {
    let s = guest_sizes(&ctx.sizes);
    let vm = format!(
        "/lane/ringfence vm run --kernel /guest/kernel --initrd /guest/initrd --disk /guest/rootfs.img --mem {GUEST_MEM_MIB} --"
    );
    let no_peer = PeerAddr { ip: "127.0.0.1".into(), port: 0 };
    let mut body = String::new();
    if jobs.contains(&Job::Start) {
        body += &format!(
            "for i in $(seq 1 {n}); do\n  t=$(ms)\n  {vm} /bin/true >/dev/null 2>/tmp/err || fail start\n  \
             echo \"RESULT start_exit_ms $(( $(ms) - t ))\"\ndone\n",
            n = (s.starts / 5).clamp(2, 6),
        );
    }
    let inner: Vec<String> = jobs
        .iter()
        .filter(|j| !matches!(j, Job::Start | Job::Memory) && skip_reason(**j, ctx).is_none())
        .map(|j| {
            let (args, _) = workloads::command(*j, &s, &no_peer, "");
            args.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")
        })
        .collect();
    if !inner.is_empty() {
        let cmd = sh_quote(&inner.join("; "));
        body += &format!(
            "for i in $(seq 1 {n}); do\n  {vm} /bin/sh -c {cmd} 2>/tmp/err || fail jobs\ndone\n",
            n = s.heavy_reps.saturating_sub(1).max(1),
        );
    }
    if jobs.contains(&Job::Memory) {
        body += &format!(
            "RUST_LOG=info {vm} /bin/sleep 3600 >/dev/null 2>/tmp/idle &\nvm=$!\nwaited=0\n\
             until grep -q answered /tmp/idle; do sleep 0.2; waited=$((waited + 1)); \
             [ $waited -gt 900 ] && break; done\nsleep {settle}\n\
             echo \"RESULT idle_rss_mib $(sum VmRSS status)\"\n\
             echo \"RESULT idle_pss_mib $(sum Pss smaps_rollup)\"\n\
             kill -9 $(tree $vm) 2>/dev/null; wait\n",
            settle = ctx.sizes.settle.as_secs().max(1),
        );
    }
    format!(
        r#"#!/bin/sh
ms() {{ awk '{{printf "%d", $1 * 1000}}' /proc/uptime; }}
fail() {{ echo "FAILED $1 $(tail -n 5 /tmp/err | tr '\n' '|')"; }}
tree() {{ echo $1; for c in $(cat /proc/$1/task/*/children 2>/dev/null); do tree $c; done; }}
sum() {{ t=0; for p in $(tree $vm); do k=$(awk "/^$1:/ {{print \$2}}" /proc/$p/$2 2>/dev/null); t=$((t + ${{k:-0}})); done; awk "BEGIN {{print $t / 1024}}"; }}
{body}"#
    )
}

/// Every metric of `jobs` in microVMs, with the lane's own failure as every job's reason.
pub fn run(
    rootfs: &Path,
    ctx: &Context,
    jobs: &[Job],
    transport: Transport,
) -> Vec<(&'static str, Outcome)> {
    let mut out = Vec::new();
    let mut runnable = Vec::new();
    for job in jobs {
        match skip_reason(*job, ctx) {
            Some(reason) => out.extend(
                METRICS
                    .iter()
                    .filter(|m| m.job == *job)
                    .map(|m| (m.id, Outcome::Skipped { reason: reason.clone() })),
            ),
            None => runnable.push(*job),
        }
    }
    if runnable.is_empty() {
        return out;
    }
    let fail_all = |reason: String| {
        METRICS
            .iter()
            .filter(|m| runnable.contains(&m.job))
            .map(|m| (m.id, Outcome::Failed { reason: reason.clone() }))
            .collect::<Vec<_>>()
    };
    match execute(rootfs, ctx, &runnable, transport) {
        Ok(text) => out.extend(collect(&text, ctx, &runnable)),
        Err(e) => out.extend(fail_all(format!("{e:#}"))),
    }
    out
}

fn execute(
    rootfs: &Path,
    ctx: &Context,
    jobs: &[Job],
    transport: Transport,
) -> anyhow::Result<String> {
    let (kernel, initrd) = lane::node::last_guest()?;
    let dir = tempfile::tempdir()?;
    let disk = dir.path().join("rootfs.img");
    images::guest::disk::ext4_from_dir(rootfs, &disk, 0)?;
    let timeout = if ctx.quick { 900 } else { 2400 };
    let outcome = lane::execute(&lane::Run {
        vmm: lane::default_vmm()?,
        ringfence: Some(std::env::current_exe()?),
        args: Vec::new(),
        files: vec![
            (kernel, "/guest/kernel".into()),
            (initrd, "/guest/initrd".into()),
            (disk, "/guest/rootfs.img".into()),
        ],
        sums: Vec::new(),
        script: Some(script(jobs, ctx)),
        timeout: Duration::from_secs(timeout),
        transport,
        forwards: Vec::new(),
        host_ports: Vec::new(),
    })?;
    tracing::debug!("microvm lane output:\n{}", outcome.output);
    Ok(outcome.output)
}

/// The samples of the lane's output; a job that printed FAILED or none of its metrics fails.
fn collect(text: &str, ctx: &Context, jobs: &[Job]) -> Vec<(&'static str, Outcome)> {
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (id, v) in workloads::parse_results(text) {
        samples.entry(id).or_default().push(v);
    }
    if let Some(pss) = samples.get("idle_pss_mib").cloned() {
        samples.insert(
            "density".into(),
            pss.iter().map(|p| super::density(ctx.density_gib, *p)).collect(),
        );
    }
    let failures: Vec<&str> = text.lines().filter(|l| l.starts_with("FAILED ")).collect();
    METRICS
        .iter()
        .filter(|m| jobs.contains(&m.job))
        .map(|m| {
            let o = match samples.remove(m.id) {
                Some(samples) if !samples.is_empty() => Outcome::Ok { samples },
                _ => Outcome::Failed {
                    reason: if failures.is_empty() {
                        format!("the guest reported no {}", m.id)
                    } else {
                        failures.join(" ")
                    },
                },
            };
            (m.id, o)
        })
        .collect()
}
