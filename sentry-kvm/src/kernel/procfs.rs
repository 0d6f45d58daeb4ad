//! A minimal /proc: self, per-process directories (exe, cwd, root, fd, cmdline, environ,
//! comm, status, stat, statm, maps, mounts, mountinfo) and system files (cpuinfo, meminfo, uptime,
//! loadavg, mounts, stat, version, sys/kernel). The kernel's tables seen as a filesystem, built
//! from the vfs's generated directories, files and links.

use std::fmt::Write as _;
use std::sync::{Arc, Weak};

use crate::abi::Errno;
use crate::abi::stat::{major, makedev, minor};
use crate::kernel::Kernel;
use crate::kernel::pid_ns::PidNamespace;
use crate::kernel::task::{Task, current};
use crate::kernel::thread_group::ThreadGroup;
use crate::mm::vma::VmaName;
use crate::vfs::Location;
use crate::vfs::fs::anon::AnonInode;
use crate::vfs::fs::synthetic::{Children, Fixed, SynthDir, SynthFile, SynthLink};
use crate::vfs::inode::Inode;
use crate::vfs::mount::Mount;

fn dev() -> u64 {
    makedev(0, 4)
}

fn proc_tg(kernel: &Weak<Kernel>, pid: i32) -> Result<(Arc<Kernel>, Arc<ThreadGroup>), Errno> {
    let k = kernel.upgrade().ok_or(Errno::ESRCH)?;
    let tg = k.tasks().proc(pid).map(|p| p.tg.clone()).ok_or(Errno::ESRCH)?;
    Ok((k, tg))
}

fn leader(kernel: &Weak<Kernel>, pid: i32) -> Result<Arc<Task>, Errno> {
    proc_tg(kernel, pid)?.1.leader().ok_or(Errno::ESRCH)
}

/// The task reading a link (its host thread is running this).
fn reader() -> Result<Arc<Task>, Errno> {
    current().ok_or(Errno::ENOENT)
}

/// The PID namespace whose ids /proc shows: the reader's (the root's for the host's own
/// threads).
fn reader_ns(k: &Kernel) -> Arc<PidNamespace> {
    match current() {
        Some(t) => t.pidns(),
        None => k.tasks().root_ns.clone(),
    }
}

fn file(render: impl Fn() -> Result<String, Errno> + Send + Sync + 'static) -> Arc<dyn Inode> {
    SynthFile::new(dev(), 0o444, Box::new(move || render().map(String::into_bytes)))
}

fn bytes(render: impl Fn() -> Result<Vec<u8>, Errno> + Send + Sync + 'static) -> Arc<dyn Inode> {
    SynthFile::new(dev(), 0o444, Box::new(render))
}

struct Root {
    kernel: Weak<Kernel>,
    fixed: Vec<(Vec<u8>, Arc<dyn Inode>)>,
}

impl Children for Root {
    fn list(&self) -> Vec<(Vec<u8>, Arc<dyn Inode>)> {
        let mut out = self.fixed.clone();
        if let Some(k) = self.kernel.upgrade() {
            // Only the processes of the reader's namespace and those below, by its ids.
            let ns = reader_ns(&k);
            let mut pids: Vec<(i32, i32)> = {
                let tasks = k.tasks();
                tasks
                    .procs
                    .iter()
                    .filter(|(_, p)| p.tg.lock().zombie.is_none())
                    .filter_map(|(g, _)| Some((tasks.pid_in(&ns, *g)?, *g)))
                    .collect()
            };
            pids.sort_unstable();
            for (local, global) in pids {
                out.push((local.to_string().into_bytes(), pid_dir(&self.kernel, global)));
            }
        }
        out
    }

    fn lookup(&self, name: &[u8]) -> Option<Arc<dyn Inode>> {
        if let Some((_, i)) = self.fixed.iter().find(|(n, _)| n == name) {
            return Some(i.clone());
        }
        let local: i32 = std::str::from_utf8(name).ok()?.parse().ok()?;
        let k = self.kernel.upgrade()?;
        let ns = reader_ns(&k);
        let tasks = k.tasks();
        let pid = tasks.global_of(&ns, local)?;
        let live = tasks.proc(pid).is_some() || tasks.threads.contains_key(&pid);
        drop(tasks);
        live.then(|| pid_dir(&self.kernel, pid))
    }
}

/// The /proc root directory.
pub fn build(kernel: &Arc<Kernel>) -> Arc<SynthDir> {
    let k = Arc::downgrade(kernel);
    let info = kernel.info();
    let k1 = k.clone();
    let selfl = SynthLink::new(
        dev(),
        Box::new(|| {
            let t = reader()?;
            Ok(t.pid_seen(t.tgid()).to_string().into_bytes())
        }),
    );
    let thread_self = SynthLink::new(
        dev(),
        Box::new(|| {
            let t = reader()?;
            Ok(format!("{}/task/{}", t.pid_seen(t.tgid()), t.pid_seen(t.tid())).into_bytes())
        }),
    );
    let k2 = k.clone();
    let k3 = k.clone();
    let k4 = k.clone();
    let cpus = info.cpus;
    let mem = info.mem_bytes;
    let release = info.release;
    let version = info.version;
    let hostname_k = k.clone();
    let mut kernel_files = crate::kernel::ipc::proc::sysctl_files(dev(), &kernel.ipc);
    let sysvipc = crate::kernel::ipc::proc::sysvipc_dir(dev(), &kernel.ipc);
    let sys_kernel = SynthDir::new(
        dev(),
        0o555,
        Box::new(Fixed(
            vec![
                (
                    b"hostname".to_vec(),
                    file(move || {
                        Ok(format!(
                            "{}\n",
                            String::from_utf8_lossy(
                                &hostname_k.upgrade().ok_or(Errno::ESRCH)?.info().hostname
                            )
                        ))
                    }),
                ),
                (b"osrelease".to_vec(), file(move || Ok(format!("{release}\n")))),
                (b"ostype".to_vec(), file(|| Ok("Linux\n".into()))),
                (b"version".to_vec(), file(move || Ok(format!("{version}\n")))),
                (b"pid_max".to_vec(), file(|| Ok("4194304\n".into()))),
                (b"ngroups_max".to_vec(), file(|| Ok("65536\n".into()))),
                (b"cap_last_cap".to_vec(), file(|| Ok("40\n".into()))),
            ]
            .into_iter()
            .chain(kernel_files.drain(..))
            .collect(),
        )),
    );
    let sys_vm = SynthDir::new(
        dev(),
        0o555,
        Box::new(Fixed(vec![
            (b"overcommit_memory".to_vec(), file(|| Ok("0\n".into()))),
            (b"max_map_count".to_vec(), file(|| Ok("65530\n".into()))),
        ])),
    );
    let limits = crate::vfs::notify::LIMITS;
    let sys_fs_inotify = SynthDir::new(
        dev(),
        0o555,
        Box::new(Fixed(vec![
            (
                b"max_queued_events".to_vec(),
                file(move || Ok(format!("{}\n", limits.max_queued_events))),
            ),
            (
                b"max_user_instances".to_vec(),
                file(move || Ok(format!("{}\n", limits.max_user_instances))),
            ),
            (
                b"max_user_watches".to_vec(),
                file(move || Ok(format!("{}\n", limits.max_user_watches))),
            ),
        ])),
    );
    let sys_fs = SynthDir::new(
        dev(),
        0o555,
        Box::new(Fixed(vec![
            (b"nr_open".to_vec(), file(|| Ok("1048576\n".into()))),
            (b"inotify".to_vec(), sys_fs_inotify),
        ])),
    );
    let sys = SynthDir::new(
        dev(),
        0o555,
        Box::new(Fixed(vec![
            (b"kernel".to_vec(), sys_kernel.clone()),
            (b"vm".to_vec(), sys_vm.clone()),
            (b"fs".to_vec(), sys_fs.clone()),
        ])),
    );
    let fixed: Vec<(Vec<u8>, Arc<dyn Inode>)> = vec![
        (b"self".to_vec(), selfl),
        (b"thread-self".to_vec(), thread_self),
        (b"cpuinfo".to_vec(), file(move || Ok(cpuinfo(cpus)))),
        (b"meminfo".to_vec(), file(move || meminfo(&k1, mem))),
        (
            b"uptime".to_vec(),
            file(move || {
                let k = k2.upgrade().ok_or(Errno::ESRCH)?;
                let up = k.boot.elapsed().as_secs_f64();
                Ok(format!("{up:.2} {:.2}\n", up * f64::from(cpus)))
            }),
        ),
        (
            b"loadavg".to_vec(),
            file(move || {
                let k = k3.upgrade().ok_or(Errno::ESRCH)?;
                let n = k.tasks().threads.len();
                Ok(format!("0.00 0.00 0.00 1/{n} {}\n", n))
            }),
        ),
        (
            b"stat".to_vec(),
            file(move || {
                let k = k4.upgrade().ok_or(Errno::ESRCH)?;
                let btime = k
                    .boot_wall
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let mut s = String::from("cpu  0 0 0 0 0 0 0 0 0 0\n");
                for i in 0..cpus {
                    let _ = writeln!(s, "cpu{i} 0 0 0 0 0 0 0 0 0 0");
                }
                let _ = write!(
                    s,
                    "btime {btime}\nprocesses {}\nprocs_running 1\nprocs_blocked 0\n",
                    k.tasks().procs.len()
                );
                Ok(s)
            }),
        ),
        (
            b"version".to_vec(),
            file(move || Ok(format!("Linux version {release} (ringfence) {version}\n"))),
        ),
        (
            b"filesystems".to_vec(),
            file(|| Ok("nodev\ttmpfs\nnodev\tproc\nnodev\toverlay\n".into())),
        ),
        (b"mounts".to_vec(), SynthLink::fixed(dev(), b"self/mounts")),
        (b"sys".to_vec(), sys.clone()),
        (b"sysvipc".to_vec(), sysvipc.clone()),
    ];
    let root = SynthDir::new(dev(), 0o555, Box::new(Root { kernel: k, fixed }));
    let as_inode: Arc<dyn Inode> = root.clone();
    sys.set_parent(&as_inode, b"sys");
    let sys_inode: Arc<dyn Inode> = sys;
    sys_kernel.set_parent(&sys_inode, b"kernel");
    sys_vm.set_parent(&sys_inode, b"vm");
    sys_fs.set_parent(&sys_inode, b"fs");
    sysvipc.set_parent(&as_inode, b"sysvipc");
    root
}

fn cpuinfo(cpus: u32) -> String {
    let mut s = String::new();
    let (l0, l1) = (std::arch::x86_64::__cpuid(0), std::arch::x86_64::__cpuid(1));
    let vendor: Vec<u8> = [l0.ebx, l0.edx, l0.ecx].iter().flat_map(|r| r.to_le_bytes()).collect();
    let family = (l1.eax >> 8) & 0xf;
    let model = (l1.eax >> 4) & 0xf | ((l1.eax >> 12) & 0xf0);
    for i in 0..cpus {
        let _ = write!(
            s,
            "processor\t: {i}\nvendor_id\t: {}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: Ringfence virtual CPU\nstepping\t: {}\ncpu MHz\t\t: 2000.000\ncache size\t: 512 KB\nphysical id\t: 0\nsiblings\t: {cpus}\ncore id\t\t: {i}\ncpu cores\t: {cpus}\napicid\t\t: {i}\nfpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: {}\nwp\t\t: yes\nflags\t\t: fpu tsc cx8 cmov mmx fxsr sse sse2 syscall nx lm\nbogomips\t: 4000.00\nclflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: 46 bits physical, 48 bits virtual\n\n",
            String::from_utf8_lossy(&vendor),
            l1.eax & 0xf,
            l0.eax
        );
    }
    s
}

fn meminfo(k: &Weak<Kernel>, total: u64) -> Result<String, Errno> {
    let k = k.upgrade().ok_or(Errno::ESRCH)?;
    let used = k.phys.frames.in_use() * 4;
    let total_kb = total / 1024;
    let free = total_kb.saturating_sub(used);
    Ok(format!(
        "MemTotal:       {total_kb:8} kB\nMemFree:        {free:8} kB\nMemAvailable:   {free:8} kB\nBuffers:               0 kB\nCached:                0 kB\nSwapCached:            0 kB\nActive:         {used:8} kB\nInactive:              0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\nShmem:                 0 kB\n"
    ))
}

struct PidDir {
    kernel: Weak<Kernel>,
    pid: i32,
}

fn pid_dir(kernel: &Weak<Kernel>, pid: i32) -> Arc<dyn Inode> {
    SynthDir::new(dev(), 0o555, Box::new(PidDir { kernel: kernel.clone(), pid }))
}

impl Children for PidDir {
    fn list(&self) -> Vec<(Vec<u8>, Arc<dyn Inode>)> {
        let names: [&[u8]; 17] = [
            b"exe",
            b"cwd",
            b"root",
            b"fd",
            b"cmdline",
            b"environ",
            b"comm",
            b"status",
            b"stat",
            b"statm",
            b"maps",
            b"mounts",
            b"mountinfo",
            b"task",
            b"auxv",
            b"limits",
            b"oom_score_adj",
        ];
        names.iter().filter_map(|n| self.lookup(n).map(|i| (n.to_vec(), i))).collect()
    }

    fn lookup(&self, name: &[u8]) -> Option<Arc<dyn Inode>> {
        let (k, pid) = (self.kernel.clone(), self.pid);
        let node: Arc<dyn Inode> = match name {
            b"exe" => {
                let k2 = k.clone();
                SynthLink::magic(
                    dev(),
                    Box::new(move || Ok(proc_tg(&k, pid)?.1.lock().exe.clone())),
                    Box::new(move || {
                        proc_tg(&k2, pid)
                            .and_then(|(_, tg)| tg.lock().exe_location.clone().ok_or(Errno::ENOENT))
                    }),
                )
            }
            b"cwd" | b"root" => {
                let want_cwd = name == b"cwd";
                let k2 = k.clone();
                let loc_of = move |k: &Weak<Kernel>| -> Result<Location, Errno> {
                    let fs = leader(k, pid)?.fs();
                    Ok(if want_cwd { fs.cwd() } else { fs.root() })
                };
                let loc_of2 = loc_of;
                SynthLink::magic(
                    dev(),
                    Box::new(move || {
                        let loc = loc_of(&k)?;
                        crate::vfs::path::path_of(&reader()?.fs().root(), &loc).ok_or(Errno::ENOENT)
                    }),
                    Box::new(move || loc_of2(&k2)),
                )
            }
            b"fd" => SynthDir::new(dev(), 0o500, Box::new(FdDir { kernel: k, pid })),
            b"task" => SynthDir::new(dev(), 0o555, Box::new(TaskDir { kernel: k, pid })),
            b"cmdline" => bytes(move || read_range(&k, pid, true)),
            b"environ" => bytes(move || read_range(&k, pid, false)),
            b"comm" => bytes(move || {
                let mut c = leader(&k, pid)?.comm();
                c.push(b'\n');
                Ok(c)
            }),
            b"status" => file(move || status(&k, pid)),
            b"stat" => file(move || stat(&k, pid)),
            b"statm" => file(move || {
                let t = leader(&k, pid)?;
                let mm = t.mm();
                let size: u64 = mm.areas().iter().map(|v| (v.end - v.start) / 4096).sum();
                Ok(format!("{size} {} 0 0 0 0 0\n", mm.resident_pages()))
            }),
            b"maps" => file(move || maps(&k, pid)),
            b"mounts" => file(move || mounts(&k, pid)),
            b"mountinfo" => file(move || mountinfo(&k, pid)),
            b"auxv" => bytes(move || {
                let t = leader(&k, pid)?;
                let aux = t.mm().lock().auxv.clone();
                Ok(aux
                    .iter()
                    .flat_map(|(a, b)| a.to_le_bytes().into_iter().chain(b.to_le_bytes()))
                    .collect())
            }),
            b"limits" => file(move || {
                let (_, tg) = proc_tg(&k, pid)?;
                let l = tg.lock().rlimits;
                let show =
                    |v: u64| if v == u64::MAX { "unlimited".to_string() } else { v.to_string() };
                let names = [
                    "Max cpu time",
                    "Max file size",
                    "Max data size",
                    "Max stack size",
                    "Max core file size",
                    "Max resident set",
                    "Max processes",
                    "Max open files",
                    "Max locked memory",
                    "Max address space",
                    "Max file locks",
                    "Max pending signals",
                    "Max msgqueue size",
                    "Max nice priority",
                    "Max realtime priority",
                    "Max realtime timeout",
                ];
                let mut s = format!(
                    "{:<26}{:<21}{:<21}{:<10}\n",
                    "Limit", "Soft Limit", "Hard Limit", "Units"
                );
                for (i, n) in names.iter().enumerate() {
                    let _ = writeln!(s, "{n:<26}{:<21}{:<21}", show(l[i].0), show(l[i].1));
                }
                Ok(s)
            }),
            b"oom_score_adj" => file(|| Ok("0\n".into())),
            _ => return None,
        };
        Some(node)
    }
}

fn read_range(k: &Weak<Kernel>, pid: i32, args: bool) -> Result<Vec<u8>, Errno> {
    let t = leader(k, pid)?;
    let mm = t.mm();
    let (start, end) = {
        let st = mm.lock();
        if args { st.arg_range } else { st.env_range }
    };
    if end <= start {
        return Ok(Vec::new());
    }
    let mut b = vec![0u8; (end - start).min(1 << 20) as usize];
    mm.copy_in(start, &mut b)?;
    Ok(b)
}

/// A process's ids as namespace `ns` sees them (0 for what is outside it), and its ids from
/// `ns` down to its own namespace.
struct Ids {
    pid: i32,
    ppid: i32,
    pgid: i32,
    sid: i32,
    ns_pid: Vec<i32>,
    ns_pgid: Vec<i32>,
    ns_sid: Vec<i32>,
}

fn ns_ids(kernel: &Kernel, ns: &PidNamespace, tg: &ThreadGroup) -> Ids {
    let tasks = kernel.tasks();
    let (parent, pgid, sid) =
        tasks.proc(tg.tgid).map(|p| (p.parent, p.pgid, p.sid)).unwrap_or((0, 0, 0));
    let seen = |g| tasks.pid_or_zero(ns, g);
    Ids {
        pid: seen(tg.tgid),
        ppid: seen(parent),
        pgid: seen(pgid),
        sid: seen(sid),
        ns_pid: tasks.ns_ids(ns, &tg.pidns, tg.tgid),
        ns_pgid: tasks.ns_ids(ns, &tg.pidns, pgid),
        ns_sid: tasks.ns_ids(ns, &tg.pidns, sid),
    }
}

fn status(k: &Weak<Kernel>, pid: i32) -> Result<String, Errno> {
    let (kernel, tg) = proc_tg(k, pid)?;
    let t = tg.leader().ok_or(Errno::ESRCH)?;
    let ns = reader_ns(&kernel);
    let ids = ns_ids(&kernel, &ns, &tg);
    let (shown, ppid) = (ids.pid, ids.ppid);
    let list = |l: &[i32]| l.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\t");
    let ns_lines = format!(
        "NStgid:\t{}\nNSpid:\t{}\nNSpgid:\t{}\nNSsid:\t{}\n",
        list(&ids.ns_pid),
        list(&ids.ns_pid),
        list(&ids.ns_pgid),
        list(&ids.ns_sid)
    );
    let cr = t.creds();
    let sig = t.sig();
    let (mask, pending) = (sig.mask.0, sig.pending.set().0);
    drop(sig);
    let st = tg.lock();
    let (shared, threads, stopped, zombie) =
        (st.shared_pending.set().0, st.threads.len(), st.stopped, st.zombie.is_some());
    let handlers = st.handlers.lock().unwrap_or_else(|e| e.into_inner()).clone();
    drop(st);
    let (mut ign, mut cgt) = (0u64, 0u64);
    for s in 1..=64u32 {
        let a = handlers.get(s);
        if a.handler == crate::abi::signal::SIG_IGN {
            ign |= 1 << (s - 1);
        } else if a.handler != crate::abi::signal::SIG_DFL {
            cgt |= 1 << (s - 1);
        }
    }
    let mm = t.mm();
    let size_kb: u64 = mm.areas().iter().map(|v| (v.end - v.start) / 1024).sum();
    let rss_kb = mm.resident_pages() * 4;
    let security = security_status(&t);
    let state = if zombie {
        "Z (zombie)"
    } else if stopped {
        "T (stopped)"
    } else {
        "S (sleeping)"
    };
    Ok(format!(
        "Name:\t{}\nUmask:\t{:04o}\nState:\t{state}\nTgid:\t{shown}\nNgid:\t0\nPid:\t{shown}\nPPid:\t{ppid}\nTracerPid:\t0\nUid:\t{}\t{}\t{}\t{}\nGid:\t{}\t{}\t{}\t{}\nFDSize:\t64\nGroups:\t{}\n{ns_lines}VmPeak:\t{size_kb:8} kB\nVmSize:\t{size_kb:8} kB\nVmHWM:\t{rss_kb:8} kB\nVmRSS:\t{rss_kb:8} kB\nThreads:\t{threads}\nSigQ:\t0/4096\nSigPnd:\t{pending:016x}\nShdPnd:\t{shared:016x}\nSigBlk:\t{mask:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}\n{security}Cpus_allowed_list:\t0-{}\n",
        String::from_utf8_lossy(&t.comm()),
        t.fs().umask(),
        cr.uid,
        cr.euid,
        cr.suid,
        cr.fsuid,
        cr.gid,
        cr.egid,
        cr.sgid,
        cr.fsgid,
        cr.groups.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(" "),
        kernel.info().cpus.saturating_sub(1),
    ))
}

/// The capability, no_new_privs and seccomp lines of /proc/PID/status.
fn security_status(t: &crate::kernel::task::Task) -> String {
    let c = t.creds().caps;
    let mode = t.seccomp.mode();
    format!(
        "CapInh:\t{:016x}\nCapPrm:\t{:016x}\nCapEff:\t{:016x}\nCapBnd:\t{:016x}\nCapAmb:\t{:016x}\nNoNewPrivs:\t{}\nSeccomp:\t{}\nSeccomp_filters:\t{}\n",
        c.inheritable.bits(),
        c.permitted.bits(),
        c.effective.bits(),
        c.bounding.bits(),
        c.ambient.bits(),
        u8::from(t.no_new_privs.load(std::sync::atomic::Ordering::SeqCst)),
        mode.number(),
        mode.filters(),
    )
}

fn stat(k: &Weak<Kernel>, pid: i32) -> Result<String, Errno> {
    let (kernel, tg) = proc_tg(k, pid)?;
    let t = tg.leader().ok_or(Errno::ESRCH)?;
    let ns = reader_ns(&kernel);
    let ids = ns_ids(&kernel, &ns, &tg);
    let (shown, ppid, pgid, sid) = (ids.pid, ids.ppid, ids.pgid, ids.sid);
    let st = tg.lock();
    let state = if st.zombie.is_some() {
        'Z'
    } else if st.stopped {
        'T'
    } else {
        'S'
    };
    let threads = st.threads.len();
    drop(st);
    let utime = t.cpu_us() / 10_000;
    let nice = t.nice.load(std::sync::atomic::Ordering::Relaxed);
    let prio = 20 + nice;
    let start = t.start.duration_since(kernel.boot).as_millis() / 10;
    let mm = t.mm();
    let vsize: u64 = mm.areas().iter().map(|v| v.end - v.start).sum();
    Ok(format!(
        "{shown} ({}) {state} {ppid} {pgid} {sid} 0 -1 4194560 0 0 0 0 {utime} 0 0 0 {prio} {nice} {threads} 0 {start} {vsize} {} 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        String::from_utf8_lossy(&t.comm()),
        mm.resident_pages()
    ))
}

fn maps(k: &Weak<Kernel>, pid: i32) -> Result<String, Errno> {
    let t = leader(k, pid)?;
    let mut s = String::new();
    for v in t.mm().areas() {
        let perms = format!(
            "{}{}{}{}",
            if v.prot.read { 'r' } else { '-' },
            if v.prot.write { 'w' } else { '-' },
            if v.prot.exec { 'x' } else { '-' },
            if v.shared { 's' } else { 'p' }
        );
        let name = match &v.name {
            VmaName::None => String::new(),
            VmaName::Heap => "[heap]".into(),
            VmaName::Stack => "[stack]".into(),
            VmaName::Vdso => "[vdso]".into(),
            VmaName::Vvar => "[vvar]".into(),
            VmaName::File(p) => p.clone(),
        };
        let (devn, ino) = v.backing.as_ref().map(|b| b.map_ids()).unwrap_or((0, 0));
        let off = if v.backing.is_some() { v.pgoff * 4096 } else { 0 };
        let line = format!(
            "{:08x}-{:08x} {perms} {off:08x} {:02x}:{:02x} {ino}",
            v.start,
            v.end,
            crate::abi::stat::major(devn),
            crate::abi::stat::minor(devn)
        );
        if name.is_empty() {
            let _ = writeln!(s, "{line}");
        } else {
            let _ = writeln!(s, "{line:<73}{name}");
        }
    }
    Ok(s)
}

/// The mounts under the process's root, with paths as it sees them, in mount order: each with
/// its parent mount and the path it is mounted at.
fn visible_mounts(k: &Weak<Kernel>, pid: i32) -> Result<Vec<(Arc<Mount>, u64, String)>, Errno> {
    let root = leader(k, pid)?.fs().root();
    let mut out = Vec::new();
    let mut stack = vec![root.mount.clone()];
    while let Some(m) = stack.pop() {
        let (at, parent) = if Arc::ptr_eq(&m, &root.mount) {
            (Location::new(m.clone(), m.root.clone()), m.id)
        } else {
            match &m.parent {
                Some((pm, on)) => (Location::new(pm.clone(), on.clone()), pm.id),
                None => continue,
            }
        };
        // Mounts outside a chroot are not listed.
        if let Some(path) = crate::vfs::path::path_of(&root, &at) {
            out.push((m.clone(), parent, String::from_utf8_lossy(&path).into_owned()));
        }
        stack.extend(m.children().into_iter().rev());
    }
    Ok(out)
}

fn mount_opts(m: &Mount) -> &'static str {
    if m.read_only { "ro" } else { "rw" }
}

fn mounts(k: &Weak<Kernel>, pid: i32) -> Result<String, Errno> {
    let mut s = String::new();
    for (m, _, path) in visible_mounts(k, pid)? {
        let _ = writeln!(s, "{} {path} {} {} 0 0", m.source, m.fstype, mount_opts(&m));
    }
    Ok(s)
}

/// /proc/PID/mountinfo (what GNU df and findmnt read): ids, the device number files on the
/// mount report in st_dev, and the mount point.
fn mountinfo(k: &Weak<Kernel>, pid: i32) -> Result<String, Errno> {
    let mut s = String::new();
    for (m, parent, path) in visible_mounts(k, pid)? {
        let dev = m.root.stat().map(|st| st.dev).unwrap_or(0);
        let (major, minor) = (major(dev), minor(dev));
        let opts = mount_opts(&m);
        let _ = writeln!(
            s,
            "{} {parent} {major}:{minor} / {path} {opts} - {} {} {opts}",
            m.id, m.fstype, m.source
        );
    }
    Ok(s)
}

struct FdDir {
    kernel: Weak<Kernel>,
    pid: i32,
}

impl Children for FdDir {
    fn list(&self) -> Vec<(Vec<u8>, Arc<dyn Inode>)> {
        let Ok(t) = leader(&self.kernel, self.pid) else { return Vec::new() };
        t.files()
            .list()
            .into_iter()
            .filter_map(|(fd, _)| {
                self.lookup(fd.to_string().as_bytes()).map(|i| (fd.to_string().into_bytes(), i))
            })
            .collect()
    }

    fn lookup(&self, name: &[u8]) -> Option<Arc<dyn Inode>> {
        let fd: i32 = std::str::from_utf8(name).ok()?.parse().ok()?;
        let t = leader(&self.kernel, self.pid).ok()?;
        t.files().get(fd).ok()?;
        let (k1, k2, pid) = (self.kernel.clone(), self.kernel.clone(), self.pid);
        Some(SynthLink::magic(
            dev(),
            Box::new(move || Ok(leader(&k1, pid)?.files().get(fd)?.path.clone())),
            Box::new(move || {
                let f = leader(&k2, pid).and_then(|t| t.files().get(fd))?;
                Ok(AnonInode::location_of(&f))
            }),
        ))
    }
}

struct TaskDir {
    kernel: Weak<Kernel>,
    pid: i32,
}

impl Children for TaskDir {
    fn list(&self) -> Vec<(Vec<u8>, Arc<dyn Inode>)> {
        let Ok((k, tg)) = proc_tg(&self.kernel, self.pid) else { return Vec::new() };
        let ns = reader_ns(&k);
        let threads = tg.threads();
        let tasks = k.tasks();
        threads
            .iter()
            .filter_map(|t| tasks.pid_in(&ns, t.tid()))
            .map(|tid| (tid.to_string().into_bytes(), pid_dir(&self.kernel, self.pid)))
            .collect()
    }
}
