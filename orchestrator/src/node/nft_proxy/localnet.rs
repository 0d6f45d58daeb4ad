//! Node ports on 127.0.0.1: after DNAT, such a connection leaves through the pod bridge with a
//! loopback source, which the kernel refuses to route unless `route_localnet` is on for that
//! interface. It is turned on for the pod bridge only (the ruleset then drops packets that
//! arrive on the bridge for 127.0.0.0/8, so pods do not gain the node's loopback services).

use std::net::Ipv4Addr;
use std::process::Command;

/// The interface that holds `gateway` (the pod bridge), if there is one yet.
pub fn bridge_of(gateway: Ipv4Addr) -> Option<String> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "to", &format!("{gateway}/32")])
        .output();
    let out = out.ok().filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "7: rf0    inet 10.88.0.1/24 ...": the second field.
    let name = text.lines().next()?.split_whitespace().nth(1)?;
    let name = name.split('@').next()?;
    let valid = !name.is_empty()
        && name.len() < 16
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    valid.then(|| name.to_owned())
}

/// Turns route_localnet on for `bridge`.
pub fn enable(bridge: &str) -> std::io::Result<()> {
    set(bridge, "1")
}

/// Turns it off again (when the table, and with it the drop rule, goes away).
pub fn disable(bridge: &str) -> std::io::Result<()> {
    set(bridge, "0")
}

fn set(bridge: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"), value)
}
