//! PID 1 of a microVM guest: mounts, network, containers, the agent API over vsock.
//! (Issue 7; nothing here yet.)
