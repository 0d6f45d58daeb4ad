//! The virtio-mmio transport (virtio 1.x, modern only): the register window a driver probes
//! and programs, feature negotiation, queue setup, the device status state machine, and the
//! interrupt status the device raises. A driver that breaks the rules gets the device marked
//! FAILED (DEVICE_NEEDS_RESET), never a crash.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use virtio_devices::{
    GuestMem, Interrupt, QueueConfig, QueuePosition, VIRTIO_F_VERSION_1, VirtioDevice,
};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;
use crate::snapshot::state::{QueueState, TransportState};

const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR: u32 = 0x5246_4e47; // "RFNG"
/// Offset of QueueNotify (where ioeventfds are registered).
pub const NOTIFY_OFFSET: u64 = 0x50;
const CONFIG_OFFSET: u64 = 0x100;

pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    pub const FAILED: u32 = 128;
}

const INT_USED: u32 = 1;
const INT_CONFIG: u32 = 2;

/// The interrupt line of one device: status bits the driver reads, and an eventfd (an irqfd
/// once registered with KVM) that raises the line.
pub struct MmioInterrupt {
    pub status: AtomicU32,
    pub line: EventFd,
}

impl MmioInterrupt {
    fn raise(&self, bit: u32) {
        self.status.fetch_or(bit, Ordering::SeqCst);
        self.pulse();
    }

    fn pulse(&self) {
        if let Err(e) = self.line.write(1) {
            tracing::warn!("raising a virtio interrupt: {e}");
        }
    }

    /// Raises the line again if the driver has status bits to read: after a restore, whose
    /// devices may raise it (a vsock transport reset) before any vCPU exists to take it.
    pub fn reassert(&self) {
        if self.status.load(Ordering::SeqCst) != 0 {
            self.pulse();
        }
    }
}

impl Interrupt for MmioInterrupt {
    fn used_buffers(&self) {
        self.raise(INT_USED);
    }
    fn config_changed(&self) {
        self.raise(INT_CONFIG);
    }
}

#[derive(Default, Clone, Copy)]
struct Queue {
    size: u16,
    ready: bool,
    desc: u64,
    avail: u64,
    used: u64,
}

impl Queue {
    /// What the device is activated with, resuming at `position`.
    fn config(&self, position: QueuePosition) -> QueueConfig {
        QueueConfig {
            size: self.size,
            desc: self.desc,
            avail: self.avail,
            used: self.used,
            position,
        }
    }
}

pub struct MmioTransport {
    device: Arc<Mutex<dyn VirtioDevice>>,
    mem: GuestMem,
    interrupt: Arc<MmioInterrupt>,
    status: u32,
    features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: Vec<Queue>,
    config_generation: u32,
    activated: bool,
}

fn set_half(v: &mut u64, high: bool, half: u32) {
    *v = if high {
        (*v & 0xffff_ffff) | (u64::from(half) << 32)
    } else {
        (*v & !0xffff_ffff) | u64::from(half)
    };
}

impl MmioTransport {
    pub fn new(
        device: Arc<Mutex<dyn VirtioDevice>>,
        mem: GuestMem,
    ) -> std::io::Result<MmioTransport> {
        let n = device.lock().unwrap_or_else(|e| e.into_inner()).queue_max_sizes().len();
        Ok(MmioTransport {
            device,
            mem,
            interrupt: Arc::new(MmioInterrupt {
                status: AtomicU32::new(0),
                line: EventFd::new(libc::EFD_NONBLOCK)?,
            }),
            status: 0,
            features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues: vec![Queue::default(); n],
            config_generation: 0,
            activated: false,
        })
    }

    pub fn interrupt(&self) -> &Arc<MmioInterrupt> {
        &self.interrupt
    }

    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    fn dev(&self) -> std::sync::MutexGuard<'_, dyn VirtioDevice + 'static> {
        self.device.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue_max(&self) -> u16 {
        self.dev().queue_max_sizes().get(self.queue_sel as usize).copied().unwrap_or(0)
    }

    fn fail(&mut self, why: &str) {
        tracing::warn!("virtio-mmio: {why}; the device needs a reset");
        self.status |= status::DEVICE_NEEDS_RESET;
    }

    fn reset(&mut self) {
        self.dev().reset();
        let n = self.queues.len();
        self.status = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.queues = vec![Queue::default(); n];
        self.interrupt.status.store(0, Ordering::SeqCst);
        self.activated = false;
    }

    fn write_status(&mut self, v: u32) {
        if v == 0 {
            self.reset();
            return;
        }
        // Bits are only ever added, in order (virtio 1.x 3.1.1).
        if v & self.status != self.status {
            return self.fail("the driver cleared status bits");
        }
        let new = v & !self.status;
        if new & status::FEATURES_OK != 0 {
            let offered = self.dev().features();
            if self.driver_features & !offered != 0
                || self.driver_features & VIRTIO_F_VERSION_1 == 0
            {
                // Not accepting: FEATURES_OK stays clear, as the spec says.
                self.status = v & !status::FEATURES_OK;
                return;
            }
            let f = self.driver_features;
            self.dev().ack_features(f);
        }
        if new & status::DRIVER_OK != 0 && !self.activated {
            if self.status & status::FEATURES_OK == 0 && v & status::FEATURES_OK == 0 {
                return self.fail("DRIVER_OK before FEATURES_OK");
            }
            let queues: Vec<QueueConfig> = self
                .queues
                .iter()
                .filter(|q| q.ready)
                .map(|q| q.config(QueuePosition::default()))
                .collect();
            let interrupt: Arc<dyn Interrupt> = self.interrupt.clone();
            let mem = self.mem.clone();
            let activated = self.dev().activate(mem, queues, interrupt);
            match activated {
                Ok(()) => self.activated = true,
                Err(e) => return self.fail(&format!("activation failed: {e}")),
            }
        }
        self.status = v;
    }

    /// Flushes what the device wrote on the host (before a snapshot).
    pub fn quiesce(&self) -> std::io::Result<()> {
        self.dev().quiesce()
    }

    /// Registers and queue progress, for a snapshot of a paused machine. A device that does
    /// not track its progress (a vhost-user one) is taken to have used all it took: the used
    /// ring's index in guest memory stands for both.
    pub fn state(&self) -> TransportState {
        let dev = self.dev();
        let positions = if self.activated { dev.queue_positions() } else { None };
        let mut ready = 0;
        let queues = self
            .queues
            .iter()
            .map(|q| {
                let mut position = QueuePosition::default();
                if self.activated && q.ready {
                    position = match &positions {
                        Some(p) => p.get(ready).copied().unwrap_or_default(),
                        None => {
                            let idx =
                                self.mem.read_obj::<u16>(GuestAddress(q.used + 2)).unwrap_or(0);
                            QueuePosition { next_avail: idx, next_used: idx }
                        }
                    };
                    ready += 1;
                }
                QueueState {
                    size: q.size,
                    ready: q.ready,
                    desc: q.desc,
                    avail: q.avail,
                    used: q.used,
                    position,
                }
            })
            .collect();
        TransportState {
            device_type: dev.device_type(),
            status: self.status,
            features_sel: self.features_sel,
            driver_features_sel: self.driver_features_sel,
            driver_features: self.driver_features,
            queue_sel: self.queue_sel,
            queues,
            config_generation: self.config_generation,
            interrupt_status: self.interrupt.status.load(Ordering::SeqCst),
            activated: self.activated,
        }
    }

    /// Takes a snapshot's registers and, if the driver had started the device, activates it
    /// where it stood. Called once the interrupt line and notifications are wired.
    pub fn restore(&mut self, s: &TransportState) -> Result<(), String> {
        let ty = self.dev().device_type();
        if s.device_type != ty || s.queues.len() != self.queues.len() {
            return Err(format!(
                "the snapshot has a type {} device with {} queues where this machine has a type                  {ty} device with {}",
                s.device_type,
                s.queues.len(),
                self.queues.len()
            ));
        }
        self.status = s.status;
        self.features_sel = s.features_sel;
        self.driver_features_sel = s.driver_features_sel;
        self.driver_features = s.driver_features;
        self.queue_sel = s.queue_sel;
        self.config_generation = s.config_generation;
        let queue = |q: &QueueState| Queue {
            size: q.size,
            ready: q.ready,
            desc: q.desc,
            avail: q.avail,
            used: q.used,
        };
        self.queues = s.queues.iter().map(queue).collect();
        self.interrupt.status.store(s.interrupt_status, Ordering::SeqCst);
        if !s.activated {
            return Ok(());
        }
        let f = self.driver_features;
        self.dev().ack_features(f);
        let queues: Vec<QueueConfig> =
            s.queues.iter().filter(|q| q.ready).map(|q| queue(q).config(q.position)).collect();
        let interrupt: Arc<dyn Interrupt> = self.interrupt.clone();
        let mem = self.mem.clone();
        let mut dev = self.dev();
        dev.activate(mem, queues, interrupt)
            .map_err(|e| format!("re-activating a type {ty} device: {e}"))?;
        dev.restored();
        drop(dev);
        self.activated = true;
        Ok(())
    }

    fn queue_mut(&mut self) -> Option<&mut Queue> {
        // Queue registers only change before the device runs.
        if self.activated {
            return None;
        }
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn read_reg(&self, offset: u64) -> u32 {
        let q = self.queues.get(self.queue_sel as usize);
        match offset {
            0x000 => MAGIC,
            0x004 => VERSION,
            0x008 => self.dev().device_type(),
            0x00c => VENDOR,
            0x010 => {
                let f = self.dev().features();
                match self.features_sel {
                    0 => f as u32,
                    1 => (f >> 32) as u32,
                    _ => 0,
                }
            }
            0x034 => u32::from(self.queue_max()),
            0x044 => u32::from(q.is_some_and(|q| q.ready)),
            0x060 => self.interrupt.status.load(Ordering::SeqCst),
            0x070 => self.status,
            0x0fc => self.config_generation,
            _ => 0,
        }
    }

    fn write_reg(&mut self, offset: u64, v: u32) {
        match offset {
            0x014 => self.features_sel = v,
            0x020 => match self.driver_features_sel {
                0 => set_half(&mut self.driver_features, false, v),
                1 => set_half(&mut self.driver_features, true, v),
                _ => {}
            },
            0x024 => self.driver_features_sel = v,
            0x030 => self.queue_sel = v,
            0x038 => {
                let max = self.queue_max();
                // A size must be a power of two no larger than the maximum.
                if v == 0 || v > u32::from(max) || !v.is_power_of_two() {
                    return self.fail("invalid queue size");
                }
                if let Some(q) = self.queue_mut() {
                    q.size = v as u16;
                }
            }
            0x044 => {
                if let Some(q) = self.queue_mut() {
                    q.ready = v == 1 && q.size != 0;
                }
            }
            NOTIFY_OFFSET if self.activated && (v as usize) < self.queues.len() => {
                self.dev().queue_notify(v as u16);
            }
            0x064 => {
                self.interrupt.status.fetch_and(!v, Ordering::SeqCst);
            }
            0x070 => self.write_status(v),
            0x080 | 0x084 | 0x090 | 0x094 | 0x0a0 | 0x0a4 => {
                let high = offset & 4 != 0;
                if let Some(q) = self.queue_mut() {
                    let field = match offset & !4 {
                        0x080 => &mut q.desc,
                        0x090 => &mut q.avail,
                        _ => &mut q.used,
                    };
                    set_half(field, high, v);
                }
            }
            _ => {}
        }
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_OFFSET {
            self.dev().read_config(offset - CONFIG_OFFSET, data);
            return;
        }
        // Registers are 32 bits wide and aligned; anything else reads as zero.
        if data.len() == 4 && offset.is_multiple_of(4) {
            data.copy_from_slice(&self.read_reg(offset).to_le_bytes());
        } else {
            data.fill(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_OFFSET {
            self.dev().write_config(offset - CONFIG_OFFSET, data);
            self.config_generation = self.config_generation.wrapping_add(1);
            return;
        }
        if let (Ok(b), true) = (<[u8; 4]>::try_from(data), offset.is_multiple_of(4)) {
            self.write_reg(offset, u32::from_le_bytes(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Dummy {
        acked: u64,
        active: Vec<QueueConfig>,
        notified: Vec<u16>,
    }

    impl VirtioDevice for Dummy {
        fn device_type(&self) -> u32 {
            virtio_devices::types::ENTROPY
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[256]
        }
        fn features(&self) -> u64 {
            VIRTIO_F_VERSION_1 | 1
        }
        fn ack_features(&mut self, f: u64) {
            self.acked = f;
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write_config(&mut self, _o: u64, _d: &[u8]) {}
        fn activate(
            &mut self,
            _m: GuestMem,
            q: Vec<QueueConfig>,
            _i: Arc<dyn Interrupt>,
        ) -> Result<(), virtio_devices::ActivateError> {
            self.active = q;
            Ok(())
        }
        fn queue_notify(&mut self, i: u16) {
            self.notified.push(i);
        }
        fn reset(&mut self) {
            self.active.clear();
        }
    }

    fn mem() -> GuestMem {
        GuestMem::from_ranges(&[(vm_memory::GuestAddress(0), 1 << 20)]).unwrap()
    }

    fn rd(t: &mut MmioTransport, off: u64) -> u32 {
        let mut b = [0u8; 4];
        t.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn wr(t: &mut MmioTransport, off: u64, v: u32) {
        t.write(off, &v.to_le_bytes());
    }

    #[test]
    fn a_driver_negotiates_sets_up_a_queue_and_activates() {
        let dev = Arc::new(Mutex::new(Dummy::default()));
        let mut t = MmioTransport::new(dev.clone(), mem()).unwrap();
        assert_eq!((rd(&mut t, 0), rd(&mut t, 4), rd(&mut t, 8)), (MAGIC, 2, 4));
        wr(&mut t, 0x70, status::ACKNOWLEDGE | status::DRIVER);
        wr(&mut t, 0x14, 1);
        assert_eq!(rd(&mut t, 0x10), 1, "VERSION_1 in the high word");
        // Without VERSION_1 the features are refused.
        wr(&mut t, 0x24, 0);
        wr(&mut t, 0x20, 1);
        wr(&mut t, 0x70, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
        assert_eq!(rd(&mut t, 0x70) & status::FEATURES_OK, 0);
        wr(&mut t, 0x24, 1);
        wr(&mut t, 0x20, 1);
        wr(&mut t, 0x70, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
        assert_ne!(rd(&mut t, 0x70) & status::FEATURES_OK, 0);
        assert_eq!(dev.lock().unwrap().acked, VIRTIO_F_VERSION_1 | 1);
        wr(&mut t, 0x30, 0);
        assert_eq!(rd(&mut t, 0x34), 256);
        wr(&mut t, 0x38, 128);
        wr(&mut t, 0x80, 0x1000);
        wr(&mut t, 0x90, 0x2000);
        wr(&mut t, 0xa0, 0x3000);
        wr(&mut t, 0xa4, 1);
        wr(&mut t, 0x44, 1);
        wr(&mut t, 0x70, 0xf);
        let active = dev.lock().unwrap().active.clone();
        assert_eq!(
            active,
            vec![QueueConfig {
                size: 128,
                desc: 0x1000,
                avail: 0x2000,
                used: 0x1_0000_3000,
                ..Default::default()
            }]
        );
        wr(&mut t, NOTIFY_OFFSET, 0);
        wr(&mut t, NOTIFY_OFFSET, 7); // no such queue: ignored
        assert_eq!(dev.lock().unwrap().notified, vec![0]);
        t.interrupt().used_buffers();
        assert_eq!(rd(&mut t, 0x60), 1);
        wr(&mut t, 0x64, 1);
        assert_eq!(rd(&mut t, 0x60), 0);
        let mut cfg = [0u8; 2];
        t.read(0x104, &mut cfg);
        assert_eq!(cfg, [4, 4]);
        wr(&mut t, 0x70, 0);
        assert_eq!(rd(&mut t, 0x70), 0);
        assert!(dev.lock().unwrap().active.is_empty());
    }

    #[test]
    fn a_misbehaving_driver_gets_a_device_that_needs_a_reset() {
        let dev = Arc::new(Mutex::new(Dummy::default()));
        let mut t = MmioTransport::new(dev.clone(), mem()).unwrap();
        wr(&mut t, 0x38, 1000); // not a power of two, above the maximum
        assert_ne!(rd(&mut t, 0x70) & status::DEVICE_NEEDS_RESET, 0);
        wr(&mut t, 0x70, 0);
        wr(&mut t, 0x70, status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK);
        assert_ne!(
            rd(&mut t, 0x70) & status::DEVICE_NEEDS_RESET,
            0,
            "DRIVER_OK before FEATURES_OK"
        );
        assert!(dev.lock().unwrap().active.is_empty());
        // Odd sizes and offsets change nothing and read as zero.
        t.write(0x70, &[0xff]);
        let mut b = [0u8; 2];
        t.read(0x0, &mut b);
        assert_eq!(b, [0, 0]);
    }
}
