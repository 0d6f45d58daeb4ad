//! Port I/O and MMIO buses: address ranges mapped to devices.

use std::sync::{Arc, Mutex};

/// A device on a bus; `offset` is relative to the start of its range.
pub trait BusDevice: Send {
    fn read(&mut self, offset: u64, data: &mut [u8]);
    fn write(&mut self, offset: u64, data: &[u8]);
}

type Entry = (u64, u64, Arc<Mutex<dyn BusDevice>>);

#[derive(Default, Clone)]
pub struct Bus {
    /// (start, length, device), non-overlapping.
    devices: Vec<Entry>,
}

impl Bus {
    /// Adds `device` at `[start, start+len)`; refuses overlaps.
    pub fn insert(
        &mut self,
        start: u64,
        len: u64,
        device: Arc<Mutex<dyn BusDevice>>,
    ) -> Result<(), String> {
        let end = start.checked_add(len).ok_or("range overflows")?;
        if len == 0 || self.devices.iter().any(|(s, l, _)| start < s + l && *s < end) {
            return Err(format!("bus range {start:#x}+{len:#x} overlaps another device"));
        }
        self.devices.push((start, len, device));
        Ok(())
    }

    fn find(&self, addr: u64, size: usize) -> Option<(u64, &Arc<Mutex<dyn BusDevice>>)> {
        self.devices
            .iter()
            .find(|(s, l, _)| addr >= *s && addr + size as u64 <= s + l)
            .map(|(s, _, d)| (addr - s, d))
    }

    /// False when nothing is mapped there.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((off, d)) => {
                d.lock().unwrap_or_else(|e| e.into_inner()).read(off, data);
                true
            }
            None => false,
        }
    }

    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((off, d)) => {
                d.lock().unwrap_or_else(|e| e.into_inner()).write(off, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Reg(u8);
    impl BusDevice for Reg {
        fn read(&mut self, _o: u64, d: &mut [u8]) {
            d.fill(self.0);
        }
        fn write(&mut self, _o: u64, d: &[u8]) {
            self.0 = d[0];
        }
    }

    #[test]
    fn ranges_dispatch_and_never_overlap() {
        let mut bus = Bus::default();
        bus.insert(0x3f8, 8, Arc::new(Mutex::new(Reg(0)))).unwrap();
        assert!(bus.insert(0x3fc, 8, Arc::new(Mutex::new(Reg(0)))).is_err());
        assert!(bus.insert(u64::MAX, 2, Arc::new(Mutex::new(Reg(0)))).is_err());
        assert!(bus.write(0x3f9, &[7]));
        let mut b = [0u8; 1];
        assert!(bus.read(0x3f8, &mut b) && b[0] == 7);
        assert!(!bus.read(0x400, &mut b));
        // An access straddling the end of a range is not the device's.
        assert!(!bus.read(0x3ff, &mut [0u8; 2]));
    }
}
