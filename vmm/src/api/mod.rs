//! The API over a Unix socket, compatible with Firecracker's for the common subset: configure
//! the boot source and machine, then `InstanceStart` (or load a snapshot instead); query the
//! instance and its machine configuration; pause, snapshot, resume. Parsing ([`http`], serde with unknown fields refused) stays out of the
//! machine; [`Api::handle`] is a pure function of the request and the configuration so far.

pub mod client;
pub mod devices;
pub mod http;
pub mod server;

use std::path::PathBuf;

use serde::Deserialize;

pub use crate::resources::{BootSource, HugePages, MachineConfig, VmResources};
pub use devices::{Drive, Entropy, FsDevice, NetworkInterface, Vsock};

use crate::snapshot::{CreateParams, LoadParams};

/// What starts the machine, handed from the API to the VMM's main thread.
pub enum Start {
    Boot(VmResources),
    /// Restore from a snapshot; whether it could be prepared comes back on the sender.
    Restore(LoadParams, std::sync::mpsc::Sender<Result<(), String>>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsConfig {
    metrics_path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    action_type: String,
}

/// PATCH /vm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum VmState {
    Paused,
    Resumed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VmStateBody {
    state: VmState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Status and an optional JSON body.
    Respond(u16, Option<String>),
    /// Start the machine with these resources, then answer 204.
    Start(Box<VmResources>),
    /// Pause or resume the running machine, then answer 204 (and call [`Api::set_paused`]).
    SetState(VmState),
    /// Press Ctrl+Alt+Del on the running machine's keyboard, then answer 204.
    CtrlAltDel,
    /// Snapshot the paused machine, then answer 204.
    SnapshotCreate(Box<CreateParams>),
    /// Restore the machine from a snapshot instead of booting it, then answer 204 (and call
    /// [`Api::set_started`], [`Api::set_paused`]).
    SnapshotLoad(Box<LoadParams>),
}

fn fault(status: u16, message: impl std::fmt::Display) -> Reply {
    let body = serde_json::json!({ "fault_message": message.to_string() }).to_string();
    Reply::Respond(status, Some(body))
}

#[derive(Default)]
pub struct Api {
    resources: VmResources,
    started: bool,
    paused: bool,
}

impl Api {
    /// An API whose machine starts from `resources` (what the command line gave).
    pub fn new(resources: VmResources) -> Api {
        Api { resources, ..Default::default() }
    }

    /// Marks the machine started (by the API or otherwise).
    pub fn set_started(&mut self) {
        self.started = true;
    }

    /// Records that the machine was paused or resumed.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    pub fn handle(&mut self, method: &str, path: &str, body: &[u8]) -> Reply {
        let path = path.split('?').next().unwrap_or(path);
        let parse = |what: &str| -> Result<serde_json::Value, Reply> {
            serde_json::from_slice(body).map_err(|e| fault(400, format!("{what}: {e}")))
        };
        macro_rules! body_as {
            ($t:ty, $what:expr) => {
                match parse($what).and_then(|v| {
                    serde_json::from_value::<$t>(v)
                        .map_err(|e| fault(400, format!("{}: {e}", $what)))
                }) {
                    Ok(v) => v,
                    Err(r) => return r,
                }
            };
        }
        let not_after_start =
            "The requested operation is not supported after starting the microVM.";
        match (method, path) {
            ("GET", "/") => {
                let state = match (self.started, self.paused) {
                    (false, _) => "Not started",
                    (true, false) => "Running",
                    (true, true) => "Paused",
                };
                let info = serde_json::json!({
                    "id": "anonymous-instance",
                    "state": state,
                    "vmm_version": env!("CARGO_PKG_VERSION"),
                    "app_name": "ringfence-vmm",
                });
                Reply::Respond(200, Some(info.to_string()))
            }
            ("GET", "/machine-config") => {
                Reply::Respond(200, serde_json::to_string(&self.resources.machine_config).ok())
            }
            ("PUT", "/machine-config") | ("PATCH", "/machine-config") => {
                if self.started {
                    return fault(400, not_after_start);
                }
                let config = if method == "PUT" {
                    body_as!(MachineConfig, "machine-config")
                } else {
                    // PATCH: the given fields over the current ones.
                    let patch = match parse("machine-config") {
                        Ok(v) => v,
                        Err(r) => return r,
                    };
                    let mut current =
                        serde_json::to_value(&self.resources.machine_config).unwrap_or_default();
                    if let (Some(c), Some(p)) = (current.as_object_mut(), patch.as_object()) {
                        for (k, v) in p {
                            c.insert(k.clone(), v.clone());
                        }
                    } else {
                        return fault(400, "machine-config: expected an object");
                    }
                    match serde_json::from_value::<MachineConfig>(current) {
                        Ok(m) => m,
                        Err(e) => return fault(400, format!("machine-config: {e}")),
                    }
                };
                match self.resources.set_machine_config(config) {
                    Ok(()) => Reply::Respond(204, None),
                    Err(e) => fault(400, e),
                }
            }
            ("PUT", "/boot-source") => {
                if self.started {
                    return fault(400, not_after_start);
                }
                match self.resources.set_boot_source(body_as!(BootSource, "boot-source")) {
                    Ok(()) => Reply::Respond(204, None),
                    Err(e) => fault(400, e),
                }
            }
            ("PUT", "/actions") => {
                let action = body_as!(Action, "actions");
                match action.action_type.as_str() {
                    "InstanceStart" => {
                        if self.started {
                            return fault(400, not_after_start);
                        }
                        if self.resources.boot_source.is_none() {
                            return fault(
                                400,
                                "Cannot start microvm without kernel configuration.",
                            );
                        }
                        self.started = true;
                        Reply::Start(Box::new(self.resources.clone()))
                    }
                    "SendCtrlAltDel" => {
                        if !self.started {
                            return fault(400, "the microVM is not started");
                        }
                        Reply::CtrlAltDel
                    }
                    "FlushMetrics" => {
                        if !crate::metrics::has_sink() {
                            return fault(400, "metrics are not configured (PUT /metrics first)");
                        }
                        match crate::metrics::flush() {
                            Ok(()) => Reply::Respond(204, None),
                            Err(e) => fault(400, format!("writing metrics: {e}")),
                        }
                    }
                    other => fault(400, format!("unknown action_type {other:?}")),
                }
            }
            ("PUT", "/metrics") => {
                let m = body_as!(MetricsConfig, "metrics");
                match crate::metrics::set_sink(&m.metrics_path) {
                    Ok(()) => Reply::Respond(204, None),
                    Err(e) => fault(400, format!("metrics_path {}: {e}", m.metrics_path.display())),
                }
            }
            ("PUT", p) if p.starts_with("/drives/") => {
                if self.started {
                    return fault(400, not_after_start);
                }
                let drive = body_as!(Drive, "drives");
                match self.resources.put_drive(drive, Some(&p["/drives/".len()..])) {
                    Ok(()) => Reply::Respond(204, None),
                    Err(e) => fault(400, e),
                }
            }
            ("PUT", "/entropy") => {
                if self.started {
                    return fault(400, not_after_start);
                }
                self.resources.set_entropy(body_as!(Entropy, "entropy"));
                Reply::Respond(204, None)
            }
            ("PUT", p) if p.starts_with("/network-interfaces/") => {
                if self.started {
                    return fault(400, not_after_start);
                }
                let iface = body_as!(NetworkInterface, "network-interfaces");
                let id = &p["/network-interfaces/".len()..];
                match self.resources.put_network_interface(iface, Some(id)) {
                    Ok(()) => Reply::Respond(204, None),
                    Err(e) => fault(400, e),
                }
            }
            ("PUT", "/vsock") => {
                if self.started {
                    return fault(400, not_after_start);
                }
                match self.resources.set_vsock(body_as!(Vsock, "vsock")) {
                    Ok(()) => Reply::Respond(204, None),
                    Err(e) => fault(400, e),
                }
            }
            ("PUT", p) if p.starts_with("/fs/") => {
                if self.started {
                    return fault(400, not_after_start);
                }
                let fs = body_as!(FsDevice, "fs");
                match self.resources.put_fs(fs, Some(&p["/fs/".len()..])) {
                    Ok(()) => Reply::Respond(204, None),
                    Err(e) => fault(400, e),
                }
            }
            ("PUT", "/logger") => {
                let cfg = body_as!(crate::logger::LoggerConfig, "logger");
                match crate::logger::configure(&cfg) {
                    Ok(()) => Reply::Respond(204, None),
                    Err(e) => fault(400, e),
                }
            }
            ("PUT", "/snapshot/create") => {
                if !self.started {
                    return fault(400, "the microVM is not started");
                }
                if !self.paused {
                    return fault(
                        400,
                        "pause the microVM first (PATCH /vm {\"state\": \"Paused\"})",
                    );
                }
                Reply::SnapshotCreate(Box::new(body_as!(CreateParams, "snapshot/create")))
            }
            ("PUT", "/snapshot/load") => {
                if self.started {
                    return fault(400, "a snapshot loads only into a VMM that has not started");
                }
                let r = &self.resources;
                let configured = r.boot_source.is_some()
                    || !r.drives.is_empty()
                    || !r.network_interfaces.is_empty()
                    || r.vsock.is_some()
                    || r.entropy.is_some()
                    || !r.fs.is_empty();
                if configured {
                    return fault(
                        400,
                        "loading a snapshot is not allowed after configuring boot resources",
                    );
                }
                let params = body_as!(LoadParams, "snapshot/load");
                if let Err(e) = params.memory_file() {
                    return fault(400, format!("snapshot/load: {e}"));
                }
                Reply::SnapshotLoad(Box::new(params))
            }
            ("PATCH", "/vm") => {
                if !self.started {
                    return fault(400, "the microVM is not started");
                }
                Reply::SetState(body_as!(VmStateBody, "vm").state)
            }
            (_, "/" | "/machine-config" | "/boot-source" | "/actions" | "/vm") => {
                fault(405, format!("{method} is not allowed on {path}"))
            }
            _ => fault(404, format!("no such resource {path}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(r: &Reply) -> u16 {
        match r {
            Reply::Respond(s, _) => *s,
            Reply::Start(..)
            | Reply::SetState(..)
            | Reply::CtrlAltDel
            | Reply::SnapshotCreate(..)
            | Reply::SnapshotLoad(..) => 0,
        }
    }

    #[test]
    fn the_api_configures_then_starts_once() {
        let mut api = Api::default();
        let kernel = tempfile::NamedTempFile::new().unwrap();
        let k = kernel.path().display().to_string();
        assert_eq!(
            status(&api.handle("PUT", "/actions", br#"{"action_type":"InstanceStart"}"#)),
            400
        );
        for bad in [&b"{"[..], br#"{"kernel_image_path":"/nope"}"#, br#"{"kernel":"x"}"#] {
            assert_eq!(status(&api.handle("PUT", "/boot-source", bad)), 400, "{bad:?}");
        }
        let boot = format!(r#"{{"kernel_image_path":"{k}","boot_args":"console=ttyS0"}}"#);
        assert_eq!(status(&api.handle("PUT", "/boot-source", boot.as_bytes())), 204);
        assert_eq!(
            status(&api.handle("PUT", "/machine-config", br#"{"vcpu_count":0,"mem_size_mib":64}"#)),
            400
        );
        assert_eq!(
            status(&api.handle(
                "PUT",
                "/machine-config",
                br#"{"vcpu_count":2,"mem_size_mib":64,"extra":1}"#
            )),
            400
        );
        assert_eq!(
            status(&api.handle("PUT", "/machine-config", br#"{"vcpu_count":2,"mem_size_mib":64}"#)),
            204
        );
        assert_eq!(status(&api.handle("PATCH", "/machine-config", br#"{"mem_size_mib":32}"#)), 204);
        match api.handle("GET", "/machine-config", b"") {
            Reply::Respond(200, Some(b)) => {
                assert!(b.contains(r#""mem_size_mib":32"#) && b.contains(r#""vcpu_count":2"#))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(status(&api.handle("DELETE", "/boot-source", b"")), 405);
        assert_eq!(status(&api.handle("GET", "/nowhere", b"")), 404);
        assert_eq!(status(&api.handle("PUT", "/drives/rootfs", b"{}")), 400);
        assert_eq!(
            status(&api.handle("PATCH", "/vm", br#"{"state":"Paused"}"#)),
            400,
            "not started"
        );
        let drive = |id: &str, root: bool| {
            format!(
                r#"{{"drive_id":"{id}","path_on_host":"{k}","is_root_device":{root},"is_read_only":true}}"#
            )
        };
        assert_eq!(
            status(&api.handle("PUT", "/drives/other", drive("rootfs", true).as_bytes())),
            400
        );
        assert_eq!(
            status(&api.handle("PUT", "/drives/rootfs", drive("rootfs", true).as_bytes())),
            204
        );
        assert_eq!(status(&api.handle("PUT", "/drives/data", drive("data", true).as_bytes())), 400);
        assert_eq!(
            status(&api.handle("PUT", "/drives/data", drive("data", false).as_bytes())),
            204
        );
        let missing = r#"{"drive_id":"x","path_on_host":"/nonexistent","is_root_device":false,"is_read_only":false}"#;
        assert_eq!(status(&api.handle("PUT", "/drives/x", missing.as_bytes())), 400);
        let limited = format!(
            r#"{{"drive_id":"data","path_on_host":"{k}","rate_limiter":{{"ops":{{"size":0,"refill_time":100}}}}}}"#
        );
        assert_eq!(status(&api.handle("PUT", "/drives/data", limited.as_bytes())), 400);
        assert_eq!(status(&api.handle("PUT", "/entropy", b"{}")), 204);
        let iface = |id: &str, tap: &str, mac: &str| {
            format!(r#"{{"iface_id":"{id}","host_dev_name":"{tap}","guest_mac":"{mac}"}}"#)
        };
        let put = |api: &mut Api, p: &str, b: String| status(&api.handle("PUT", p, b.as_bytes()));
        assert_eq!(
            put(&mut api, "/network-interfaces/eth0", iface("eth0", "tap0", "02:00:00:00:00:01")),
            204
        );
        assert_eq!(
            put(&mut api, "/network-interfaces/eth1", iface("eth1", "tap0", "02:00:00:00:00:02")),
            400
        );
        assert_eq!(
            put(&mut api, "/network-interfaces/eth1", iface("eth1", "tap1", "02:00:00:00:00:01")),
            400
        );
        assert_eq!(
            put(&mut api, "/network-interfaces/eth1", iface("eth1", "tap1", "03:00:00:00:00:02")),
            400
        );
        assert_eq!(
            put(&mut api, "/network-interfaces/eth1", iface("eth1", "tap1", "02:00:00:00:00")),
            400
        );
        assert_eq!(
            put(&mut api, "/network-interfaces/eth1", iface("eth1", "tap1", "02:00:00:00:00:02")),
            204
        );
        let mut vsock = |b: &str| status(&api.handle("PUT", "/vsock", b.as_bytes()));
        assert_eq!(vsock(r#"{"guest_cid":2,"uds_path":"/tmp/v.sock"}"#), 400);
        assert_eq!(vsock(r#"{"guest_cid":3,"uds_path":"/nonexistent/v.sock"}"#), 400);
        assert_eq!(vsock(r#"{"guest_cid":3,"uds_path":"/tmp/v.sock","x":1}"#), 400);
        assert_eq!(vsock(r#"{"guest_cid":3,"uds_path":"/tmp/v.sock"}"#), 204);
        match api.handle("PUT", "/actions", br#"{"action_type":"InstanceStart"}"#) {
            Reply::Start(c) => {
                let boot = c.boot_source.as_ref().unwrap();
                assert_eq!(
                    (boot.boot_args.as_deref(), c.machine_config.mem_size_mib),
                    (Some("console=ttyS0"), 32)
                );
                let ids: Vec<_> = c.drives.iter().map(|d| d.drive_id.as_str()).collect();
                assert_eq!(ids, ["rootfs", "data"]);
                assert!(c.entropy.is_some());
                assert_eq!(c.network_interfaces.len(), 2);
                assert_eq!(c.vsock.as_ref().map(|v| v.guest_cid), Some(3));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            status(&api.handle("PUT", "/drives/data", drive("data", false).as_bytes())),
            400
        );
        assert_eq!(
            status(&api.handle("PUT", "/actions", br#"{"action_type":"InstanceStart"}"#)),
            400
        );
        assert_eq!(status(&api.handle("PUT", "/boot-source", boot.as_bytes())), 400);
        match api.handle("GET", "/", b"") {
            Reply::Respond(200, Some(b)) => assert!(b.contains("Running")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            api.handle("PATCH", "/vm", br#"{"state":"Paused"}"#),
            Reply::SetState(VmState::Paused)
        );
        assert_eq!(status(&api.handle("PATCH", "/vm", br#"{"state":"Asleep"}"#)), 400);
        assert_eq!(status(&api.handle("PATCH", "/vm", br#"{"state":"Paused","x":1}"#)), 400);
        assert_eq!(
            api.handle("PUT", "/actions", br#"{"action_type":"SendCtrlAltDel"}"#),
            Reply::CtrlAltDel
        );
        api.set_paused(true);
        match api.handle("GET", "/", b"") {
            Reply::Respond(200, Some(b)) => assert!(b.contains("Paused")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn config_files_are_strict() {
        let kernel = tempfile::NamedTempFile::new().unwrap();
        let k = kernel.path().display().to_string();
        let parse = |rest: &str| {
            VmResources::from_json(&format!(
                r#"{{"boot-source":{{"kernel_image_path":"{k}"}}{rest}}}"#
            ))
        };
        assert!(parse("").is_ok());
        assert!(parse(r#","drives":[]"#).is_ok());
        assert!(parse(r#","disks":[]"#).is_err());
        assert!(parse(r#","drives":[{"drive_id":"a","path_on_host":"/nonexistent"}]"#).is_err());
        assert!(
            VmResources::from_json(r#"{"boot-source":{"kernel_image_path":"/nonexistent"}}"#)
                .is_err()
        );
        assert!(
            VmResources::from_json(r#"{"machine-config":{"vcpu_count":1,"mem_size_mib":8}}"#)
                .is_err()
        );
    }
}
