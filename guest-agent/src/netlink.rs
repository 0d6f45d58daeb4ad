//! Adding an IPv4 address with its prefix in one rtnetlink request (RTM_NEWADDR), as
//! `ip addr add` does. The ioctls' way, SIOCSIFADDR then SIOCSIFNETMASK, adds the address
//! with its classful mask and then removes and adds it again with the real one: ~0.1 s more of
//! guest kernel where it is emulated.

use std::io;
use std::net::Ipv4Addr;

const NLMSG_HEADER: usize = 16;
const IFADDRMSG: usize = 8;
const ATTRIBUTE: usize = 8;
const NLMSG_ERROR: u16 = 2;

/// The request: `address/prefix` on interface `index`, with the broadcast address its subnet
/// implies (as SIOCSIFNETMASK sets it), replacing the same address if it is there.
pub fn new_address_request(index: u32, address: Ipv4Addr, prefix: u8, seq: u32) -> Vec<u8> {
    let mut attributes: Vec<(u16, Ipv4Addr)> =
        vec![(libc::IFA_LOCAL, address), (libc::IFA_ADDRESS, address)];
    if prefix < 31 {
        let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
        attributes.push((libc::IFA_BROADCAST, Ipv4Addr::from(u32::from(address) | host_bits)));
    }
    let len = NLMSG_HEADER + IFADDRMSG + attributes.len() * ATTRIBUTE;
    let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_REPLACE;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&libc::RTM_NEWADDR.to_ne_bytes());
    m.extend_from_slice(&(flags as u16).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // ifaddrmsg: family, prefix length, flags, scope (universe), interface index.
    m.extend_from_slice(&[libc::AF_INET as u8, prefix, 0, libc::RT_SCOPE_UNIVERSE]);
    m.extend_from_slice(&index.to_ne_bytes());
    for (kind, a) in attributes {
        m.extend_from_slice(&(ATTRIBUTE as u16).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&a.octets());
    }
    m
}

/// The kernel's answer to request `seq`: its acknowledgement (an NLMSG_ERROR of 0) or the
/// error it carries.
pub fn parse_ack(answer: &[u8], seq: u32) -> io::Result<()> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("rtnetlink: {why}"));
    if answer.len() < NLMSG_HEADER + 4 {
        return Err(bad("a short answer"));
    }
    let u32_at = |at: usize| {
        u32::from_ne_bytes([answer[at], answer[at + 1], answer[at + 2], answer[at + 3]])
    };
    let kind = u16::from_ne_bytes([answer[4], answer[5]]);
    if kind != NLMSG_ERROR {
        return Err(bad(&format!("answer of type {kind}, not an acknowledgement")));
    }
    if u32_at(8) != seq {
        return Err(bad("an answer to another request"));
    }
    match u32_at(NLMSG_HEADER) as i32 {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

/// Adds `address/prefix` to interface `index` and waits for the kernel's answer.
pub fn add_address(index: u32, address: Ipv4Addr, prefix: u8) -> io::Result<()> {
    // SAFETY: plain socket creation.
    let fd = unsafe {
        libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just made, owned from here on.
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let seq = 1;
    let request = new_address_request(index, address, prefix, seq);
    // SAFETY: sockaddr_nl is plain data; all zeroes addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    use std::os::fd::AsRawFd;
    // SAFETY: the buffer and address outlive the call; their lengths are theirs.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&raw const kernel).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut answer = [0u8; 512];
    // SAFETY: the buffer outlives the call; its length is its own.
    let got =
        unsafe { libc::recv(socket.as_raw_fd(), answer.as_mut_ptr().cast(), answer.len(), 0) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_ack(&answer[..got as usize], seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_address_its_prefix_and_broadcast() {
        let m = new_address_request(7, Ipv4Addr::new(10, 88, 0, 5), 16, 42);
        assert_eq!(m.len(), 48);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 48);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), libc::RTM_NEWADDR);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 42);
        assert_eq!(&m[16..20], &[libc::AF_INET as u8, 16, 0, 0]);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        assert_eq!(&m[28..32], &[10, 88, 0, 5]);
        assert_eq!(&m[36..40], &[10, 88, 0, 5]);
        assert_eq!(u16::from_ne_bytes([m[42], m[43]]), libc::IFA_BROADCAST);
        assert_eq!(&m[44..48], &[10, 88, 255, 255]);
        // A /31 or /32 has no broadcast address.
        assert_eq!(new_address_request(7, Ipv4Addr::new(10, 0, 0, 1), 32, 1).len(), 40);
    }

    #[test]
    fn acknowledgements_and_errors_are_told_apart() {
        let answer = |kind: u16, seq: u32, error: i32| {
            let mut a = 36u32.to_ne_bytes().to_vec();
            a.extend_from_slice(&kind.to_ne_bytes());
            a.extend_from_slice(&0u16.to_ne_bytes());
            a.extend_from_slice(&seq.to_ne_bytes());
            a.extend_from_slice(&0u32.to_ne_bytes());
            a.extend_from_slice(&error.to_ne_bytes());
            a.extend_from_slice(&[0; 16]);
            a
        };
        assert!(parse_ack(&answer(NLMSG_ERROR, 3, 0), 3).is_ok());
        let e = parse_ack(&answer(NLMSG_ERROR, 3, -libc::EEXIST), 3).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert!(parse_ack(&answer(NLMSG_ERROR, 4, 0), 3).is_err());
        assert!(parse_ack(&answer(24, 3, 0), 3).is_err());
        assert!(parse_ack(&[0; 8], 3).is_err());
    }
}
