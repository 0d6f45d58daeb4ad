//! The API socket: one thread accepting connections, each served on its own thread, requests
//! answered in order. What starts the machine is handed to the caller through a channel.

use std::io::BufReader;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use super::http::{self, HttpError};
use super::{Api, Reply, VmResources, VmState};
use crate::control::MachineControl;

/// Serves `api` on a new socket at `path`; `start` receives the configuration of an
/// InstanceStart.
pub fn serve(
    path: &Path,
    api: Arc<Mutex<Api>>,
    start: Sender<VmResources>,
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
                            let _ = start.send(*config);
                            (204, None)
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
