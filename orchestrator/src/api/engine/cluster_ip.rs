//! Service cluster IPs, allocated from a configurable IPv4 range.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use tokio::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceCidr {
    base: u32,
    bits: u8,
}

impl ServiceCidr {
    pub fn new(addr: Ipv4Addr, bits: u8) -> Option<Self> {
        if !(8..=30).contains(&bits) {
            return None;
        }
        let mask = u32::MAX << (32 - bits);
        Some(Self { base: u32::from(addr) & mask, bits })
    }

    /// Parses "10.96.0.0/12".
    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('/')?;
        Self::new(a.parse().ok()?, b.parse().ok()?)
    }

    fn size(&self) -> u32 {
        1 << (32 - self.bits)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip > self.base && ip < self.base + self.size() - 1
    }
}

impl std::fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.bits)
    }
}

pub struct Allocator {
    cidr: ServiceCidr,
    /// Addresses in use; `None` until loaded from the stored services.
    used: Mutex<Option<BTreeSet<u32>>>,
}

impl Allocator {
    pub fn new(cidr: ServiceCidr) -> Self {
        Self { cidr, used: Mutex::new(None) }
    }

    /// The address of the `kubernetes` service.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.cidr.base + 1)
    }

    /// Reserves `want`, or the next free address. `load` lists addresses already in use.
    pub async fn allocate<F, Fut>(
        &self,
        want: Option<Ipv4Addr>,
        load: F,
    ) -> Result<Ipv4Addr, String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Vec<Ipv4Addr>>,
    {
        let mut guard = self.used.lock().await;
        if guard.is_none() {
            *guard = Some(load().await.into_iter().map(u32::from).collect());
        }
        let used = guard.get_or_insert_with(BTreeSet::new);
        if let Some(ip) = want {
            if !self.cidr.contains(ip) {
                return Err(format!(
                    "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range ({})",
                    self.cidr
                ));
            }
            if !used.insert(u32::from(ip)) {
                return Err(format!(
                    "failed to allocate IP {ip}: provided IP is already allocated"
                ));
            }
            return Ok(ip);
        }
        // Skip the network address and the kubernetes service's address.
        let start = self.cidr.base + 2;
        let end = self.cidr.base + self.cidr.size() - 1;
        let free =
            (start..end).find(|ip| !used.contains(ip)).ok_or("the service IP range is full")?;
        used.insert(free);
        Ok(Ipv4Addr::from(free))
    }

    pub async fn release(&self, ip: Ipv4Addr) {
        if let Some(used) = self.used.lock().await.as_mut() {
            used.remove(&u32::from(ip));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn allocates_distinct_addresses_in_range() {
        let cidr = ServiceCidr::parse("10.0.0.0/29").unwrap();
        let a = Allocator::new(cidr);
        assert_eq!(a.first(), Ipv4Addr::new(10, 0, 0, 1));
        let x = a.allocate(None, || async { vec![Ipv4Addr::new(10, 0, 0, 2)] }).await.unwrap();
        assert_eq!(x, Ipv4Addr::new(10, 0, 0, 3));
        assert!(a.allocate(Some(x), || async { vec![] }).await.is_err());
        assert!(a.allocate(Some(Ipv4Addr::new(10, 0, 1, 1)), || async { vec![] }).await.is_err());
        for _ in 0..3 {
            a.allocate(None, || async { vec![] }).await.unwrap();
        }
        assert!(a.allocate(None, || async { vec![] }).await.is_err());
        a.release(x).await;
        assert_eq!(a.allocate(None, || async { vec![] }).await.unwrap(), x);
    }
}
