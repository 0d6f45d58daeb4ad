//! Counters of what the machine did (exits by kind, device bytes, boot timing), written as a
//! JSON line to a file or pipe on request (`FlushMetrics`) and when the VMM ends.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Default)]
pub struct Metrics {
    pub exits_io_in: AtomicU64,
    pub exits_io_out: AtomicU64,
    pub exits_mmio_read: AtomicU64,
    pub exits_mmio_write: AtomicU64,
    pub exits_other: AtomicU64,
    pub serial_bytes_out: AtomicU64,
    pub virtio_notifications: AtomicU64,
    /// Microseconds from VMM start to the guest's first serial byte (0: none yet).
    pub first_serial_byte_us: AtomicU64,
    /// Microseconds from VMM start to the boot vCPU's first run.
    pub vcpu_start_us: AtomicU64,
}

pub static METRICS: Metrics = Metrics {
    exits_io_in: AtomicU64::new(0),
    exits_io_out: AtomicU64::new(0),
    exits_mmio_read: AtomicU64::new(0),
    exits_mmio_write: AtomicU64::new(0),
    exits_other: AtomicU64::new(0),
    serial_bytes_out: AtomicU64::new(0),
    virtio_notifications: AtomicU64::new(0),
    first_serial_byte_us: AtomicU64::new(0),
    vcpu_start_us: AtomicU64::new(0),
};

type Device = std::sync::Arc<Mutex<dyn virtio_devices::VirtioDevice>>;

static START: Mutex<Option<Instant>> = Mutex::new(None);
static DEVICES: Mutex<Vec<(String, Device)>> = Mutex::new(Vec::new());

/// Reports these devices' counters, each under its name (e.g. `block0`), from now on: the
/// devices of the machine being built replace any earlier machine's in this process.
pub fn set_devices(devices: Vec<(String, Device)>) {
    *DEVICES.lock().unwrap_or_else(|e| e.into_inner()) = devices;
}

fn devices() -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, dev) in DEVICES.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let counters = dev.lock().unwrap_or_else(|e| e.into_inner()).metrics();
        let obj = counters.into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect();
        out.insert(name.clone(), serde_json::Value::Object(obj));
    }
    serde_json::Value::Object(out)
}
static SINK: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Marks the VMM's start (the origin of the timing metrics).
pub fn mark_start() {
    START.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Instant::now);
}

fn since_start_us() -> u64 {
    START
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map(|s| s.elapsed().as_micros() as u64)
        .unwrap_or(0)
}

/// Records `slot` as now, once.
pub fn mark_once(slot: &AtomicU64) {
    let now = since_start_us().max(1);
    let _ = slot.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
}

pub fn inc(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// The counters as one JSON object.
pub fn snapshot() -> serde_json::Value {
    let m = &METRICS;
    let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
    serde_json::json!({
        "utc_timestamp_ms": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        "vcpu": {
            "exit_io_in": g(&m.exits_io_in),
            "exit_io_out": g(&m.exits_io_out),
            "exit_mmio_read": g(&m.exits_mmio_read),
            "exit_mmio_write": g(&m.exits_mmio_write),
            "exit_other": g(&m.exits_other),
        },
        "serial": { "bytes_out": g(&m.serial_bytes_out) },
        "virtio": { "notifications": g(&m.virtio_notifications) },
        "devices": devices(),
        "boot": {
            "vcpu_start_us": g(&m.vcpu_start_us),
            "first_serial_byte_us": g(&m.first_serial_byte_us),
        },
    })
}

/// Where metrics go from now on (a file, or a named pipe opened for writing).
/// The metrics file's descriptor, once one is set (a jail must keep it open).
pub fn sink_fd() -> Option<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd;
    SINK.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|f| f.as_raw_fd())
}

pub fn set_sink(path: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    Ok(())
}

pub fn has_sink() -> bool {
    SINK.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// Writes one JSON line to the sink, if there is one.
pub fn flush() -> std::io::Result<()> {
    let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = sink.as_mut() {
        let mut line = snapshot().to_string();
        line.push('\n');
        f.write_all(line.as_bytes())?;
    }
    Ok(())
}
