//! virtio-blk, virtio-net, virtio-vsock and virtio-rng over virtio-queue. (Issue 5; nothing here yet.)
