//! A whole machine: KVM VM, guest memory, legacy devices, vCPU threads, and an event loop that
//! waits for the machine to end and says why.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use kvm_ioctls::Kvm;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

use crate::bus::Bus;
use crate::devices::{i8042, serial, serial_input};
// What `run` answers and what ends it, re-exported for callers of `run`.
use crate::exit::ExitWatcher;
pub use crate::exit::{ExitReason, ExitSignal};
use crate::{
    VmmError, cpu, cpuid, kick, layout, linux_boot, loader, memory, mptable, seccomp, virtio_mmio,
};

/// What the machine runs.
pub enum Program {
    /// A flat image loaded at `load_addr`, entered in 64-bit mode at `entry`.
    Flat { image: Vec<u8>, load_addr: u64, entry: u64 },
    /// A kernel file (ELF, with or without a PVH note, or bzImage).
    Kernel(std::path::PathBuf),
    /// A machine restored from a snapshot, its memory already mapped.
    Restore(Box<crate::snapshot::Restore>),
}

impl Program {
    /// A flat 64-bit image at [`layout::LOAD_ADDR`], entered at its first byte.
    pub fn flat(image: Vec<u8>) -> Program {
        Program::Flat { image, load_addr: layout::LOAD_ADDR, entry: layout::LOAD_ADDR }
    }
}

pub struct VmConfig {
    pub memory_bytes: u64,
    pub memory_backing: memory::Backing,
    /// Where the serial console's output goes.
    pub serial: Box<dyn Write + Send>,
    /// Where its input comes from (the host's stdin, for a human at the console).
    pub serial_input: Option<std::os::fd::RawFd>,
    pub vcpus: u8,
    /// Kernel command line (Linux boot).
    pub cmdline: String,
    pub initrd: Option<std::path::PathBuf>,
    pub template: crate::cpuid::Template,
    /// virtio devices, each behind a virtio-mmio window announced on the command line.
    pub devices: Vec<Arc<Mutex<dyn virtio_devices::VirtioDevice>>>,
    /// Confine the vCPU threads and the calling thread with seccomp filters
    /// ([`crate::seccomp`]) once the machine is built.
    pub seccomp: bool,
    /// What acts on the running machine from outside (pause and resume, the keyboard).
    pub control: Arc<crate::control::MachineControl>,
    /// What the machine is built from, recorded in its snapshots (none for tiny programs).
    pub resources: Option<crate::resources::VmResources>,
    /// Record the pages written (by vCPUs and devices) for Diff snapshots.
    pub track_dirty_pages: bool,
}

/// Where the `index`-th virtio-mmio device lives: (window address, IRQ).
pub fn device_slot(index: usize) -> (u64, u32) {
    (layout::VIRTIO_MMIO_START + index as u64 * layout::VIRTIO_MMIO_SIZE, 5 + index as u32)
}

/// The kernel command line announcing `count` virtio-mmio devices after `base`.
pub fn command_line(base: &str, count: usize) -> String {
    let mut c = base.to_owned();
    for i in 0..count {
        let (addr, irq) = device_slot(i);
        c.push_str(&format!(" virtio_mmio.device=4K@{addr:#x}:{irq}"));
    }
    c.trim().to_owned()
}

/// Turns a queue's ioeventfd into a notification of its device.
struct QueueNotifier {
    evt: EventFd,
    device: Arc<Mutex<dyn virtio_devices::VirtioDevice>>,
    queue: u16,
}

impl MutEventSubscriber for QueueNotifier {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        if self.evt.read().is_ok() {
            crate::metrics::inc(&crate::metrics::METRICS.virtio_notifications, 1);
            self.device.lock().unwrap_or_else(|e| e.into_inner()).queue_notify(self.queue);
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.evt, EventSet::IN)) {
            tracing::warn!("watching a queue notification: {e:?}");
        }
    }
}

/// Tells a device its host side (tap, sockets, rate-limiter timer) has work.
struct BackendNotifier {
    fd: std::os::fd::RawFd,
    device: Arc<Mutex<dyn virtio_devices::VirtioDevice>>,
}

impl MutEventSubscriber for BackendNotifier {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        self.device.lock().unwrap_or_else(|e| e.into_inner()).backend_ready();
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::with_data_raw(self.fd, 0, EventSet::IN)) {
            tracing::warn!("watching a device's backend: {e:?}");
        }
    }
}

impl VmConfig {
    /// One vCPU, no command line, no initrd, KVM's CPUID unmasked.
    pub fn new(memory_bytes: u64, serial: Box<dyn Write + Send>) -> VmConfig {
        VmConfig {
            memory_bytes,
            memory_backing: memory::Backing::Anonymous,
            serial,
            serial_input: None,
            vcpus: 1,
            cmdline: String::new(),
            initrd: None,
            template: Default::default(),
            devices: Vec::new(),
            seccomp: false,
            control: Arc::new(crate::control::MachineControl::new()),
            resources: None,
            track_dirty_pages: false,
        }
    }
}

fn snapshot_error(e: crate::snapshot::SnapshotError) -> VmmError {
    VmmError::Config(e.to_string())
}

/// Builds the machine, runs `program` until the machine ends, and says why it ended.
pub fn run(config: VmConfig, program: Program) -> Result<ExitReason, VmmError> {
    run_with(config, program, ExitSignal::new()?)
}

/// Like [`run`], with an exit signal the caller may raise too (e.g. on SIGTERM).
pub fn run_with(
    config: VmConfig,
    program: Program,
    exit: Arc<ExitSignal>,
) -> Result<ExitReason, VmmError> {
    crate::metrics::mark_start();
    let kvm = Kvm::new()?;
    let vm = kvm.create_vm()?;
    if config.vcpus == 0 {
        return Err(VmmError::Config("a machine needs at least one vCPU".into()));
    }
    let (program, restore) = match program {
        Program::Restore(r) => (None, Some(r)),
        p => (Some(p), None),
    };
    let mem = match &restore {
        Some(r) => r.memory.clone(),
        None => memory::create_with(config.memory_bytes, config.memory_backing)?,
    };
    memory::register(&vm, &mem, config.track_dirty_pages)?;
    if config.track_dirty_pages {
        virtio_devices::dirty::start();
    }
    let mut boot_arg = 0;
    let mut irqchip = false;
    let entry = match program {
        None | Some(Program::Restore(_)) => {
            irqchip = true;
            vm.create_irq_chip()?;
            vm.create_pit2(kvm_bindings::kvm_pit_config::default())?;
            if let Some(r) = &restore {
                crate::snapshot::vm::restore(&vm, &r.state.vm).map_err(snapshot_error)?;
            }
            None
        }
        Some(Program::Flat { image, load_addr, entry }) => {
            cpu::write_boot_tables(&mem)?;
            let end = load_addr
                .checked_add(image.len() as u64)
                .filter(|e| *e <= config.memory_bytes.min(layout::MMIO_GAP_START));
            if end.is_none() || load_addr < layout::BOOT_TABLES_END {
                return Err(VmmError::Config(format!(
                    "a {} byte program at {load_addr:#x} does not fit in guest memory",
                    image.len(),
                )));
            }
            mem.write_slice(&image, GuestAddress(load_addr))
                .map_err(|e| VmmError::Memory(e.to_string()))?;
            Some(loader::Entry::Long { rip: entry })
        }
        Some(Program::Kernel(path)) => {
            cpu::write_boot_tables(&mem)?;
            irqchip = true;
            // A real kernel wants interrupt controllers and a timer in KVM.
            vm.create_irq_chip()?;
            vm.create_pit2(kvm_bindings::kvm_pit_config::default())?;
            mptable::write(&mem, config.vcpus)?;
            let slots: Vec<(u64, u32)> = (0..config.devices.len()).map(device_slot).collect();
            let rsdp = crate::acpi::write(&mem, config.vcpus, &slots)?;
            let (entry, header) = loader::load_kernel(&mem, &path, config.memory_bytes)?;
            let initrd = match &config.initrd {
                Some(p) => {
                    let bytes = std::fs::read(p)
                        .map_err(|e| VmmError::Config(format!("initrd {}: {e}", p.display())))?;
                    Some(linux_boot::load_initrd(&mem, config.memory_bytes, &bytes)?)
                }
                None => None,
            };
            let text = command_line(&config.cmdline, config.devices.len());
            let cmdline = linux_boot::cmdline(&text)?;
            match entry {
                loader::Entry::Long { .. } => {
                    boot_arg = linux_boot::write_zero_page(
                        &mem,
                        config.memory_bytes,
                        header,
                        &cmdline,
                        initrd,
                        Some(rsdp),
                    )?;
                }
                loader::Entry::Pvh { .. } => {
                    linux_boot::write_cmdline(&mem, &cmdline)?;
                    loader::write_start_info(
                        &mem,
                        &linux_boot::e820(config.memory_bytes),
                        Some(layout::CMDLINE_ADDR),
                        initrd,
                        Some(rsdp),
                    )?;
                }
            }
            Some(entry)
        }
    };

    let mut pio = Bus::default();
    // With an interrupt controller, the UART interrupts on IRQ 4 (Linux's 8250 driver waits
    // for it to send more than a FIFO's worth).
    let uart_irq = if irqchip {
        let evt = EventFd::new(libc::EFD_NONBLOCK)?;
        vm.register_irqfd(&evt, serial::COM1_IRQ)?;
        Some(evt)
    } else {
        None
    };
    let uart = match &restore {
        Some(r) => serial::SerialDevice::from_state(&r.state.serial, uart_irq, config.serial)
            .map_err(VmmError::Config)?,
        None => serial::SerialDevice::new(uart_irq, config.serial),
    };
    let uart = Arc::new(Mutex::new(uart));
    pio.insert(serial::COM1_PORT, serial::COM1_LEN, uart.clone()).map_err(VmmError::Config)?;
    let serial_input = config
        .serial_input
        .map(|fd| serial_input::SerialInput::new(fd, uart.clone()))
        .transpose()?;
    let keyboard = Arc::new(Mutex::new(i8042::I8042::new(exit.clone())?));
    if let Some(r) = &restore {
        keyboard.lock().unwrap_or_else(|e| e.into_inner()).restore(&r.state.keyboard);
    }
    if irqchip {
        let k = keyboard.lock().unwrap_or_else(|e| e.into_inner());
        vm.register_irqfd(k.irq(), i8042::IRQ)?;
    }
    config.control.attach_keyboard(keyboard.clone());
    pio.insert(i8042::PORT, i8042::LEN, keyboard.clone()).map_err(VmmError::Config)?;
    let mut mmio = Bus::default();
    let mut notifiers = Vec::new();
    let mut backends = Vec::new();
    let mut transports = Vec::new();
    let mut per_type: std::collections::HashMap<u32, usize> = Default::default();
    let mut named = Vec::new();
    for (i, device) in config.devices.iter().enumerate() {
        let ty = device.lock().unwrap_or_else(|e| e.into_inner()).device_type();
        let n = per_type.entry(ty).or_default();
        let kind = match ty {
            virtio_devices::types::BLOCK => "block",
            virtio_devices::types::NET => "net",
            virtio_devices::types::VSOCK => "vsock",
            virtio_devices::types::ENTROPY => "rng",
            _ => "virtio",
        };
        named.push((format!("{kind}{n}"), device.clone()));
        *n += 1;
        let (addr, irq) = device_slot(i);
        if irq > 23 {
            return Err(VmmError::Config("too many virtio devices".into()));
        }
        let mut transport = virtio_mmio::MmioTransport::new(device.clone(), mem.clone())?;
        // With interrupt controllers in KVM, notifications and interrupts bypass the VMM's
        // vCPU threads: ioeventfds and an irqfd.
        if irqchip {
            vm.register_irqfd(&transport.interrupt().line, irq)?;
            for q in 0..transport.queue_count() {
                let evt = EventFd::new(libc::EFD_NONBLOCK)?;
                let at = kvm_ioctls::IoEventAddress::Mmio(addr + virtio_mmio::NOTIFY_OFFSET);
                vm.register_ioevent(&evt, &at, q as u32)?;
                notifiers.push(QueueNotifier { evt, device: device.clone(), queue: q as u16 });
            }
        }
        if let Some(r) = &restore {
            let state = r.state.devices.get(i).ok_or_else(|| {
                VmmError::Config("the snapshot has fewer devices than the machine".into())
            })?;
            transport.restore(state).map_err(VmmError::Config)?;
        }
        let backend = device.lock().unwrap_or_else(|e| e.into_inner()).backend_fd();
        if let Some(fd) = backend {
            backends.push(BackendNotifier { fd, device: device.clone() });
        }
        let transport = Arc::new(Mutex::new(transport));
        transports.push(transport.clone());
        mmio.insert(addr, layout::VIRTIO_MMIO_SIZE, transport).map_err(VmmError::Config)?;
    }
    crate::metrics::set_devices(named);

    let supported = kvm.get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)?;
    let mut vcpus = Vec::new();
    let mut cpuids = Vec::new();
    for id in 0..config.vcpus {
        let vcpu = vm.create_vcpu(u64::from(id))?;
        match &restore {
            Some(r) => {
                let state = r.state.vcpus.get(usize::from(id)).ok_or_else(|| {
                    VmmError::Config("the snapshot has fewer vCPUs than the machine".into())
                })?;
                crate::snapshot::vcpu::restore(&vcpu, state).map_err(snapshot_error)?;
                cpuids.push(state.cpuid.clone());
            }
            None => {
                let vcpu_cpuid = cpuid::for_vcpu(&supported, id, config.vcpus, &config.template);
                vcpu.set_cpuid2(&vcpu_cpuid)?;
                cpuid::enable_xsave_features(&vcpu, &vcpu_cpuid)?;
                cpuids.push(vcpu_cpuid.as_slice().to_vec());
            }
        }
        vcpus.push(Arc::new(Mutex::new(vcpu)));
    }
    if restore.is_some() {
        // What the devices raised while they were put back (a vsock transport reset) reached
        // no vCPU, and each restored local APIC holds only what was pending at the snapshot.
        for t in &transports {
            t.lock().unwrap_or_else(|e| e.into_inner()).interrupt().reassert();
        }
    }
    // The others wait for the boot vCPU to start them (INIT/SIPI through the local APIC).
    match entry {
        Some(loader::Entry::Long { rip }) => cpu::setup_long_mode(
            &vcpus[0].lock().unwrap_or_else(|e| e.into_inner()),
            rip,
            boot_arg,
        )?,
        Some(loader::Entry::Pvh { rip, start_info }) => {
            cpu::setup_pvh(&vcpus[0].lock().unwrap_or_else(|e| e.into_inner()), rip, start_info)?
        }
        None => {}
    }
    if restore.as_ref().is_some_and(|r| !r.resume) {
        config.control.pause.start_paused();
    }

    // Everything the event loop serves is set up before the vCPUs run, so that this thread
    // confines itself as soon as they do.
    let mut events = EventManager::<Arc<Mutex<dyn MutEventSubscriber>>>::new()
        .map_err(|e| VmmError::Config(format!("event loop: {e:?}")))?;
    events.add_subscriber(Arc::new(Mutex::new(ExitWatcher(exit.clone()))));
    let msr_indices = match irqchip {
        true => kvm.get_msr_index_list()?.as_slice().to_vec(),
        false => Vec::new(),
    };
    let (requests, received) = std::sync::mpsc::channel();
    let wake = EventFd::new(libc::EFD_NONBLOCK)?;
    config.control.attach_snapshots(requests, wake.try_clone()?);
    let snapshotter = crate::snapshot::take::Snapshotter {
        vm,
        mem: mem.clone(),
        memory_bytes: config.memory_bytes,
        vcpus: vcpus.clone(),
        cpuids,
        msr_indices,
        transports,
        serial: uart,
        keyboard,
        resources: if irqchip { config.resources.clone() } else { None },
        track_dirty_pages: config.track_dirty_pages,
    };
    events.add_subscriber(Arc::new(Mutex::new(crate::snapshot::take::SnapshotWorker {
        wake,
        requests: received,
        snapshotter,
        control: config.control.clone(),
    })));
    kick::install_handler();
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for (id, vcpu) in vcpus.into_iter().enumerate() {
        let (exit, pio, mmio) = (exit.clone(), pio.clone(), mmio.clone());
        let confine = config.seccomp;
        let control = config.control.clone();
        let thread = std::thread::Builder::new().name(format!("vcpu{id}")).spawn(move || {
            if confine && let Err(e) = seccomp::install(seccomp::ThreadKind::Vcpu) {
                return exit.raise(ExitReason::VmmError(e.to_string()));
            }
            cpu::run(vcpu, pio, mmio, exit, &control.pause)
        })?;
        {
            use std::os::unix::thread::JoinHandleExt;
            config.control.pause.register(thread.as_pthread_t());
        }
        threads.push(thread);
    }

    if config.seccomp {
        seccomp::install(seccomp::ThreadKind::Vmm).map_err(|e| VmmError::Config(e.to_string()))?;
    }
    for n in notifiers {
        events.add_subscriber(Arc::new(Mutex::new(n)));
    }
    for b in backends {
        events.add_subscriber(Arc::new(Mutex::new(b)));
    }
    if let Some(input) = serial_input {
        events.add_subscriber(Arc::new(Mutex::new(input)));
    }
    while !exit.raised() {
        if let Err(e) = events.run() {
            exit.raise(ExitReason::VmmError(format!("event loop: {e:?}")));
        }
    }
    // Stop the vCPU: interrupt KVM_RUN until its thread notices the machine has ended.
    let deadline = Instant::now() + Duration::from_secs(2);
    while threads.iter().any(|t| !t.is_finished()) && Instant::now() < deadline {
        use std::os::unix::thread::JoinHandleExt;
        for t in threads.iter().filter(|t| !t.is_finished()) {
            kick::kick(t.as_pthread_t());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    for t in threads.into_iter().filter(|t| t.is_finished()) {
        let _ = t.join();
    }
    Ok(exit.reason().unwrap_or(ExitReason::VmmError("no exit reason".into())))
}
