//! The virtio-fs device as a vhost-user frontend. The daemon connects at creation (features
//! and protocol features are settled then, before any guest code runs); on activation it gets
//! the guest memory (which must be file-backed, a memfd) and each ring. Kicks from the guest
//! reach the daemon through an eventfd the device writes on [`VirtioDevice::queue_notify`];
//! the daemon's completions come back on eventfds the device watches ([`Fs::backend_fd`]) and
//! become interrupts with the transport's status bit set, which a driver on virtio-mmio needs.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{GuestAddress, GuestMemoryBackend};
use vmm_sys_util::epoll::EpollEvent;
use vmm_sys_util::eventfd::EventFd;

use super::{FsConfig, FsError, TAG_MAX};
use crate::device::{ActivateError, Interrupt, QueueConfig, VirtioDevice, read_config_bytes};
use crate::poller::Poller;
use crate::{GuestMem, VIRTIO_F_VERSION_1, types};

/// What the guest may negotiate, when the daemon offers it too.
const GUEST_FEATURES: u64 = VIRTIO_F_VERSION_1;

fn protocol(e: impl std::fmt::Display) -> FsError {
    FsError::Protocol(e.to_string())
}

struct Active {
    /// Written on the guest's notifications; the daemon reads them.
    kicks: Vec<EventFd>,
    /// Kept alive while the daemon holds them (the poller watches them).
    _calls: Vec<EventFd>,
    interrupt: Arc<dyn Interrupt>,
}

pub struct Fs {
    config_space: Vec<u8>,
    queue_sizes: Vec<u16>,
    frontend: Frontend,
    /// The daemon's virtio features (with the vhost-user protocol bit, when offered).
    backend_features: u64,
    acked: u64,
    poller: Poller,
    active: Option<Active>,
    completions: u64,
}

impl Fs {
    /// Connects to the daemon at `config.socket` and settles what it offers.
    pub fn new(config: &FsConfig) -> Result<Fs, FsError> {
        if config.tag.is_empty() || config.tag.len() > TAG_MAX {
            return Err(FsError::BadTag(config.tag.clone()));
        }
        let queues = 1 + usize::from(config.request_queues.max(1));
        let mut frontend = Frontend::connect(&config.socket, queues as u64)
            .map_err(|e| FsError::Connect { path: config.socket.clone(), why: e.to_string() })?;
        frontend.set_owner().map_err(protocol)?;
        let backend_features = frontend.get_features().map_err(protocol)?;
        if backend_features & VIRTIO_F_VERSION_1 == 0 {
            return Err(FsError::Protocol("the daemon does not offer VIRTIO_F_VERSION_1".into()));
        }
        let protocol_bit = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        if backend_features & protocol_bit != 0 {
            // Feature bit negotiation first, so that the protocol-feature requests are allowed.
            frontend
                .set_features(backend_features & (GUEST_FEATURES | protocol_bit))
                .map_err(protocol)?;
            let offered = frontend.get_protocol_features().map_err(protocol)?;
            let wanted = VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK;
            frontend.set_protocol_features(offered & wanted).map_err(protocol)?;
        }
        let mut config_space = vec![0u8; TAG_MAX + 4];
        config_space[..config.tag.len()].copy_from_slice(config.tag.as_bytes());
        config_space[TAG_MAX..]
            .copy_from_slice(&u32::from(config.request_queues.max(1)).to_le_bytes());
        Ok(Fs {
            config_space,
            queue_sizes: vec![config.queue_size; queues],
            frontend,
            backend_features,
            acked: 0,
            poller: Poller::new()?,
            active: None,
            completions: 0,
        })
    }

    /// The daemon's view of the guest memory: every region with its file and offset.
    fn regions(mem: &GuestMem) -> Result<Vec<VhostUserMemoryRegionInfo>, ActivateError> {
        mem.iter()
            .map(|r| {
                VhostUserMemoryRegionInfo::from_guest_region(r).map_err(|_| {
                    ActivateError::Invalid(
                        "virtio-fs needs guest memory backed by a file (a memfd) that the \
                         daemon can map"
                            .into(),
                    )
                })
            })
            .collect()
    }

    fn host_address(mem: &GuestMem, gpa: u64, what: &str) -> Result<u64, ActivateError> {
        mem.get_host_address(GuestAddress(gpa)).map(|p| p as u64).map_err(|_| {
            ActivateError::Invalid(format!("the {what} at {gpa:#x} is not in guest memory"))
        })
    }

    fn setup(
        &mut self,
        mem: &GuestMem,
        queues: &[QueueConfig],
    ) -> Result<(Vec<EventFd>, Vec<EventFd>), ActivateError> {
        let fail = |e: vhost::Error| ActivateError::Invalid(format!("vhost-user: {e}"));
        let protocol_bit = VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        self.frontend
            .set_features(self.acked | (self.backend_features & protocol_bit))
            .map_err(fail)?;
        self.frontend.set_mem_table(&Self::regions(mem)?).map_err(fail)?;
        let (mut kicks, mut calls) = (Vec::new(), Vec::new());
        for (i, q) in queues.iter().enumerate() {
            // Rings in the daemon's terms: addresses in this process, which it translates
            // through the memory table.
            let ring = VringConfigData {
                queue_max_size: self.queue_sizes[i],
                queue_size: q.size,
                flags: 0,
                desc_table_addr: Self::host_address(mem, q.desc, "descriptor table")?,
                used_ring_addr: Self::host_address(mem, q.used, "used ring")?,
                avail_ring_addr: Self::host_address(mem, q.avail, "available ring")?,
                log_addr: None,
            };
            let kick = EventFd::new(libc::EFD_NONBLOCK)?;
            let call = EventFd::new(libc::EFD_NONBLOCK)?;
            self.frontend.set_vring_num(i, q.size).map_err(fail)?;
            self.frontend.set_vring_addr(i, &ring).map_err(fail)?;
            self.frontend.set_vring_base(i, q.position.next_avail).map_err(fail)?;
            self.frontend.set_vring_call(i, &call).map_err(fail)?;
            self.frontend.set_vring_kick(i, &kick).map_err(fail)?;
            if self.backend_features & protocol_bit != 0 {
                self.frontend.set_vring_enable(i, true).map_err(fail)?;
            }
            self.poller.add(call.as_raw_fd(), i as u64)?;
            kicks.push(kick);
            calls.push(call);
        }
        Ok((kicks, calls))
    }

    /// Stops the daemon's rings (GET_VRING_BASE stops a ring) and forgets them.
    fn stop(&mut self) {
        if let Some(active) = self.active.take() {
            for (i, call) in active._calls.iter().enumerate() {
                let _ = self.poller.remove(call.as_raw_fd());
                if let Err(e) = self.frontend.get_vring_base(i) {
                    tracing::warn!("virtio-fs: stopping ring {i}: {e}");
                }
            }
        }
    }
}

impl VirtioDevice for Fs {
    fn device_type(&self) -> u32 {
        types::FS
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn features(&self) -> u64 {
        self.backend_features & GUEST_FEATURES
    }

    fn ack_features(&mut self, features: u64) {
        self.acked = features & self.features();
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config_space, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // The tag and queue count are the device's; the driver writes nothing here.
    }

    fn activate(
        &mut self,
        mem: GuestMem,
        queues: Vec<QueueConfig>,
        interrupt: Arc<dyn Interrupt>,
    ) -> Result<(), ActivateError> {
        if queues.len() != self.queue_sizes.len() {
            return Err(ActivateError::Invalid(format!(
                "virtio-fs has {} queues, the driver set up {}",
                self.queue_sizes.len(),
                queues.len()
            )));
        }
        let (kicks, calls) = self.setup(&mem, &queues)?;
        self.active = Some(Active { kicks, _calls: calls, interrupt });
        Ok(())
    }

    fn queue_notify(&mut self, index: u16) {
        if let Some(kick) = self.active.as_ref().and_then(|a| a.kicks.get(usize::from(index))) {
            let _ = kick.write(1);
        }
    }

    fn reset(&mut self) {
        self.stop();
        self.acked = 0;
    }

    fn backend_fd(&self) -> Option<RawFd> {
        Some(self.poller.as_raw_fd())
    }

    fn backend_ready(&mut self) {
        let mut events = [EpollEvent::default(); 8];
        let n = self.poller.ready(&mut events);
        let Some(active) = &self.active else { return };
        let mut any = false;
        for ev in &events[..n] {
            if let Some(call) = active._calls.get(ev.data() as usize) {
                any |= call.read().is_ok();
            }
        }
        if any {
            self.completions += 1;
            active.interrupt.used_buffers();
        }
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        vec![("completions", self.completions)]
    }
}

impl Drop for Fs {
    fn drop(&mut self) {
        self.stop();
    }
}
