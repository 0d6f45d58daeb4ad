//! Where the VMM's log goes: stderr, until PUT /logger (Firecracker's shape) names a file and
//! a level. The binary's tracing subscriber writes through [`Writer`] and asks [`enabled`].

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Deserialize;

/// PUT /logger.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggerConfig {
    pub log_path: PathBuf,
    /// `Off`, `Error`, `Warning`, `Info`, `Debug` or `Trace` (default `Info`).
    #[serde(default)]
    pub level: Option<String>,
    /// Accepted for compatibility: lines always carry their level and target.
    #[serde(default)]
    pub show_level: Option<bool>,
    #[serde(default)]
    pub show_log_origin: Option<bool>,
    /// Only log lines from this module (a target prefix such as `vmm::api`).
    #[serde(default)]
    pub module: Option<String>,
}

/// 0 off, 1 error ... 5 trace; warnings and errors until configured.
static LEVEL: AtomicU8 = AtomicU8::new(2);
static SINK: Mutex<Option<std::fs::File>> = Mutex::new(None);
static MODULE: Mutex<Option<String>> = Mutex::new(None);

fn level_number(name: &str) -> Option<u8> {
    Some(match name {
        "Off" => 0,
        "Error" => 1,
        "Warning" | "Warn" => 2,
        "Info" => 3,
        "Debug" => 4,
        "Trace" => 5,
        _ => return None,
    })
}

/// Applies `cfg`: the file is opened for appending (a named pipe works too).
pub fn configure(cfg: &LoggerConfig) -> Result<(), String> {
    let level = match cfg.level.as_deref() {
        None => 3,
        Some(l) => level_number(l).ok_or_else(|| {
            format!("level {l:?} is not one of Off, Error, Warning, Info, Debug, Trace")
        })?,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&cfg.log_path)
        .map_err(|e| format!("log_path {}: {e}", cfg.log_path.display()))?;
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    *MODULE.lock().unwrap_or_else(|e| e.into_inner()) = cfg.module.clone();
    LEVEL.store(level, Ordering::Relaxed);
    Ok(())
}

/// Whether an event at `level` from `target` is logged.
pub fn enabled(level: &tracing::Level, target: &str) -> bool {
    let n = match *level {
        tracing::Level::ERROR => 1,
        tracing::Level::WARN => 2,
        tracing::Level::INFO => 3,
        tracing::Level::DEBUG => 4,
        tracing::Level::TRACE => 5,
    };
    if n > LEVEL.load(Ordering::Relaxed) {
        return false;
    }
    match &*MODULE.lock().unwrap_or_else(|e| e.into_inner()) {
        Some(m) => target.starts_with(m.as_str()),
        None => true,
    }
}

/// Writes to the configured file, or stderr.
pub struct Writer;

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *SINK.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(f) => f.write(buf),
            None => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut *SINK.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(f) => f.flush(),
            None => std::io::stderr().flush(),
        }
    }
}
