//! The microVMM: KVM VM lifecycle, Linux boot, legacy and virtio-mmio devices, the REST API.
//! (Issue 4; nothing here yet.)
