//! Everything a machine is made of before it starts, in one type that the command line, a
//! `--config-file` and the API all fill (Firecracker's `VmResources`), serialisable in the
//! config file's JSON shape so that a program driving the VMM builds this rather than an
//! argument list. [`VmResources::machine`] turns it into the [`VmConfig`] a machine runs from.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::devices::{self, Drive, Entropy, FsDevice, NetworkInterface, Vsock};
use crate::cpuid::Template;
use crate::host::HostKvm;
use crate::vm::{Program, VmConfig};

/// A resource that cannot be used as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ResourceError(pub String);

impl From<String> for ResourceError {
    fn from(s: String) -> Self {
        ResourceError(s)
    }
}

/// PUT /boot-source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSource {
    pub kernel_image_path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_args: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd_path: Option<PathBuf>,
}

impl BootSource {
    fn check(&self) -> Result<(), ResourceError> {
        if !self.kernel_image_path.is_file() {
            return Err(ResourceError(format!(
                "kernel {} is not a readable file",
                self.kernel_image_path.display()
            )));
        }
        if let Some(i) = self.initrd_path.as_ref().filter(|i| !i.is_file()) {
            return Err(ResourceError(format!("initrd {} is not a readable file", i.display())));
        }
        Ok(())
    }
}

/// PUT /machine-config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    pub vcpu_count: u8,
    pub mem_size_mib: u64,
    #[serde(default)]
    pub smt: bool,
    #[serde(default)]
    pub track_dirty_pages: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_template: Option<String>,
    /// `None` or `2M` (guest memory in 2 MiB huge pages).
    #[serde(default)]
    pub huge_pages: HugePages,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HugePages {
    #[default]
    None,
    #[serde(rename = "2M")]
    TwoMiB,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            vcpu_count: 1,
            mem_size_mib: 128,
            smt: false,
            track_dirty_pages: false,
            cpu_template: None,
            huge_pages: HugePages::None,
        }
    }
}

impl MachineConfig {
    pub fn check(&self) -> Result<(), ResourceError> {
        let fail = |m: String| Err(ResourceError(m));
        if !(1..=32).contains(&self.vcpu_count) {
            return fail(format!("vcpu_count {} is not in 1..=32", self.vcpu_count));
        }
        if self.mem_size_mib == 0 || self.mem_size_mib > (1 << 20) {
            return fail(format!("mem_size_mib {} is not a usable size", self.mem_size_mib));
        }
        if self.smt {
            return fail("SMT is not supported".into());
        }
        if self.huge_pages == HugePages::TwoMiB && !self.mem_size_mib.is_multiple_of(2) {
            return fail("with huge_pages 2M, mem_size_mib must be even".into());
        }
        Ok(())
    }
}

/// The whole configuration of a machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmResources {
    #[serde(rename = "boot-source", default, skip_serializing_if = "Option::is_none")]
    pub boot_source: Option<BootSource>,
    #[serde(rename = "machine-config", default)]
    pub machine_config: MachineConfig,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drives: Vec<Drive>,
    #[serde(rename = "network-interfaces", default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock: Option<Vsock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<Entropy>,
    /// Shared directories (virtio-fs, each served by a vhost-user daemon such as virtiofsd).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fs: Vec<FsDevice>,
}

impl VmResources {
    /// A `--config-file`: every resource checked, and a boot source required.
    pub fn from_json(text: &str) -> Result<VmResources, ResourceError> {
        let given: VmResources =
            serde_json::from_str(text).map_err(|e| ResourceError(e.to_string()))?;
        if given.boot_source.is_none() {
            return Err(ResourceError("missing field `boot-source`".into()));
        }
        let mut r =
            VmResources { machine_config: given.machine_config.clone(), ..Default::default() };
        r.machine_config.check()?;
        r.add(given)?;
        Ok(r)
    }

    pub fn to_json(&self) -> String {
        // Plain data: serialising it cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn set_boot_source(&mut self, boot: BootSource) -> Result<(), ResourceError> {
        boot.check()?;
        self.boot_source = Some(boot);
        Ok(())
    }

    pub fn set_machine_config(&mut self, m: MachineConfig) -> Result<(), ResourceError> {
        m.check()?;
        self.machine_config = m;
        Ok(())
    }

    /// Adds or replaces a drive; `path_id` is the id in the URL when it came by the API.
    pub fn put_drive(&mut self, d: Drive, path_id: Option<&str>) -> Result<(), ResourceError> {
        d.check(path_id)?;
        Ok(devices::upsert(&mut self.drives, d)?)
    }

    pub fn put_network_interface(
        &mut self,
        i: NetworkInterface,
        path_id: Option<&str>,
    ) -> Result<(), ResourceError> {
        i.check(path_id)?;
        Ok(devices::upsert_iface(&mut self.network_interfaces, i)?)
    }

    pub fn set_vsock(&mut self, v: Vsock) -> Result<(), ResourceError> {
        v.check()?;
        self.vsock = Some(v);
        Ok(())
    }

    pub fn set_entropy(&mut self, e: Entropy) {
        self.entropy = Some(e);
    }

    pub fn put_fs(&mut self, f: FsDevice, path_id: Option<&str>) -> Result<(), ResourceError> {
        f.check(path_id)?;
        Ok(devices::upsert_fs(&mut self.fs, f)?)
    }

    /// Takes `other`'s boot source and devices after those already here (a config file's
    /// resources on top of the command line's), each checked as the API would.
    pub fn add(&mut self, other: VmResources) -> Result<(), ResourceError> {
        if let Some(b) = other.boot_source {
            self.set_boot_source(b)?;
        }
        for d in other.drives {
            self.put_drive(d, None)?;
        }
        for i in other.network_interfaces {
            self.put_network_interface(i, None)?;
        }
        if let Some(v) = other.vsock {
            self.set_vsock(v)?;
        }
        if let Some(e) = other.entropy {
            self.set_entropy(e);
        }
        for f in other.fs {
            self.put_fs(f, None)?;
        }
        Ok(())
    }

    /// The machine these resources describe. `opts` are the VMM process's own choices (where
    /// the console goes, seccomp, a CPU template given on its command line); `host` decides
    /// what a Linux guest needs on this host's KVM when no template was chosen.
    pub fn machine(
        self,
        opts: MachineOptions,
        host: HostKvm,
    ) -> Result<(VmConfig, Program), ResourceError> {
        let recorded = self.clone();
        let boot = self
            .boot_source
            .ok_or_else(|| ResourceError("no boot source: the kernel to boot is missing".into()))?;
        let m = &self.machine_config;
        let mut config = VmConfig::new(m.mem_size_mib << 20, opts.serial);
        config.resources = Some(recorded);
        config.track_dirty_pages = m.track_dirty_pages;
        config.serial_input = opts.serial_input;
        config.vcpus = m.vcpu_count;
        config.seccomp = opts.seccomp;
        config.control = opts.control;
        // Shared directories need guest memory their daemons can map.
        config.memory_backing = match (m.huge_pages, opts.memfd || !self.fs.is_empty()) {
            (HugePages::TwoMiB, _) => crate::memory::Backing::HugePages2M,
            (HugePages::None, true) => crate::memory::Backing::Memfd,
            (HugePages::None, false) => crate::memory::Backing::Anonymous,
        };
        let named = match m.cpu_template.as_deref() {
            None => None,
            Some("nested-host") => Some(Template::nested_host()),
            Some(_) => Some(Template::default()),
        };
        let chosen = opts.template.or(named);
        config.cmdline =
            boot.boot_args.clone().unwrap_or_else(|| crate::linux_boot::DEFAULT_CMDLINE.to_owned());
        config.template = match chosen {
            Some(t) => t,
            None => {
                if host == HostKvm::Pvm {
                    config.cmdline = host.adapt_cmdline(&config.cmdline);
                    tracing::info!(
                        "this host's KVM is kvm_pvm (guest kernel code is emulated): CPU \
                         template nested-host and `noxsave clearcpuid=308,151` applied \
                         (--cpu-template none turns this off)"
                    );
                }
                host.template().unwrap_or_default()
            }
        };
        config.initrd = boot.initrd_path.clone();
        let attached = crate::attach::devices(
            &self.drives,
            &self.network_interfaces,
            self.vsock.as_ref(),
            self.entropy.as_ref(),
            &self.fs,
        )
        .map_err(|e| ResourceError(e.to_string()))?;
        config.devices = attached.devices;
        if !attached.cmdline.is_empty() {
            config.cmdline = format!("{} {}", config.cmdline, attached.cmdline);
        }
        Ok((config, Program::Kernel(boot.kernel_image_path)))
    }
}

/// What the VMM process decides about a machine beyond its resources.
pub struct MachineOptions {
    pub serial: Box<dyn Write + Send>,
    pub serial_input: Option<std::os::fd::RawFd>,
    pub seccomp: bool,
    /// Guest memory from a memfd even when nothing needs it shared.
    pub memfd: bool,
    /// A CPU template chosen by the process (its command line); wins over the
    /// machine configuration's name.
    pub template: Option<Template>,
    pub control: Arc<crate::control::MachineControl>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_round_trips_and_is_checked_like_the_api() {
        let kernel = tempfile::NamedTempFile::new().unwrap();
        let disk = tempfile::NamedTempFile::new().unwrap();
        let text = format!(
            r#"{{"boot-source":{{"kernel_image_path":"{}","boot_args":"console=ttyS0"}},
                "machine-config":{{"vcpu_count":2,"mem_size_mib":256}},
                "drives":[{{"drive_id":"root","path_on_host":"{}","is_root_device":true}}],
                "entropy":{{}}}}"#,
            kernel.path().display(),
            disk.path().display()
        );
        let r = VmResources::from_json(&text).unwrap();
        assert_eq!(r.machine_config.vcpu_count, 2);
        assert_eq!(r.drives.len(), 1);
        assert_eq!(VmResources::from_json(&r.to_json()).unwrap(), r, "serialises losslessly");
        let reserved_cid = text.replace(
            r#""entropy":{}"#,
            r#""entropy":{}, "vsock":{"guest_cid":2,"uds_path":"/tmp/x"}"#,
        );
        assert!(VmResources::from_json(&reserved_cid).unwrap_err().0.contains("reserved"));
        assert!(
            VmResources::from_json(r#"{"machine-config":{"vcpu_count":1,"mem_size_mib":8}}"#)
                .unwrap_err()
                .0
                .contains("boot-source")
        );
    }

    #[test]
    fn a_config_file_adds_to_the_command_line_devices_with_the_same_checks() {
        let disk = tempfile::NamedTempFile::new().unwrap();
        let d = |id: &str, root: bool| Drive {
            drive_id: id.into(),
            path_on_host: disk.path().into(),
            is_root_device: root,
            is_read_only: true,
            partuuid: None,
            cache_type: None,
            io_engine: None,
            rate_limiter: None,
        };
        let mut cli = VmResources::default();
        cli.put_drive(d("a", true), None).unwrap();
        let file = VmResources { drives: vec![d("b", true)], ..Default::default() };
        assert!(cli.add(file).unwrap_err().0.contains("already the root device"));
        let file = VmResources { drives: vec![d("b", false)], ..Default::default() };
        cli.add(file).unwrap();
        assert_eq!(cli.drives.iter().map(|d| d.drive_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn shared_directories_need_a_listening_socket_and_unique_tags() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("fs.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let plain = tempfile::NamedTempFile::new().unwrap();
        let fs = |id: &str, tag: &str, socket: &std::path::Path| FsDevice {
            fs_id: id.into(),
            tag: tag.into(),
            socket: socket.into(),
            num_request_queues: 1,
            queue_size: 1024,
        };
        let mut r = VmResources::default();
        assert!(
            r.put_fs(fs("a", "pod", plain.path()), None).unwrap_err().0.contains("not a socket")
        );
        assert!(r.put_fs(fs("a", &"t".repeat(37), &sock), None).unwrap_err().0.contains("tag"));
        assert!(r.put_fs(fs("a", "pod", &sock), Some("b")).is_err(), "id and path disagree");
        r.put_fs(fs("a", "pod", &sock), None).unwrap();
        assert!(r.put_fs(fs("b", "pod", &sock), None).unwrap_err().0.contains("already used"));
        let json = r.to_json();
        assert!(json.contains(r#""tag": "pod""#), "{json}");
    }
}
