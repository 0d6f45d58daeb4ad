//! The mount tree of a sandbox.

use crate::sync::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::vfs::inode::{Inode, InodeKey};

static NEXT_MOUNT: AtomicU64 = AtomicU64::new(1);

pub struct Mount {
    pub id: u64,
    pub root: Arc<dyn Inode>,
    /// The mount and directory this one is mounted on (None for the root mount).
    pub parent: Option<(Arc<Mount>, Arc<dyn Inode>)>,
    children: Mutex<Vec<Arc<Mount>>>,
    /// Filesystem type and source, for /proc/self/mounts.
    pub fstype: String,
    pub source: String,
    pub read_only: bool,
}

impl Mount {
    pub fn new_root(root: Arc<dyn Inode>, fstype: &str, source: &str) -> Arc<Mount> {
        Self::new_root_with(root, fstype, source, false)
    }

    /// A root mount, read-only if asked (a container's `--read-only` root filesystem).
    pub fn new_root_with(
        root: Arc<dyn Inode>,
        fstype: &str,
        source: &str,
        read_only: bool,
    ) -> Arc<Mount> {
        Arc::new(Mount {
            id: NEXT_MOUNT.fetch_add(1, Ordering::Relaxed),
            root,
            parent: None,
            children: Mutex::new(Vec::new()),
            fstype: fstype.into(),
            source: source.into(),
            read_only,
        })
    }

    /// Mounts `root` on directory `on` of this mount.
    pub fn mount_child(
        self: &Arc<Self>,
        on: Arc<dyn Inode>,
        root: Arc<dyn Inode>,
        fstype: &str,
        source: &str,
    ) -> Arc<Mount> {
        self.mount_with(on, root, fstype, source, false)
    }

    /// Mounts a volume (`root`) on directory `on` of this mount.
    pub fn mount_volume(
        self: &Arc<Self>,
        on: Arc<dyn Inode>,
        root: Arc<dyn Inode>,
        read_only: bool,
        source: &str,
    ) -> Arc<Mount> {
        self.mount_with(on, root, "volume", source, read_only)
    }

    /// Mounts `root` on `on` (a directory, or a file for a file) of this mount: masked and
    /// read-only paths.
    pub fn mount_with(
        self: &Arc<Self>,
        on: Arc<dyn Inode>,
        root: Arc<dyn Inode>,
        fstype: &str,
        source: &str,
        read_only: bool,
    ) -> Arc<Mount> {
        let m = Arc::new(Mount {
            id: NEXT_MOUNT.fetch_add(1, Ordering::Relaxed),
            root,
            parent: Some((self.clone(), on)),
            children: Mutex::new(Vec::new()),
            fstype: fstype.into(),
            source: source.into(),
            read_only,
        });
        self.children.lock().unwrap_or_else(|e| e.into_inner()).push(m.clone());
        m
    }

    /// The mount stacked on directory `key` of this mount, if any (the last one mounted wins).
    pub fn mounted_on(&self, key: InodeKey) -> Option<Arc<Mount>> {
        let c = self.children.lock().unwrap_or_else(|e| e.into_inner());
        c.iter().rev().find(|m| m.parent.as_ref().is_some_and(|(_, on)| on.key() == key)).cloned()
    }

    pub fn children(&self) -> Vec<Arc<Mount>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
