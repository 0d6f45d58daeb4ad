//! A host check: runs a few CPL3 instructions that make syscalls and reports the round trip.

use std::fmt;
use std::time::Duration;

use super::Machine;
use super::tsc::{CpuNumber, TimeProbe};
use crate::platform::PlatformError;

pub struct SelfTestReport {
    pub vcpus: u64,
    pub syscalls: u32,
    pub round_trip: Duration,
    /// What the vDSO can use on this host.
    pub time: TimeProbe,
}

impl fmt::Display for SelfTestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "KVM platform: ok (up to {} vCPUs per sandbox)", self.vcpus)?;
        writeln!(
            f,
            "syscall round trip: {:.1} µs (mean of {})",
            self.round_trip.as_secs_f64() * 1e6,
            self.syscalls
        )?;
        let t = &self.time;
        if t.tsc_usable {
            writeln!(f, "vDSO clocks: the host's TSC ({} kHz), read without a syscall", t.tsc_khz)?;
        } else {
            writeln!(f, "vDSO clocks: TSC not usable here, clock reads are syscalls")?;
        }
        write!(
            f,
            "vDSO getcpu: {}",
            match t.cpu_number {
                CpuNumber::VcpuIndex => "vCPU index (RDTSCP)",
                CpuNumber::HostCpu => "host CPU (RDTSCP shows the host's TSC_AUX)",
                CpuNumber::Unknown => "syscall",
            }
        )
    }
}

/// Times getpid round trips on a new VM's vCPU, then probes what the vDSO can use.
pub fn run() -> Result<SelfTestReport, PlatformError> {
    let n = 1000;
    let m = Machine::new(64 << 20)?;
    let round_trip = crate::platform::choice::syscall_round_trip(m.as_ref(), n)?;
    let mut vcpu = m.acquire_vcpu()?;
    let time = super::tsc::probe(m.phys(), &mut vcpu)?;
    m.release_vcpu(vcpu);
    Ok(SelfTestReport { vcpus: m.max_vcpus(), syscalls: n, round_trip, time })
}
