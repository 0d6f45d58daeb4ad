//! Filesystem implementations.

pub mod anon;
pub mod dev;
pub mod host;
pub mod memfd;
pub mod overlay;
pub mod path_only;
pub mod synthetic;
pub mod volume;
