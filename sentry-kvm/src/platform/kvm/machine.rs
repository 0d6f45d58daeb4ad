//! The KVM virtual machine of one sandbox: guest memory, the CPL0 region, and a pool of vCPUs.

use crate::sync::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_userspace_memory_region};
use kvm_ioctls::{Cap, Kvm, VmFd};

use super::layout::{self, REGION_SIZE};
use super::trampoline;
use super::vcpu::Vcpu;
use crate::mm::frames::{FrameAllocator, TranslationFlush};
use crate::mm::phys::PhysMemory;
use crate::mm::{PAGE_SIZE, PhysAddr, Physical};
use crate::platform::{Cpu, Platform, PlatformError};

/// Guest-physical memory must stay below the address given to KVM_SET_TSS_ADDR.
const TSS_ADDR: u64 = 0xfffb_d000;
pub const MAX_MEMORY: u64 = 0xf000_0000;

/// Flushes all cached guest translations by adding and deleting a scratch memslot: deleting a
/// memslot makes KVM drop every shadow/EPT page of the VM.
struct SlotToggleFlush {
    vm: Arc<VmFd>,
    scratch: u64,
    gpa: u64,
    lock: Mutex<()>,
}

const SCRATCH_SLOT: u32 = 1;

impl TranslationFlush for SlotToggleFlush {
    fn flush_all(&self) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut region = kvm_userspace_memory_region {
            slot: SCRATCH_SLOT,
            flags: 0,
            guest_phys_addr: self.gpa,
            memory_size: PAGE_SIZE,
            userspace_addr: self.scratch,
        };
        // SAFETY: the scratch page is a private mapping owned by this struct for the VM's life
        // and the slot does not overlap guest memory.
        let add = unsafe { self.vm.set_user_memory_region(region) };
        region.memory_size = 0;
        // SAFETY: deleting the slot added above.
        let del = unsafe { self.vm.set_user_memory_region(region) };
        if let Err(e) = add.and(del) {
            // Without a flush, reusing quarantined page tables would be unsafe; the allocator
            // only reuses them after this returns, so abort loudly rather than risk a leak
            // between processes.
            panic!("KVM translation flush failed: {e}");
        }
    }
}

pub struct Machine {
    vm: Arc<VmFd>,
    phys: Arc<Physical>,
    cpuid: CpuId,
    xcr0: u64,
    pool: Mutex<Vec<Vcpu>>,
    next_cpu: AtomicU64,
    max_cpus: u64,
}

impl Machine {
    /// A VM with `mem_size` bytes of (sparse) guest memory.
    pub fn new(mem_size: u64) -> Result<Arc<Self>, PlatformError> {
        if !(REGION_SIZE + (16 << 20)..=MAX_MEMORY).contains(&mem_size) {
            return Err(PlatformError::Config(format!(
                "sandbox memory must be between {} MiB and {} MiB",
                (REGION_SIZE >> 20) + 16,
                MAX_MEMORY >> 20
            )));
        }
        let kvm = Kvm::new().map_err(PlatformError::Kvm)?;
        let vm = Arc::new(kvm.create_vm().map_err(PlatformError::Kvm)?);
        vm.set_tss_address(TSS_ADDR as usize).map_err(PlatformError::Kvm)?;

        let mem = PhysMemory::new(mem_size).map_err(|e| PlatformError::Config(e.to_string()))?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: mem.size(),
            userspace_addr: mem.host_base(),
        };
        // SAFETY: the mapping lives as long as `Physical`, which the machine keeps alive as
        // long as the VM (the VM fd is dropped first: see field order in `Drop`).
        unsafe { vm.set_user_memory_region(region) }.map_err(PlatformError::Kvm)?;

        // SAFETY: a private anonymous page; checked below.
        let scratch = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE_SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if scratch == libc::MAP_FAILED {
            return Err(PlatformError::Config("mmap of the scratch page failed".into()));
        }
        let flush = Arc::new(SlotToggleFlush {
            vm: vm.clone(),
            scratch: scratch as u64,
            gpa: mem.size(),
            lock: Mutex::new(()),
        });
        let frames = FrameAllocator::new(PhysAddr(REGION_SIZE), mem.size());
        let phys = Arc::new(Physical { mem, frames, flush, mirror: None });
        trampoline::init_region(&phys);

        let mut cpuid =
            kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(PlatformError::Kvm)?;
        let xcr0 = supported_xcr0(&cpuid);
        normalize_cpuid(&mut cpuid);
        let kvm_max = kvm.check_extension_int(Cap::MaxVcpus).max(1) as u64;
        let max_cpus = kvm_max.min(layout::max_cpus());
        super::vcpu::install_kick_handler();
        Ok(Arc::new(Self {
            vm,
            phys,
            cpuid,
            xcr0,
            pool: Mutex::new(Vec::new()),
            next_cpu: AtomicU64::new(0),
            max_cpus,
        }))
    }

    pub fn max_vcpus(&self) -> u64 {
        self.max_cpus
    }

    pub fn phys(&self) -> &Arc<Physical> {
        &self.phys
    }

    /// A vCPU for the calling thread: a pooled one, or a new one while under the limit.
    pub fn acquire_vcpu(&self) -> Result<Vcpu, PlatformError> {
        if let Some(v) = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(v);
        }
        let index = self.next_cpu.fetch_add(1, Ordering::Relaxed);
        if index >= self.max_cpus {
            self.next_cpu.fetch_sub(1, Ordering::Relaxed);
            return Err(PlatformError::NoVcpu(self.max_cpus));
        }
        trampoline::init_cpu(&self.phys, index);
        let fd = self.vm.create_vcpu(index).map_err(PlatformError::Kvm)?;
        Vcpu::new(fd, index, &self.cpuid, self.xcr0, self.phys.clone())
    }

    pub fn release_vcpu(&self, vcpu: Vcpu) {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(vcpu);
    }
}

impl Platform for Machine {
    fn phys(&self) -> &Arc<Physical> {
        &self.phys
    }

    fn acquire(&self) -> Result<Box<dyn Cpu>, PlatformError> {
        Ok(Box::new(self.acquire_vcpu()?))
    }

    fn release(&self, cpu: Box<dyn Cpu>) {
        // Only this platform's own vCPUs come back here.
        if let Ok(vcpu) = (cpu as Box<dyn std::any::Any>).downcast::<Vcpu>() {
            self.release_vcpu(*vcpu);
        }
    }
}

/// The XSAVE features the host supports (CPUID leaf 0xD, subleaf 0).
fn supported_xcr0(cpuid: &CpuId) -> u64 {
    cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == 0xd && e.index == 0)
        .map(|e| u64::from(e.eax) | (u64::from(e.edx) << 32))
        .unwrap_or(0x3)
}

/// Hides what the Sentry does not provide to applications.
fn normalize_cpuid(cpuid: &mut CpuId) {
    for e in cpuid.as_mut_slice() {
        if e.function == 7 && e.index == 0 {
            // FSGSBASE: the Sentry owns FS/GS base; user-mode wrfsbase must fault as on Linux
            // with the feature disabled.
            e.ebx &= !1;
        }
    }
}
