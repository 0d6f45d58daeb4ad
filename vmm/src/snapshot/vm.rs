//! The VM's own state in KVM: both PICs, the IOAPIC, the PIT and the kvm-clock.

use kvm_bindings::{
    KVM_CLOCK_TSC_STABLE, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
    kvm_irqchip,
};
use kvm_ioctls::VmFd;

use super::SnapshotError;
use super::state::VmState;

fn chip(vm: &VmFd, chip_id: u32) -> Result<kvm_irqchip, SnapshotError> {
    let mut c = kvm_irqchip { chip_id, ..Default::default() };
    vm.get_irqchip(&mut c).map_err(SnapshotError::kvm("KVM_GET_IRQCHIP"))?;
    Ok(c)
}

pub fn save(vm: &VmFd) -> Result<VmState, SnapshotError> {
    let mut clock = vm.get_clock().map_err(SnapshotError::kvm("KVM_GET_CLOCK"))?;
    // Only the clock's value goes back in; KVM refuses the flags it reports.
    clock.flags &= !KVM_CLOCK_TSC_STABLE;
    Ok(VmState {
        pic_master: chip(vm, KVM_IRQCHIP_PIC_MASTER)?,
        pic_slave: chip(vm, KVM_IRQCHIP_PIC_SLAVE)?,
        ioapic: chip(vm, KVM_IRQCHIP_IOAPIC)?,
        pit: vm.get_pit2().map_err(SnapshotError::kvm("KVM_GET_PIT2"))?,
        clock,
    })
}

/// Restores into a VM that already has its irqchip and PIT.
pub fn restore(vm: &VmFd, s: &VmState) -> Result<(), SnapshotError> {
    for (c, id) in [
        (&s.pic_master, KVM_IRQCHIP_PIC_MASTER),
        (&s.pic_slave, KVM_IRQCHIP_PIC_SLAVE),
        (&s.ioapic, KVM_IRQCHIP_IOAPIC),
    ] {
        if c.chip_id != id {
            return Err(SnapshotError::Corrupt(format!(
                "irqchip {} where {id} belongs",
                c.chip_id
            )));
        }
        vm.set_irqchip(c).map_err(SnapshotError::kvm("KVM_SET_IRQCHIP"))?;
    }
    vm.set_pit2(&s.pit).map_err(SnapshotError::kvm("KVM_SET_PIT2"))?;
    let mut clock = s.clock;
    clock.flags = 0;
    vm.set_clock(&clock).map_err(SnapshotError::kvm("KVM_SET_CLOCK"))?;
    Ok(())
}
