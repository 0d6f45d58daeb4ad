//! The API socket: one thread accepting connections, each served on its own thread, requests
//! answered in order. What starts the machine is handed to the caller through a channel.

use std::io::BufReader;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use super::http::{self, HttpError};
use super::{Api, Reply, Start, VmState};
use crate::control::MachineControl;

/// How long a snapshot may take to write or to prepare for a restore.
const SNAPSHOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

fn fault(e: impl std::fmt::Display) -> Option<String> {
    Some(serde_json::json!({ "fault_message": e.to_string() }).to_string())
}

/// Serves `api` on a new socket at `path`; `start` receives the configuration of an
/// InstanceStart, or the snapshot to restore.
pub fn serve(
    path: &Path,
    api: Arc<Mutex<Api>>,
    start: Sender<Start>,
    control: Arc<MachineControl>,
    confine: bool,
) -> std::io::Result<()> {
    // Bound and listening under a temporary name, then renamed: a client that waits for the
    // socket to appear never finds it not yet listening.
    let _ = std::fs::remove_file(path);
    let mut staging = path.as_os_str().to_owned();
    staging.push(format!(".{}", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging)?;
    std::fs::rename(&staging, path)?;
    std::thread::Builder::new().name("api".into()).spawn(move || {
        // Connection threads inherit the filter.
        if confine && let Err(e) = crate::seccomp::install(crate::seccomp::ThreadKind::Api) {
            tracing::error!("{e}; the API is not served");
            return;
        }
        for conn in listener.incoming().flatten() {
            let (api, start, control) = (api.clone(), start.clone(), control.clone());
            let _ = std::thread::Builder::new().name("api-conn".into()).spawn(move || {
                let Ok(mut writer) = conn.try_clone() else { return };
                let mut reader = BufReader::new(conn);
                loop {
                    let req = match http::read_request(&mut reader) {
                        Ok(r) => r,
                        Err(HttpError::Closed) => return,
                        Err(HttpError::TooLarge(n)) => {
                            let body = serde_json::json!({"fault_message": format!("a {n} byte body is larger than {} bytes", http::MAX_BODY)}).to_string();
                            let _ = http::write_response(&mut writer, 413, Some(&body));
                            return;
                        }
                        Err(HttpError::Malformed(m)) => {
                            let body = serde_json::json!({"fault_message": m}).to_string();
                            let _ = http::write_response(&mut writer, 400, Some(&body));
                            return;
                        }
                    };
                    let reply = api
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .handle(&req.method, &req.path, &req.body);
                    let (status, body) = match reply {
                        Reply::Respond(s, b) => (s, b),
                        Reply::Start(config) => {
                            let _ = start.send(Start::Boot(*config));
                            (204, None)
                        }
                        Reply::SnapshotCreate(params) => {
                            match control.create_snapshot(*params, SNAPSHOT_TIMEOUT) {
                                Ok(()) => (204, None),
                                Err(e) => (400, fault(e)),
                            }
                        }
                        Reply::SnapshotLoad(params) => {
                            let resume = params.resume_vm;
                            let (tx, rx) = std::sync::mpsc::channel();
                            let outcome = start
                                .send(Start::Restore(*params, tx))
                                .map_err(|_| "the VMM is going away".to_string())
                                .and_then(|()| {
                                    rx.recv_timeout(SNAPSHOT_TIMEOUT)
                                        .map_err(|_| "the restore did not finish".to_string())?
                                });
                            match outcome {
                                Ok(()) => {
                                    let mut api = api.lock().unwrap_or_else(|e| e.into_inner());
                                    api.set_started();
                                    api.set_paused(!resume);
                                    (204, None)
                                }
                                Err(e) => (400, fault(e)),
                            }
                        }
                        Reply::CtrlAltDel => match control.send_ctrl_alt_del() {
                            Ok(()) => (204, None),
                            Err(e) => {
                                (400, Some(serde_json::json!({ "fault_message": e }).to_string()))
                            }
                        },
                        Reply::SetState(state) => {
                            let done = match state {
                                VmState::Paused => {
                                    control.pause.pause(std::time::Duration::from_secs(2))
                                }
                                VmState::Resumed => {
                                    control.pause.resume();
                                    Ok(())
                                }
                            };
                            match done {
                                Ok(()) => {
                                    let paused = state == VmState::Paused;
                                    api.lock().unwrap_or_else(|e| e.into_inner()).set_paused(paused);
                                    (204, None)
                                }
                                Err(e) => {
                                    let body = serde_json::json!({ "fault_message": e }).to_string();
                                    (500, Some(body))
                                }
                            }
                        }
                    };
                    if http::write_response(&mut writer, status, body.as_deref()).is_err() {
                        return;
                    }
                }
            });
        }
    })?;
    Ok(())
}
