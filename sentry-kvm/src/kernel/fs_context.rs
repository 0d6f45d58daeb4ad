//! A task's filesystem context: root, working directory and umask (shared with CLONE_FS).

use crate::sync::{Mutex, MutexGuard};
use std::sync::Arc;

use crate::vfs::Location;

pub struct FsState {
    pub root: Location,
    pub cwd: Location,
    pub umask: u32,
}

pub struct FsContext {
    state: Mutex<FsState>,
}

impl FsContext {
    pub fn new(root: Location) -> Arc<FsContext> {
        Arc::new(FsContext { state: Mutex::new(FsState { cwd: root.clone(), root, umask: 0o022 }) })
    }

    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, FsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn root(&self) -> Location {
        self.lock().root.clone()
    }

    pub fn cwd(&self) -> Location {
        self.lock().cwd.clone()
    }

    pub fn umask(&self) -> u32 {
        self.lock().umask
    }

    pub fn fork(&self) -> Arc<FsContext> {
        let s = self.lock();
        Arc::new(FsContext {
            state: Mutex::new(FsState { root: s.root.clone(), cwd: s.cwd.clone(), umask: s.umask }),
        })
    }
}
