//! Snapshot templates: per node, one guest per kernel, agent initramfs, VMM and machine shape
//! (memory, vCPUs), booted once with its agent ready and snapshotted, from which pod
//! sandboxes start as clones instead of booting (Firecracker's model; on nested hosts the
//! difference between a boot and a restore is seconds). A template lives on disk under the
//! node's data directory, keyed by a hash of its inputs (files by path, size and mtime), so
//! that a rebuilt kernel, agent or VMM gets a new one and the old ones are removed. The first
//! pod of a shape cold-boots while its template is built in the background.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use super::launch::{Jail, Start, VmmLaunch};
use super::{MicrovmConfig, guest, share};
use crate::cri::CriError;
use crate::cri::network::batch;

/// What a template is made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub memory_mib: u64,
    pub vcpus: u8,
}

/// How a template boots. The share is mounted by each clone, from its own daemon (Refresh).
/// Its link is up with no address: bringing a link up costs ~0.3 s of guest kernel where it is
/// emulated, once per template rather than once per clone (which sets its MAC and address
/// live). Pages the guest frees are zeroed (init_on_free=1): they are holes in the snapshot,
/// not data every clone copies (~7 MiB less per clone: the agent's unpacked initramfs,
/// boot-time allocations), at the cost of clearing what its workloads free.
fn template_cmdline() -> String {
    format!(
        "{} ringfence.share_later=1 ringfence.link=up init_on_free=1",
        super::cmdline("template", None)
    )
}

/// A file's identity for the cache: its path, size and modification time.
fn identity(path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}:{size}:{mtime}", path.display())
}

impl TemplateKey {
    /// The inputs that make every template of this node differ: kernel, agent, VMM, the
    /// snapshot format and the template's boot command line.
    fn inputs(&self, vmm: &Path) -> String {
        format!(
            "{} {} {} v{} {}",
            identity(&self.kernel),
            identity(&self.initrd),
            identity(vmm),
            vmm::snapshot::format::VERSION,
            template_cmdline()
        )
    }

    /// The template's directory name: the inputs' hash and the machine's shape.
    fn dir_name(&self, vmm: &Path) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inputs(vmm).hash(&mut h);
        format!("{:016x}-{}m-{}c", h.finish(), self.memory_mib, self.vcpus)
    }
}

/// A ready template's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub snapshot: PathBuf,
    pub memory: PathBuf,
}

enum Slot {
    Building,
    Failed(String),
}

/// The node's templates.
pub struct Templates {
    root: PathBuf,
    slots: Mutex<HashMap<String, Slot>>,
    /// Restores of each template that failed in a row.
    failed_restores: Mutex<HashMap<String, u32>>,
}

/// Failed restores in a row after which a template is discarded.
pub const MAX_FAILED_RESTORES: u32 = 3;

const SNAPSHOT: &str = "vm.snap";
const MEMORY: &str = "vm.mem";

impl Templates {
    pub fn new(root: PathBuf) -> Templates {
        Templates {
            root,
            slots: Mutex::new(HashMap::new()),
            failed_restores: Mutex::new(HashMap::new()),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ready template for `key`, if there is one.
    pub fn ready(&self, key: &TemplateKey, vmm: &Path) -> Option<Template> {
        let dir = self.root.join(key.dir_name(vmm));
        let t = Template { snapshot: dir.join(SNAPSHOT), memory: dir.join(MEMORY) };
        (t.snapshot.is_file() && t.memory.is_file()).then_some(t)
    }

    /// Starts building the template for `key` on a thread of its own, unless one is being
    /// built or failed already (a failure is not retried until the node restarts: it would
    /// fail again, one boot per pod).
    pub fn build_in_background(self: &Arc<Self>, key: TemplateKey, config: MicrovmConfig) {
        let vmm = config.vmm.program.clone();
        let name = key.dir_name(&vmm);
        {
            let mut slots = self.slots();
            if slots.contains_key(&name) {
                return;
            }
            slots.insert(name.clone(), Slot::Building);
        }
        let me = self.clone();
        let slot = name.clone();
        let spawned =
            std::thread::Builder::new().name("microvm-template".into()).spawn(move || {
                let started = std::time::Instant::now();
                match me.build(&key, &config, &name) {
                    Ok(Built::Here) => {
                        me.slots().remove(&name);
                        tracing::info!(
                            template = name,
                            ms = started.elapsed().as_millis() as u64,
                            "microVM template ready: pods of this shape start from it"
                        );
                    }
                    Ok(Built::Elsewhere) => {
                        // A later pod finds it ready, or builds it if that build failed.
                        me.slots().remove(&name);
                        tracing::info!(template = name, "another process builds this template");
                    }
                    Err(e) => {
                        tracing::warn!(template = name, "no microVM template: {e}; pods cold-boot");
                        me.slots().insert(name, Slot::Failed(e.to_string()));
                    }
                }
            });
        if let Err(e) = spawned {
            self.slots().insert(slot, Slot::Failed(e.to_string()));
        }
    }

    /// A clone of `key`'s template failed to start (`why`). After [`MAX_FAILED_RESTORES`] in
    /// a row the template is removed and no other is built until the node restarts: each pod
    /// would pay for a failing restore before its boot.
    pub fn restore_failed(&self, key: &TemplateKey, vmm: &Path, why: &str) {
        let name = key.dir_name(vmm);
        let mut failed = self.failed_restores.lock().unwrap_or_else(|e| e.into_inner());
        let n = failed.entry(name.clone()).or_default();
        *n += 1;
        if *n >= MAX_FAILED_RESTORES {
            tracing::warn!(template = name, "discarding the microVM template: {why}");
            crate::cri::leftovers::remove_dir(&self.root.join(&name));
            self.slots().insert(name, Slot::Failed(why.to_owned()));
        }
    }

    /// A clone of `key`'s template started.
    pub fn restore_succeeded(&self, key: &TemplateKey, vmm: &Path) {
        let mut failed = self.failed_restores.lock().unwrap_or_else(|e| e.into_inner());
        failed.remove(&key.dir_name(vmm));
    }

    /// Whether a template is being built by this process (a short-lived owner, such as a
    /// containerd shim, waits for it before it exits).
    pub fn building(&self) -> bool {
        self.slots().values().any(|s| matches!(s, Slot::Building))
    }

    /// Why the template for `key` could not be built, if it could not.
    pub fn failure(&self, key: &TemplateKey, vmm: &Path) -> Option<String> {
        match self.slots().get(&key.dir_name(vmm)) {
            Some(Slot::Failed(why)) => Some(why.clone()),
            _ => None,
        }
    }

    /// Boots the template's guest, snapshots it with its agent ready, and moves the files
    /// into place; removes the templates of other inputs. Processes sharing the directory
    /// (the shims of several pods) build each template once: the one holding its lock.
    fn build(&self, key: &TemplateKey, c: &MicrovmConfig, name: &str) -> Result<Built, CriError> {
        let io = |what: &str, e: std::io::Error| CriError::Sandbox(format!("{what}: {e}"));
        std::fs::create_dir_all(&self.root).map_err(|e| io("template directory", e))?;
        let Some(_lock) = build_lock(&self.root.join(format!("{name}{LOCK}")))
            .map_err(|e| io("locking the template", e))?
        else {
            return Ok(Built::Elsewhere);
        };
        if self.ready(key, &c.vmm.program).is_some() {
            return Ok(Built::Here);
        }
        let work = self.root.join(format!("{name}.building"));
        crate::cri::leftovers::remove_dir(&work);
        std::fs::create_dir_all(work.join("jail")).map_err(|e| io("template directory", e))?;
        let mut share = share::Share::start(
            &c.virtiofsd,
            &work.join("share"),
            &work.join("fs.sock"),
            &work.join("virtiofsd.log"),
        )?;
        // Its own tap in the node's namespace; clones are told theirs.
        let tap = format!("rft{}", &name[..8]);
        // One left by a build that was interrupted goes first.
        let _ = batch("ip", None, &[format!("link del {tap}")]);
        let made = batch(
            "ip",
            None,
            &[format!("tuntap add dev {tap} mode tap user {} group {}", c.uid, c.gid)],
        );
        let built = made.and_then(|()| self.boot_and_snapshot(key, c, &work, &share, &tap));
        let _ = batch("ip", None, &[format!("link del {tap}")]);
        share.stop();
        built?;
        let dir = self.root.join(name);
        crate::cri::leftovers::remove_dir(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| io("template directory", e))?;
        for f in [SNAPSHOT, MEMORY] {
            std::fs::rename(work.join("jail").join(f), dir.join(f))
                .map_err(|e| io(&format!("moving the template's {f}"), e))?;
        }
        crate::cri::leftovers::remove_dir(&work);
        self.remove_stale(&key.dir_name(&c.vmm.program)[..16]);
        Ok(Built::Here)
    }

    fn boot_and_snapshot(
        &self,
        key: &TemplateKey,
        c: &MicrovmConfig,
        work: &Path,
        share: &share::Share,
        tap: &str,
    ) -> Result<(), CriError> {
        let cmdline = template_cmdline();
        let nic = Some((tap, "02:00:00:00:00:01"));
        let resources = super::guest_resources(key, cmdline, nic, share.socket());
        let jail = work.join("jail");
        let launch = VmmLaunch {
            vmm: c.vmm.clone(),
            start: Start::Boot(resources),
            api: true,
            jail: Some(Jail { root: jail.clone(), uid: c.uid, gid: c.gid, cgroups: Vec::new() }),
            console: work.join("console.log"),
            netns: None,
        };
        let command = launch.command(work).map_err(|e| CriError::Sandbox(e.to_string()))?;
        let mut vm = guest::GuestVm::spawn(command, jail.join("v.sock"), Some(launch.console))
            .map_err(|e| CriError::Sandbox(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CriError::Sandbox(e.to_string()))?;
        let answered = rt.block_on(vm.wait_agent(c.boot_timeout));
        let snapshot = answered.map_err(|e| CriError::Sandbox(e.to_string())).and_then(|_| {
            // Paths inside the jail: the files land at its root.
            vmm::api::client::snapshot(
                &jail.join("api.sock"),
                vmm::snapshot::SnapshotType::Full,
                Path::new("/").join(SNAPSHOT).as_path(),
                Path::new("/").join(MEMORY).as_path(),
                false,
            )
            .map_err(|e| CriError::Sandbox(format!("snapshotting the template: {e}")))
        });
        vm.kill();
        snapshot
    }

    /// Removes template directories whose inputs hash is not `current`.
    fn remove_stale(&self, current: &str) {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(current) && !name.ends_with(".building") && !name.ends_with(LOCK) {
                tracing::info!(template = name, "removing a template of older inputs");
                crate::cri::leftovers::remove_dir(&e.path());
            }
        }
    }
}

/// Who built a template.
enum Built {
    Here,
    /// Another process holds its lock (and builds it).
    Elsewhere,
}

/// A template's lock file: held (flock) while it is built.
const LOCK: &str = ".lock";

/// Takes the lock at `path`, or `None` when another process holds it. Released when the file
/// closes, also when the process dies.
fn build_lock(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(file));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(None) } else { Err(e) }
}

/// How long a clone may take to answer (it does not boot).
pub const RESTORE_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_at_a_time_holds_a_templates_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.lock");
        let held = build_lock(&path).unwrap().expect("free");
        // flock is per open file: a second open (as another process's) finds it held.
        assert!(build_lock(&path).unwrap().is_none());
        drop(held);
        assert!(build_lock(&path).unwrap().is_some());
    }

    #[test]
    fn a_templates_name_changes_with_its_inputs_and_shape() {
        let dir = tempfile::tempdir().unwrap();
        let (k, i, v) = (dir.path().join("k"), dir.path().join("i"), dir.path().join("vmm"));
        for f in [&k, &i, &v] {
            std::fs::write(f, "x").unwrap();
        }
        let key = TemplateKey { kernel: k.clone(), initrd: i, memory_mib: 256, vcpus: 1 };
        let name = key.dir_name(&v);
        assert_eq!(name, key.dir_name(&v), "stable");
        assert!(name.ends_with("-256m-1c"), "{name}");
        assert_ne!(name, TemplateKey { memory_mib: 512, ..key.clone() }.dir_name(&v));
        std::fs::write(&k, "a rebuilt kernel").unwrap();
        assert_ne!(name[..16], key.dir_name(&v)[..16], "a rebuilt kernel is another template");
        let templates = Templates::new(dir.path().join("templates"));
        assert_eq!(templates.ready(&key, &v), None);
        let ready = dir.path().join("templates").join(key.dir_name(&v));
        std::fs::create_dir_all(&ready).unwrap();
        std::fs::write(ready.join(SNAPSHOT), "s").unwrap();
        std::fs::write(ready.join(MEMORY), "m").unwrap();
        assert_eq!(templates.ready(&key, &v).map(|t| t.memory), Some(ready.join(MEMORY)));
        // A template whose clones keep failing goes, and is not built again.
        templates.restore_failed(&key, &v, "no");
        templates.restore_succeeded(&key, &v);
        for _ in 0..MAX_FAILED_RESTORES - 1 {
            templates.restore_failed(&key, &v, "no");
        }
        assert!(templates.ready(&key, &v).is_some(), "a success in between resets the count");
        templates.restore_failed(&key, &v, "the clone's VMM ended");
        assert_eq!(templates.ready(&key, &v), None);
        assert_eq!(templates.failure(&key, &v).as_deref(), Some("the clone's VMM ended"));
    }
}
