//! The IPC namespace in /proc: the limits under /proc/sys/kernel (writable with
//! CAP_SYS_ADMIN, checked as Linux checks them) and the /proc/sysvipc listings.

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use crate::abi::Errno;
use crate::creds::caps::Capability;
use crate::kernel::ipc::IpcNamespace;
use crate::kernel::ipc::limits::IpcSysctl;
use crate::kernel::task::current;
use crate::vfs::fs::synthetic::{Fixed, SynthDir, SynthFile};
use crate::vfs::inode::Inode;

fn upgrade(ns: &Weak<IpcNamespace>) -> Result<Arc<IpcNamespace>, Errno> {
    ns.upgrade().ok_or(Errno::ESRCH)
}

/// The files for /proc/sys/kernel.
pub fn sysctl_files(dev: u64, ns: &Arc<IpcNamespace>) -> Vec<(Vec<u8>, Arc<dyn Inode>)> {
    IpcSysctl::ALL
        .into_iter()
        .map(|s| {
            let (r, w) = (Arc::downgrade(ns), Arc::downgrade(ns));
            let file: Arc<dyn Inode> = SynthFile::writable(
                dev,
                0o644,
                Box::new(move || Ok(s.render(&upgrade(&r)?.limits()).into_bytes())),
                Box::new(move |data| {
                    let task = current().ok_or(Errno::EPERM)?;
                    if !task.creds().has_cap(Capability::SYS_ADMIN) {
                        return Err(Errno::EPERM);
                    }
                    let text = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
                    let ns = upgrade(&w)?;
                    let forced = {
                        let mut limits = ns.limits_mut();
                        s.apply(&mut limits, text)
                            .map_err(|e| if e.range { Errno::ERANGE } else { Errno::EINVAL })?;
                        limits.shm_rmid_forced != 0
                    };
                    if s == IpcSysctl::ShmRmidForced && forced {
                        // Segments whose creator has exited go now, as they would have at its
                        // exit.
                        // The live processes, listed before the segments are locked (a task
                        // freed under the task table's lock detaches its segments).
                        let live: HashSet<i32> = task
                            .kernel
                            .tasks()
                            .procs
                            .iter()
                            .filter(|(_, p)| !p.tg.has_exited())
                            .map(|(pid, _)| *pid)
                            .collect();
                        ns.shm.destroy_orphans(|creator| !live.contains(&creator));
                    }
                    Ok(())
                }),
            );
            (s.name().as_bytes().to_vec(), file)
        })
        .collect()
}

/// /proc/sysvipc.
pub fn sysvipc_dir(dev: u64, ns: &Arc<IpcNamespace>) -> Arc<SynthDir> {
    let file = |render: fn(&IpcNamespace) -> String| -> Arc<dyn Inode> {
        let ns = Arc::downgrade(ns);
        SynthFile::new(dev, 0o444, Box::new(move || Ok(render(&*upgrade(&ns)?).into_bytes())))
    };
    SynthDir::new(
        dev,
        0o555,
        Box::new(Fixed(vec![
            (b"msg".to_vec(), file(|ns| ns.msg.render())),
            (b"sem".to_vec(), file(|ns| ns.sem.render())),
            (b"shm".to_vec(), file(|ns| ns.shm.render())),
        ])),
    )
}
