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
        if let Some(id) = path_id
            && id != self.drive_id
        {
            return Err(format!(
                "the drive_id {:?} in the body is not the {id:?} of the path",
                self.drive_id
            ));
        }
        if self.drive_id.is_empty()
            || !self.drive_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!("drive_id {:?} must be letters, digits and _", self.drive_id));
        }
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
        if let Some(r) = &self.rate_limiter {
            check_bucket(&r.bandwidth)?;
            check_bucket(&r.ops)?;
        }
        Ok(())
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
