//! OCI images, root filesystems and guest kernel builds. (Issues 7 and 8; nothing here yet.)
