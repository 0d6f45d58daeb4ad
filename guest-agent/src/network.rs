//! Brings up the guest's interfaces: loopback, and a virtio-net interface with the IPv4
//! address the command line (`ringfence.ip=ADDR/PREFIX`, `ringfence.gw=GW`) or the host gives,
//! and the MAC address the host gives (a clone of a snapshot starts with the template's).

use std::io;
use std::net::Ipv4Addr;

use crate::cmdline::Cmdline;
use crate::netlink;
use crate::steps::Steps;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("interface name {0:?}: 1-15 bytes, no NUL")]
    BadName(String),
    #[error("address {0:?}: give ADDRESS/PREFIX (IPv4, prefix 0-32)")]
    BadAddress(String),
    #[error("gateway {0:?} is not an IPv4 address")]
    BadGateway(String),
    #[error("MAC address {0:?}: give six hex bytes, aa:bb:cc:dd:ee:ff, unicast and not all zero")]
    BadMac(String),
    #[error("{what} on {name}: {source}")]
    Io {
        what: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
}

/// An interface's wanted configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub name: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: Option<u32>,
    /// Set while the link is down, before anything else.
    pub mac: Option<[u8; 6]>,
}

impl InterfaceConfig {
    pub fn parse(name: &str, cidr: &str, gateway: &str, mtu: u32) -> Result<Self, NetworkError> {
        if name.is_empty() || name.len() > 15 || name.contains('\0') || name.contains('/') {
            return Err(NetworkError::BadName(name.to_owned()));
        }
        let bad = || NetworkError::BadAddress(cidr.to_owned());
        let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let gateway = match gateway {
            "" => None,
            g => Some(g.parse().map_err(|_| NetworkError::BadGateway(g.to_owned()))?),
        };
        Ok(InterfaceConfig {
            name: name.into(),
            address,
            prefix,
            gateway,
            mtu: (mtu > 0).then_some(mtu),
            mac: None,
        })
    }

    /// The same with the MAC address `mac` (`aa:bb:cc:dd:ee:ff`); an empty one changes nothing.
    pub fn with_mac(self, mac: &str) -> Result<Self, NetworkError> {
        if mac.is_empty() {
            return Ok(self);
        }
        Ok(InterfaceConfig { mac: Some(parse_mac(mac)?), ..self })
    }

    /// `ringfence.ip=` and `ringfence.gw=` from a kernel command line, for `eth0`.
    pub fn from_cmdline(cmdline: &Cmdline) -> Option<Result<Self, NetworkError>> {
        let ip = cmdline.value("ringfence.ip")?;
        Some(Self::parse("eth0", ip, cmdline.value("ringfence.gw").unwrap_or(""), 0))
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0))
    }
}

/// A unicast Ethernet address that is not all zeroes (what the kernel accepts for a link).
pub fn parse_mac(text: &str) -> Result<[u8; 6], NetworkError> {
    let bad = || NetworkError::BadMac(text.to_owned());
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts
            .next()
            .filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(bad)?;
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() || mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(bad());
    }
    Ok(mac)
}

struct Socket(libc::c_int);

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours.
        unsafe { libc::close(self.0) };
    }
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    r
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(a).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the kernel reads it as sockaddr_in.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

impl Socket {
    fn new() -> io::Result<Socket> {
        // SAFETY: plain socket creation.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 { Err(io::Error::last_os_error()) } else { Ok(Socket(fd)) }
    }

    fn ioctl<T>(&self, req: libc::Ioctl, arg: &mut T) -> io::Result<()> {
        // SAFETY: `arg` is the structure this request reads or writes (ifreq or rtentry).
        let r = unsafe { libc::ioctl(self.0, req, arg as *mut T) };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    fn flags(&self, name: &str) -> io::Result<libc::c_short> {
        let mut r = ifreq(name);
        self.ioctl(libc::SIOCGIFFLAGS, &mut r)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        Ok(unsafe { r.ifr_ifru.ifru_flags })
    }

    fn set_flags(&self, name: &str, flags: libc::c_short) -> io::Result<()> {
        let mut r = ifreq(name);
        r.ifr_ifru.ifru_flags = flags;
        self.ioctl(libc::SIOCSIFFLAGS, &mut r)
    }

    fn up(&self, name: &str) -> io::Result<()> {
        let flags = self.flags(name)?;
        self.set_flags(name, flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short)
    }

    fn is_up(&self, name: &str) -> io::Result<bool> {
        Ok(self.flags(name)? & libc::IFF_UP as libc::c_short != 0)
    }

    fn down(&self, name: &str) -> io::Result<()> {
        let flags = self.flags(name)?;
        self.set_flags(name, flags & !(libc::IFF_UP as libc::c_short))
    }

    /// Whether the interface has an IPv4 address.
    fn has_address(&self, name: &str) -> io::Result<bool> {
        let mut r = ifreq(name);
        match self.ioctl(libc::SIOCGIFADDR, &mut r) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(false),
            r => r.map(|()| true),
        }
    }

    fn index(&self, name: &str) -> io::Result<u32> {
        let mut r = ifreq(name);
        self.ioctl(libc::SIOCGIFINDEX, &mut r)?;
        // SAFETY: SIOCGIFINDEX filled the index member of the union.
        Ok(unsafe { r.ifr_ifru.ifru_ifindex } as u32)
    }

    fn set_mac(&self, name: &str, mac: [u8; 6]) -> io::Result<()> {
        let mut r = ifreq(name);
        // SAFETY: sockaddr is plain data; all zeroes is a valid value.
        let mut hw: libc::sockaddr = unsafe { std::mem::zeroed() };
        hw.sa_family = libc::ARPHRD_ETHER;
        for (d, s) in hw.sa_data.iter_mut().zip(mac) {
            *d = s as libc::c_char;
        }
        r.ifr_ifru.ifru_hwaddr = hw;
        self.ioctl(libc::SIOCSIFHWADDR, &mut r)
    }
}

/// Brings the loopback interface up.
pub fn loopback_up() -> io::Result<()> {
    link_up("lo")
}

/// Brings interface `name` up, with whatever addresses it has (none, for a template's).
pub fn link_up(name: &str) -> io::Result<()> {
    Socket::new()?.up(name)
}

/// Sets the address, netmask and MTU, then the MAC address, brings the interface up if it is
/// not, and adds the default route; answers how long each step took.
///
/// A template's clone finds its link up already: its new MAC goes in live, after the address,
/// so that the kernel announces the address with it (a gratuitous ARP, `arp_notify`). Taking
/// the link down and up again instead cost ~0.4 s of emulated guest kernel on nested hosts
/// (the driver refills its receive ring, the routes are made again).
pub fn configure(cfg: &InterfaceConfig) -> Result<Steps, NetworkError> {
    let mut steps = Steps::start();
    let err = |what| {
        let name = cfg.name.clone();
        move |source| NetworkError::Io { what, name, source }
    };
    let s = Socket::new().map_err(err("opening a socket"))?;
    let mut up = s.is_up(&cfg.name).map_err(err("reading its flags"))?;
    let replacing = s.has_address(&cfg.name).map_err(err("reading its address"))?;
    steps.lap("flags");
    if replacing {
        // Configured again: the ioctls replace the address in place (rtnetlink would add a
        // second one beside it).
        let mut r = ifreq(&cfg.name);
        r.ifr_ifru.ifru_addr = sockaddr(cfg.address);
        s.ioctl(libc::SIOCSIFADDR, &mut r).map_err(err("setting the address"))?;
        let mut r = ifreq(&cfg.name);
        r.ifr_ifru.ifru_netmask = sockaddr(cfg.netmask());
        s.ioctl(libc::SIOCSIFNETMASK, &mut r).map_err(err("setting the netmask"))?;
    } else {
        // One request with the prefix.
        let index = s.index(&cfg.name).map_err(err("reading its index"))?;
        netlink::add_address(index, cfg.address, cfg.prefix).map_err(err("adding the address"))?;
    }
    steps.lap("address");
    if let Some(mtu) = cfg.mtu {
        let mut r = ifreq(&cfg.name);
        r.ifr_ifru.ifru_mtu = mtu as libc::c_int;
        s.ioctl(libc::SIOCSIFMTU, &mut r).map_err(err("setting the MTU"))?;
    }
    steps.lap("mtu");
    if let Some(mac) = cfg.mac {
        match s.set_mac(&cfg.name, mac) {
            // A driver that cannot change it live: down, change, up (below).
            Err(e) if up && e.raw_os_error() == Some(libc::EBUSY) => {
                s.down(&cfg.name).map_err(err("taking it down"))?;
                up = false;
                s.set_mac(&cfg.name, mac).map_err(err("setting the MAC address"))?;
            }
            r => r.map_err(err("setting the MAC address"))?,
        }
    }
    steps.lap("mac");
    if !up {
        s.up(&cfg.name).map_err(err("bringing it up"))?;
    }
    steps.lap("up");
    if let Some(gw) = cfg.gateway {
        // SAFETY: rtentry is plain data; zeroes mean "no value" for every field.
        let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
        rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_gateway = sockaddr(gw);
        rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        match s.ioctl(libc::SIOCADDRT, &mut rt) {
            // Configured again with the link kept up: the route is there already.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            r => r.map_err(err("adding the default route"))?,
        }
    }
    steps.lap("route");
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_parse_and_bad_ones_are_named() {
        let c = InterfaceConfig::parse("eth0", "10.0.2.15/24", "10.0.2.2", 1400).unwrap();
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.gateway, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(
            InterfaceConfig::parse("e", "1.2.3.4/0", "", 0).unwrap().netmask(),
            Ipv4Addr::UNSPECIFIED
        );
        assert!(matches!(
            InterfaceConfig::parse("eth0", "10.0.2.15", "", 0),
            Err(NetworkError::BadAddress(_))
        ));
        assert!(matches!(
            InterfaceConfig::parse("eth0", "10.0.2.15/33", "", 0),
            Err(NetworkError::BadAddress(_))
        ));
        assert!(matches!(
            InterfaceConfig::parse("eth0", "1.2.3.4/8", "x", 0),
            Err(NetworkError::BadGateway(_))
        ));
        assert!(matches!(
            InterfaceConfig::parse("a-very-long-interface", "1.2.3.4/8", "", 0),
            Err(NetworkError::BadName(_))
        ));
        let from = InterfaceConfig::from_cmdline(&Cmdline::new(
            "console=ttyS0 ringfence.ip=172.16.0.2/30 ringfence.gw=172.16.0.1",
        ));
        assert_eq!(from.unwrap().unwrap().address, Ipv4Addr::new(172, 16, 0, 2));
        assert!(InterfaceConfig::from_cmdline(&Cmdline::new("console=ttyS0")).is_none());
    }

    #[test]
    fn mac_addresses_are_six_unicast_hex_bytes() {
        assert_eq!(parse_mac("02:00:00:00:00:2a").unwrap(), [2, 0, 0, 0, 0, 0x2a]);
        assert_eq!(parse_mac("AA:bb:0C:dd:ee:FE").unwrap(), [0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0xfe]);
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "02:00:00:00:00:2",
            "02:00:00:00:00:+1",
            "02-00-00-00-00-01",
            "0200:00:00:00:01",
            "02:00:00:00:00:zz",
            "01:00:5e:00:00:01",
            "ff:ff:ff:ff:ff:ff",
            "00:00:00:00:00:00",
        ] {
            assert!(matches!(parse_mac(bad), Err(NetworkError::BadMac(_))), "{bad:?}");
        }
        let base = InterfaceConfig::parse("eth0", "10.0.2.15/24", "", 0).unwrap();
        assert_eq!(base.clone().with_mac("").unwrap(), base);
        assert_eq!(
            base.clone().with_mac("02:00:00:00:00:07").unwrap().mac,
            Some([2, 0, 0, 0, 0, 7])
        );
        assert!(base.with_mac("nope").is_err());
    }

    /// `ip -4 -o addr show dev IFACE` in this thread's network namespace, one line per address.
    fn addresses(iface: &str) -> Vec<String> {
        let out = std::process::Command::new("ip")
            .args(["-4", "-o", "addr", "show", "dev", iface])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split_whitespace().skip(3).take(3).collect::<Vec<_>>().join(" "))
            .collect()
    }

    #[test]
    fn an_interface_gets_its_address_in_one_request_and_a_new_one_in_its_place() {
        // A network namespace of this test's thread alone (the harness runs each test in a
        // thread of its own; programs it starts are in the namespace too).
        // SAFETY: unshare affects only the calling thread's namespaces.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            panic!("unshare(CLONE_NEWNET) (run as root): {}", io::Error::last_os_error());
        }
        let made = std::process::Command::new("ip")
            .args(["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
            .status()
            .unwrap();
        assert!(made.success());
        let first = InterfaceConfig::parse("d0", "10.9.8.7/24", "", 0).unwrap();
        configure(&first).unwrap();
        assert_eq!(addresses("d0"), ["10.9.8.7/24 brd 10.9.8.255"]);
        // Configured again, with another prefix: replaced, not added beside.
        let again = InterfaceConfig::parse("d0", "10.9.9.9/16", "", 1400).unwrap();
        configure(&again).unwrap();
        assert_eq!(addresses("d0"), ["10.9.9.9/16 brd 10.9.255.255"]);
    }
}
