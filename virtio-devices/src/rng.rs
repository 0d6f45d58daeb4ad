//! virtio-rng: fills the driver's buffers from the host's getrandom.

use std::sync::Arc;

use vm_memory::GuestMemoryBackend;

use crate::active::Active;
use crate::queue::{self, Buffer};
use crate::{ActivateError, GuestMem, Interrupt, QueueConfig, VIRTIO_F_VERSION_1, VirtioDevice};

const QUEUE_SIZES: &[u16] = &[256];
const MAX_BUFFERS: usize = 64;
/// The most entropy one request gets; a driver asking for more gets this much.
const MAX_REQUEST: u64 = 64 * 1024;

#[derive(Default)]
pub struct Rng {
    active: Option<Active>,
    bufs: Vec<Buffer>,
    bytes: u64,
}

impl Rng {
    pub fn new() -> Rng {
        Rng::default()
    }

    /// Bytes handed to the guest so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn process_queue(&mut self) {
        let Some(Active { mem, queues, interrupt }) = &mut self.active else { return };
        let q = &mut queues[0];
        let mut completed = false;
        while let Some(chain) = queue::pop(q, mem) {
            let head = chain.head_index();
            let len = match queue::gather(chain, mem, MAX_BUFFERS, &mut self.bufs) {
                Err(e) => {
                    tracing::warn!("virtio-rng: refusing a chain: {e}");
                    0
                }
                Ok(()) if self.bufs.iter().any(|b| !b.writable) => {
                    tracing::warn!("virtio-rng: refusing a chain with device-readable buffers");
                    0
                }
                Ok(()) => fill(mem, &self.bufs),
            };
            self.bytes += u64::from(len);
            queue::complete(q, mem, head, len);
            completed = true;
        }
        if completed {
            queue::notify(q, mem, interrupt);
        }
    }
}

/// Fills the buffers in order, up to [`MAX_REQUEST`]; returns the bytes written.
fn fill(mem: &GuestMem, bufs: &[Buffer]) -> u32 {
    let mut total = 0u64;
    for b in bufs {
        let len = u64::from(b.len).min(MAX_REQUEST - total) as usize;
        if len == 0 {
            break;
        }
        let Ok(slice) = mem.get_slice(b.addr, len) else { break };
        let guard = slice.ptr_guard_mut();
        let mut done = 0;
        while done < len {
            // SAFETY: the slice is mapped guest memory of `len` bytes (checked when gathered);
            // getrandom writes at most `len - done` bytes from `done`.
            let n = unsafe { libc::getrandom(guard.as_ptr().add(done).cast(), len - done, 0) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::warn!("virtio-rng: getrandom: {}", std::io::Error::last_os_error());
                return total as u32 + done as u32;
            }
            done += n as usize;
        }
        total += len as u64;
    }
    total as u32
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        crate::types::ENTROPY
    }
    fn queue_max_sizes(&self) -> &[u16] {
        QUEUE_SIZES
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }
    fn ack_features(&mut self, _features: u64) {}
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    fn activate(
        &mut self,
        mem: GuestMem,
        queues: Vec<QueueConfig>,
        interrupt: Arc<dyn Interrupt>,
    ) -> Result<(), ActivateError> {
        self.active = Some(Active::new(mem, &queues, QUEUE_SIZES, interrupt)?);
        Ok(())
    }
    fn queue_notify(&mut self, _index: u16) {
        self.process_queue();
    }
    fn reset(&mut self) {
        self.active = None;
    }
    fn queue_positions(&self) -> Option<Vec<crate::QueuePosition>> {
        self.active.as_ref().map(crate::active::Active::positions)
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        vec![("bytes", self.bytes)]
    }
}
