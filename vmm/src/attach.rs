//! The API's device resources turned into virtio devices, in the order the guest will see
//! them (drives with the root drive first, so it is /dev/vda; network interfaces; vsock;
//! entropy; shared directories),
//! and the command-line words they need.

use std::sync::{Arc, Mutex};

use virtio_devices::VirtioDevice;
use virtio_devices::block::{Block, BlockConfig};
use virtio_devices::net::{Net, NetConfig};
use virtio_devices::rng::Rng;
use virtio_devices::vsock::{Vsock as VsockDevice, VsockConfig};

use crate::VmmError;
use crate::api::devices::parse_mac;
use crate::api::{Drive, Entropy, FsDevice, NetworkInterface, Vsock};

/// Devices for the machine, and what to add to the kernel command line.
pub struct Attached {
    pub devices: Vec<Arc<Mutex<dyn VirtioDevice>>>,
    pub cmdline: String,
}

pub fn devices(
    drives: &[Drive],
    ifaces: &[NetworkInterface],
    vsock: Option<&Vsock>,
    entropy: Option<&Entropy>,
    fs: &[FsDevice],
) -> Result<Attached, VmmError> {
    let mut ordered: Vec<&Drive> = drives.iter().filter(|d| d.is_root_device).collect();
    ordered.extend(drives.iter().filter(|d| !d.is_root_device));
    let mut devices: Vec<Arc<Mutex<dyn VirtioDevice>>> = Vec::new();
    let mut cmdline = String::new();
    for d in ordered {
        let block = Block::new(&BlockConfig {
            path: d.path_on_host.clone(),
            read_only: d.is_read_only,
            serial: Some(d.drive_id.clone()),
            rate_limiter: d.rate_limiter,
        })
        .map_err(|e| VmmError::Config(format!("drive {}: {e}", d.drive_id)))?;
        if d.is_root_device {
            let root = match &d.partuuid {
                Some(p) => format!("PARTUUID={p}"),
                None => "/dev/vda".into(),
            };
            let mode = if d.is_read_only { "ro" } else { "rw" };
            cmdline = format!("root={root} {mode}");
        }
        devices.push(Arc::new(Mutex::new(block)));
    }
    for i in ifaces {
        let mac = i.guest_mac.as_deref().map(parse_mac).transpose().map_err(VmmError::Config)?;
        let net = Net::new(&NetConfig {
            tap: i.host_dev_name.clone(),
            mac,
            rx_rate_limiter: i.rx_rate_limiter,
            tx_rate_limiter: i.tx_rate_limiter,
        })
        .map_err(|e| VmmError::Config(format!("network interface {}: {e}", i.iface_id)))?;
        devices.push(Arc::new(Mutex::new(net)));
    }
    if let Some(v) = vsock {
        let dev = VsockDevice::new(&VsockConfig {
            guest_cid: u64::from(v.guest_cid),
            uds_path: v.uds_path.clone(),
        })
        .map_err(|e| VmmError::Config(format!("vsock: {e}")))?;
        devices.push(Arc::new(Mutex::new(dev)));
    }
    if entropy.is_some() {
        devices.push(Arc::new(Mutex::new(Rng::new())));
    }
    for f in fs {
        let dev = virtio_devices::fs::Fs::new(&virtio_devices::fs::FsConfig {
            tag: f.tag.clone(),
            socket: f.socket.clone(),
            request_queues: f.num_request_queues,
            queue_size: f.queue_size,
        })
        .map_err(|e| VmmError::Config(format!("fs {}: {e}", f.fs_id)))?;
        devices.push(Arc::new(Mutex::new(dev)));
    }
    Ok(Attached { devices, cmdline })
}
