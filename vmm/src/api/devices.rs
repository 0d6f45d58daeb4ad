//! Device resources as the API and config files give them (Firecracker's field names), and
//! their checks. Turning them into devices is [`crate::attach`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use virtio_devices::rate_limiter::RateLimiterConfig;

/// PUT /drives/{drive_id}.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drive {
    pub drive_id: String,
    pub path_on_host: PathBuf,
    #[serde(default)]
    pub is_root_device: bool,
    #[serde(default)]
    pub is_read_only: bool,
    /// With `is_root_device`: boot from this partition instead of the whole disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partuuid: Option<String>,
    /// `Unsafe` or `Writeback`, accepted for compatibility: flushes always reach the disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_type: Option<String>,
    /// `Sync` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiter: Option<RateLimiterConfig>,
}

/// PUT /network-interfaces/{iface_id}.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInterface {
    pub iface_id: String,
    /// The host tap.
    pub host_dev_name: String,
    /// `aa:bb:cc:dd:ee:ff`; random (locally administered) if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_rate_limiter: Option<RateLimiterConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_rate_limiter: Option<RateLimiterConfig>,
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let bytes: Vec<u8> = parts
        .iter()
        .filter(|p| p.len() == 2)
        .filter_map(|p| u8::from_str_radix(p, 16).ok())
        .collect();
    let mac: [u8; 6] = bytes.try_into().map_err(|_| format!("{s:?} is not a MAC address"))?;
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address"));
    }
    if mac[0] & 1 != 0 {
        return Err(format!("{s:?} is a multicast address"));
    }
    Ok(mac)
}

fn check_id(what: &str, id: &str, path_id: Option<&str>) -> Result<(), String> {
    if let Some(p) = path_id
        && p != id
    {
        return Err(format!("the {what} {id:?} in the body is not the {p:?} of the path"));
    }
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("{what} {id:?} must be letters, digits and _"));
    }
    Ok(())
}

fn check_limiter(r: &Option<RateLimiterConfig>) -> Result<(), String> {
    if let Some(r) = r {
        check_bucket(&r.bandwidth)?;
        check_bucket(&r.ops)?;
    }
    Ok(())
}

impl NetworkInterface {
    pub fn check(&self, path_id: Option<&str>) -> Result<(), String> {
        check_id("iface_id", &self.iface_id, path_id)?;
        if self.host_dev_name.is_empty() || self.host_dev_name.len() > 15 {
            return Err(format!("host_dev_name {:?} is not a tap name", self.host_dev_name));
        }
        if let Some(m) = &self.guest_mac {
            parse_mac(m)?;
        }
        check_limiter(&self.rx_rate_limiter)?;
        check_limiter(&self.tx_rate_limiter)
    }
}

/// Adds or replaces `iface`; refuses a tap or MAC another interface has.
pub fn upsert_iface(
    ifaces: &mut Vec<NetworkInterface>,
    iface: NetworkInterface,
) -> Result<(), String> {
    let others = ifaces.iter().filter(|i| i.iface_id != iface.iface_id);
    for other in others {
        if other.host_dev_name == iface.host_dev_name {
            return Err(format!(
                "tap {} is already used by {}",
                iface.host_dev_name, other.iface_id
            ));
        }
        if iface.guest_mac.is_some() && other.guest_mac == iface.guest_mac {
            return Err(format!("guest_mac is already used by {}", other.iface_id));
        }
    }
    match ifaces.iter_mut().find(|i| i.iface_id == iface.iface_id) {
        Some(i) => *i = iface,
        None => ifaces.push(iface),
    }
    Ok(())
}

/// PUT /vsock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vsock {
    /// Accepted and ignored, as Firecracker does (deprecated there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock_id: Option<String>,
    pub guest_cid: u32,
    pub uds_path: PathBuf,
}

impl Vsock {
    pub fn check(&self) -> Result<(), String> {
        if self.guest_cid < 3 {
            return Err(format!("guest_cid {} is reserved (use 3 or more)", self.guest_cid));
        }
        let parent = self.uds_path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(p) = parent.filter(|p| !p.is_dir()) {
            return Err(format!("uds_path: {} is not a directory", p.display()));
        }
        if self.uds_path.as_os_str().len() > 100 {
            return Err("uds_path is too long for a Unix socket".into());
        }
        Ok(())
    }
}

/// PUT /fs/{fs_id}: a directory shared by a vhost-user daemon (virtiofsd), which the guest
/// mounts by `tag` (`mount -t virtiofs TAG DIR`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsDevice {
    pub fs_id: String,
    pub tag: String,
    /// The daemon's vhost-user socket (listening before the machine starts).
    pub socket: PathBuf,
    #[serde(default = "one")]
    pub num_request_queues: u16,
    #[serde(default = "fs_queue_size")]
    pub queue_size: u16,
}

fn one() -> u16 {
    1
}

fn fs_queue_size() -> u16 {
    1024
}

impl FsDevice {
    pub fn check(&self, path_id: Option<&str>) -> Result<(), String> {
        check_id("fs_id", &self.fs_id, path_id)?;
        if self.tag.is_empty() || self.tag.len() > virtio_devices::fs::TAG_MAX {
            return Err(format!(
                "tag {:?} must be 1 to {} bytes",
                self.tag,
                virtio_devices::fs::TAG_MAX
            ));
        }
        let meta = std::fs::metadata(&self.socket)
            .map_err(|e| format!("fs {}: socket {}: {e}", self.fs_id, self.socket.display()))?;
        if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            return Err(format!("fs {}: {} is not a socket", self.fs_id, self.socket.display()));
        }
        if self.num_request_queues == 0 || self.num_request_queues > 8 {
            return Err(format!("num_request_queues {} is not 1-8", self.num_request_queues));
        }
        if !self.queue_size.is_power_of_two() || self.queue_size > 32768 {
            return Err(format!(
                "queue_size {} is not a power of two up to 32768",
                self.queue_size
            ));
        }
        Ok(())
    }
}

/// Adds or replaces `fs`; refuses a tag or socket another one has.
pub fn upsert_fs(all: &mut Vec<FsDevice>, fs: FsDevice) -> Result<(), String> {
    for other in all.iter().filter(|o| o.fs_id != fs.fs_id) {
        if other.tag == fs.tag {
            return Err(format!("tag {} is already used by {}", fs.tag, other.fs_id));
        }
        if other.socket == fs.socket {
            return Err(format!(
                "socket {} is already used by {}",
                fs.socket.display(),
                other.fs_id
            ));
        }
    }
    match all.iter_mut().find(|o| o.fs_id == fs.fs_id) {
        Some(o) => *o = fs,
        None => all.push(fs),
    }
    Ok(())
}

/// PUT /entropy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entropy {}

fn check_bucket(b: &Option<virtio_devices::rate_limiter::BucketConfig>) -> Result<(), String> {
    match b {
        Some(b) if b.size == 0 || b.refill_time == 0 => {
            Err("a rate_limiter bucket needs size and refill_time above zero".into())
        }
        _ => Ok(()),
    }
}

impl Drive {
    /// Checks the drive on its own; `path_id` is the id in the URL, if it came by the API.
    pub fn check(&self, path_id: Option<&str>) -> Result<(), String> {
        check_id("drive_id", &self.drive_id, path_id)?;
        let meta = std::fs::metadata(&self.path_on_host).map_err(|e| {
            format!("drive {}: {}: {e}", self.drive_id, self.path_on_host.display())
        })?;
        if !meta.is_file() {
            return Err(format!(
                "drive {}: {} is not a file",
                self.drive_id,
                self.path_on_host.display()
            ));
        }
        if let Some(c) =
            self.cache_type.as_deref().filter(|c| !matches!(*c, "Unsafe" | "Writeback"))
        {
            return Err(format!("cache_type {c:?} is not Unsafe or Writeback"));
        }
        if let Some(e) = self.io_engine.as_deref().filter(|e| *e != "Sync") {
            return Err(format!("io_engine {e:?} is not supported (Sync is)"));
        }
        if self.partuuid.is_some() && !self.is_root_device {
            return Err("partuuid only applies to the root device".into());
        }
        check_limiter(&self.rate_limiter)
    }
}

/// Adds or replaces `drive` in `drives`; refuses a second root device.
pub fn upsert(drives: &mut Vec<Drive>, drive: Drive) -> Result<(), String> {
    if drive.is_root_device
        && let Some(other) =
            drives.iter().find(|d| d.is_root_device && d.drive_id != drive.drive_id)
    {
        return Err(format!("drive {} is already the root device", other.drive_id));
    }
    match drives.iter_mut().find(|d| d.drive_id == drive.drive_id) {
        Some(d) => *d = drive,
        None => drives.push(drive),
    }
    Ok(())
}
