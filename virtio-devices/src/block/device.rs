//! The virtio-blk device: its config space and features, and serving its one request queue.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;

use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK,
};
use virtio_queue::QueueOwnedT;
use vm_memory::{Bytes, GuestAddress};

use super::request::{self, Disk, Kind, Request, RequestError, SECTOR};
use crate::active::Active;
use crate::iov::{self, Direction};
use crate::queue::{self, Buffer};
use crate::rate_limiter::{RateLimiter, RateLimiterConfig, RateLimiterError};
use crate::{ActivateError, GuestMem, Interrupt, QueueConfig, VIRTIO_F_VERSION_1, VirtioDevice};

const QUEUE_SIZES: &[u16] = &[256];
/// Header + data segments + status.
const MAX_BUFFERS: usize = request::SEG_MAX as usize + 2;
const CONFIG_LEN: usize = 60;

/// How a disk is attached.
#[derive(Debug, Clone, Default)]
pub struct BlockConfig {
    pub path: PathBuf,
    pub read_only: bool,
    /// What GET_ID answers (at most 20 bytes are used).
    pub serial: Option<String>,
    pub rate_limiter: Option<RateLimiterConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("opening the disk image {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("the disk image {0} is not a whole number of 512-byte sectors")]
    NotSectors(PathBuf),
    #[error(transparent)]
    RateLimiter(#[from] RateLimiterError),
}

/// What the device has done, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockStats {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub flushes: u64,
    pub requests: u64,
    pub refused: u64,
    pub io_errors: u64,
    pub throttled: u64,
}

pub struct Block {
    file: File,
    disk: Disk,
    serial: [u8; request::ID_LEN],
    config: [u8; CONFIG_LEN],
    limiter: Option<RateLimiter>,
    active: Option<Active>,
    bufs: Vec<Buffer>,
    stats: BlockStats,
}

fn put(config: &mut [u8], at: usize, bytes: &[u8]) {
    config[at..at + bytes.len()].copy_from_slice(bytes);
}

impl Block {
    pub fn new(cfg: &BlockConfig) -> Result<Block, BlockError> {
        let open_err = |source| BlockError::Open { path: cfg.path.clone(), source };
        let file = OpenOptions::new()
            .read(true)
            .write(!cfg.read_only)
            .open(&cfg.path)
            .map_err(open_err)?;
        let len = file.metadata().map_err(open_err)?.len();
        if !len.is_multiple_of(SECTOR) {
            return Err(BlockError::NotSectors(cfg.path.clone()));
        }
        let mut serial = [0u8; request::ID_LEN];
        if let Some(s) = &cfg.serial {
            let n = s.len().min(serial.len());
            serial[..n].copy_from_slice(&s.as_bytes()[..n]);
        }
        let sectors = len / SECTOR;
        // virtio_blk_config, little-endian, fields the features announce.
        let mut config = [0u8; CONFIG_LEN];
        put(&mut config, 0, &sectors.to_le_bytes());
        put(&mut config, 12, &request::SEG_MAX.to_le_bytes());
        put(&mut config, 20, &(SECTOR as u32).to_le_bytes());
        let max_sectors = u32::MAX >> 9;
        put(&mut config, 36, &max_sectors.to_le_bytes()); // max_discard_sectors
        put(&mut config, 40, &request::MAX_RANGES.to_le_bytes()); // max_discard_seg
        put(&mut config, 44, &8u32.to_le_bytes()); // discard_sector_alignment
        put(&mut config, 48, &max_sectors.to_le_bytes()); // max_write_zeroes_sectors
        put(&mut config, 52, &request::MAX_RANGES.to_le_bytes()); // max_write_zeroes_seg
        config[56] = 1; // write_zeroes_may_unmap
        Ok(Block {
            file,
            disk: Disk { sectors, read_only: cfg.read_only },
            serial,
            config,
            limiter: cfg.rate_limiter.as_ref().map(RateLimiter::new).transpose()?,
            active: None,
            bufs: Vec::with_capacity(MAX_BUFFERS),
            stats: BlockStats::default(),
        })
    }

    pub fn stats(&self) -> BlockStats {
        self.stats
    }

    /// Serves every available request, stopping early only when the rate limiter says so.
    pub fn process_queue(&mut self) {
        let Some(active) = &mut self.active else { return };
        let Active { mem, queues, interrupt } = active;
        let q = &mut queues[0];
        let mut completed = false;
        while self.limiter.as_ref().is_none_or(|l| !l.is_blocked()) {
            let Some(chain) = queue::pop(q, mem) else { break };
            let head = chain.head_index();
            let spare = chain.clone();
            let len = match queue::gather(chain, mem, MAX_BUFFERS, &mut self.bufs) {
                Err(e) => {
                    tracing::warn!("virtio-blk: refusing a chain: {e}");
                    self.stats.refused += 1;
                    refuse_chain(mem, spare)
                }
                Ok(()) => match request::parse(mem, &self.bufs, &self.disk) {
                    Err(RequestError::NoStatus) => {
                        tracing::warn!("virtio-blk: a request without a status byte");
                        self.stats.refused += 1;
                        0
                    }
                    Err(RequestError::Refused { status, code, why }) => {
                        tracing::debug!("virtio-blk: refusing a request: {why}");
                        self.stats.refused += 1;
                        write_status(mem, status, code);
                        1
                    }
                    Ok(req) => {
                        if let Some(l) = &mut self.limiter
                            && !l.consume(req.data_len)
                        {
                            self.stats.throttled += 1;
                            q.go_to_previous_position();
                            break;
                        }
                        let (len, result) = execute(
                            &self.file,
                            &self.serial,
                            mem,
                            &self.bufs,
                            &req,
                            &mut self.stats,
                        );
                        let code = match result {
                            Ok(()) => VIRTIO_BLK_S_OK,
                            Err(e) => {
                                tracing::warn!(
                                    "virtio-blk: {:?} at sector {}: {e}",
                                    req.kind,
                                    req.sector
                                );
                                self.stats.io_errors += 1;
                                VIRTIO_BLK_S_IOERR
                            }
                        };
                        write_status(mem, req.status, code as u8);
                        self.stats.requests += 1;
                        len
                    }
                },
            };
            queue::complete(q, mem, head, len);
            completed = true;
        }
        if completed {
            queue::notify(q, mem, interrupt);
        }
    }
}

fn write_status(mem: &GuestMem, at: GuestAddress, code: u8) {
    if let Err(e) = mem.write_obj(code, at) {
        tracing::warn!("virtio-blk: writing a status byte: {e}");
    }
}

/// A chain that could not be gathered still gets IOERR if it properly ends in a writable
/// byte inside guest memory (e.g. it only had too many segments); returns the used length.
fn refuse_chain<M>(mem: &GuestMem, chain: virtio_queue::DescriptorChain<M>) -> u32
where
    M: std::ops::Deref,
    M::Target: vm_memory::GuestMemory,
{
    let Some(last) = chain.last() else { return 0 };
    if last.has_next() || !last.is_write_only() || last.len() == 0 {
        return 0;
    }
    let Some(at) = last.addr().0.checked_add(u64::from(last.len()) - 1) else { return 0 };
    match mem.write_obj(VIRTIO_BLK_S_IOERR as u8, GuestAddress(at)) {
        Ok(()) => 1,
        Err(_) => 0,
    }
}

/// Does `req`; returns the used length and whether the I/O worked.
fn execute(
    file: &File,
    serial: &[u8],
    mem: &GuestMem,
    bufs: &[Buffer],
    req: &Request,
    stats: &mut BlockStats,
) -> (u32, std::io::Result<()>) {
    let mut iovs = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; iov::MAX_IOVECS];
    let offset = req.sector * SECTOR;
    match req.kind {
        Kind::In => {
            let r =
                iov::iovecs(mem, bufs.iter().filter(|b| b.writable), 0, req.data_len, &mut iovs)
                    .and_then(|n| iov::file_io(file, Direction::Read, &mut iovs[..n], offset));
            if r.is_ok() {
                stats.read_bytes += req.data_len;
            }
            (req.data_len as u32 + 1, r)
        }
        Kind::Out => {
            let r = iov::iovecs(
                mem,
                bufs.iter().filter(|b| !b.writable),
                req.data_skip,
                req.data_len,
                &mut iovs,
            )
            .and_then(|n| iov::file_io(file, Direction::Write, &mut iovs[..n], offset));
            if r.is_ok() {
                stats.write_bytes += req.data_len;
            }
            (1, r)
        }
        Kind::Flush => {
            stats.flushes += 1;
            (1, file.sync_data())
        }
        Kind::GetId => {
            let n = req.data_len as usize;
            let r = iov::write_bytes(mem, bufs.iter().filter(|b| b.writable), 0, &serial[..n]);
            (n as u32 + 1, r)
        }
        Kind::Discard => {
            // Discard is advisory: a file system without hole punching just keeps the data.
            let r = match punch(file, req.range, libc::FALLOC_FL_PUNCH_HOLE) {
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
                r => r,
            };
            (1, r)
        }
        Kind::WriteZeroes { unmap } => {
            let mode = if unmap { libc::FALLOC_FL_PUNCH_HOLE } else { libc::FALLOC_FL_ZERO_RANGE };
            let r = match punch(file, req.range, mode) {
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => zero_fill(file, req.range),
                r => r,
            };
            (1, r)
        }
    }
}

fn punch(file: &File, (sector, count): (u64, u64), mode: libc::c_int) -> std::io::Result<()> {
    let off = libc::off_t::try_from(sector * SECTOR).map_err(std::io::Error::other)?;
    let len = libc::off_t::try_from(count * SECTOR).map_err(std::io::Error::other)?;
    if len == 0 {
        return Ok(());
    }
    // SAFETY: fallocate on a file we own, with plain integer arguments.
    let rc =
        unsafe { libc::fallocate(file.as_raw_fd(), mode | libc::FALLOC_FL_KEEP_SIZE, off, len) };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

fn zero_fill(file: &File, (sector, count): (u64, u64)) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    static ZEROES: [u8; 64 * 1024] = [0; 64 * 1024];
    let (mut at, end) = (sector * SECTOR, (sector + count) * SECTOR);
    while at < end {
        let n = (end - at).min(ZEROES.len() as u64) as usize;
        file.write_all_at(&ZEROES[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        crate::types::BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        QUEUE_SIZES
    }

    fn features(&self) -> u64 {
        let mut f = VIRTIO_F_VERSION_1
            | 1 << VIRTIO_BLK_F_SEG_MAX
            | 1 << VIRTIO_BLK_F_BLK_SIZE
            | 1 << VIRTIO_BLK_F_FLUSH
            | 1 << VIRTIO_BLK_F_DISCARD
            | 1 << VIRTIO_BLK_F_WRITE_ZEROES;
        if self.disk.read_only {
            f |= 1 << VIRTIO_BLK_F_RO;
        }
        f
    }

    fn ack_features(&mut self, _features: u64) {}

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        crate::device::read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // Nothing in the config is writable without CONFIG_WCE, which is not offered.
    }

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

    fn backend_fd(&self) -> Option<RawFd> {
        self.limiter.as_ref().map(RateLimiter::timer_fd)
    }

    fn quiesce(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    fn queue_positions(&self) -> Option<Vec<crate::QueuePosition>> {
        self.active.as_ref().map(crate::active::Active::positions)
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        let s = &self.stats;
        vec![
            ("read_bytes", s.read_bytes),
            ("write_bytes", s.write_bytes),
            ("flushes", s.flushes),
            ("requests", s.requests),
            ("refused", s.refused),
            ("io_errors", s.io_errors),
            ("throttled", s.throttled),
        ]
    }

    fn backend_ready(&mut self) {
        if let Some(l) = &mut self.limiter {
            l.timer_fired();
        }
        self.process_queue();
    }
}
