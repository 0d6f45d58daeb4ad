//! A task's resource use as containerd reads it: cgroups v1 `Metrics` (what `ctr task
//! metrics` and containerd's CRI plugin decode), filled from the Sentry's own accounting of the
//! container's processes, since a sandbox's containers have no host cgroups of their own.

use containerd_shim::protos::cgroups::metrics::{
    CPUStat, CPUUsage, MemoryEntry, MemoryStat, Metrics, PidsStat,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use orchestrator::cri::handler::ContainerUsage;

use super::error::ShimError;

/// The name containerd's type registry knows the message by (its proto full name).
const TYPE_URL: &str = "io.containerd.cgroups.v1.Metrics";

pub fn pack(usage: &ContainerUsage) -> Result<Any, ShimError> {
    let metrics = Metrics {
        pids: MessageField::some(PidsStat {
            current: usage.processes.into(),
            ..Default::default()
        }),
        cpu: MessageField::some(CPUStat {
            usage: MessageField::some(CPUUsage {
                total: usage.cpu_us.saturating_mul(1000),
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(MemoryStat {
            usage: MessageField::some(MemoryEntry {
                usage: usage.memory_bytes,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let value = metrics
        .write_to_bytes()
        .map_err(|e| ShimError::Invalid(format!("encoding the task's metrics: {e}")))?;
    Ok(Any { type_url: TYPE_URL.into(), value, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_becomes_cgroup_v1_metrics() {
        let any = pack(&ContainerUsage { cpu_us: 1500, memory_bytes: 4096, processes: 3 }).unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
        let m = Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.cpu.usage.total, 1_500_000);
        assert_eq!(m.memory.usage.usage, 4096);
    }
}
