//! The pod network the sandboxed runtimes share: a network namespace joined to the host by a
//! veth pair, the host at .1 and sandboxes at .2 of a /30, as a CNI bridge plugin would give a
//! pod (without the bridge: one pod at a time). Removed when dropped.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

pub struct PodNetwork {
    name: String,
    host_link: String,
    pub host_ip: Ipv4Addr,
    pub sandbox_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().context("running ip")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl PodNetwork {
    pub fn create() -> anyhow::Result<PodNetwork> {
        let pid = std::process::id();
        // A /30 of 10.213.0.0/16 per benchmark process, so that two runs do not collide.
        let block = (pid % 16384) * 4;
        let base = Ipv4Addr::new(10, 213, (block >> 8) as u8, (block & 0xff) as u8);
        let host_ip = Ipv4Addr::from(u32::from(base) + 1);
        let sandbox_ip = Ipv4Addr::from(u32::from(base) + 2);
        let net = PodNetwork {
            name: format!("rfbench-{pid}"),
            host_link: format!("rfb{pid}h"),
            host_ip,
            sandbox_ip,
        };
        let peer = format!("rfb{pid}c");
        ip(&["netns", "add", &net.name])?;
        ip(&["link", "add", &net.host_link, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", &net.name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &net.host_link])?;
        ip(&["link", "set", &net.host_link, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &net.name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("{sandbox_ip}/30"), "dev", &peer])?;
        inside(&["link", "set", &peer, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        inside(&["route", "add", "default", "via", &host_ip.to_string()])?;
        Ok(net)
    }

    /// The namespace's path, for runtimes that join it.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_link]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}
