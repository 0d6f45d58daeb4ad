//! The control plane: API server, store, scheduler, controllers, node agent and CRI.
//! (Issues 3, 6 and 8; nothing here yet.)
