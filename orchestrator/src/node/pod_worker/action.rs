//! What the planner decides and the executor carries out: the vocabulary between the two.
//! Bookkeeping actions only change the worker's memory; the others act on the runtime or the
//! API.

use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ContainerStateTerminated;

/// One step of a sync, in the order it is to be carried out.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The runtime no longer knows the container the worker ran: forget that run (it starts
    /// again when due, without counting a restart).
    Forget { container: String },
    /// A run ended: remember how, and whether and when the container runs again.
    RecordExit { container: String, terminated: ContainerStateTerminated, next: AfterExit },
    /// The current init container succeeded: the next one (or the app containers) may run.
    InitDone { container: String },
    /// Remove an exited container from the runtime (its log files stay).
    RemoveContainer { id: String },
    /// The sandbox cannot serve the pod any more: remove it; its containers died with it.
    DropSandbox { id: String, why: SandboxChange },
    /// Create the pod's sandbox. Nothing after it runs if this fails.
    CreateSandbox { handler: String, attempt: u32 },
    /// The sandbox cannot be created now (e.g. its RuntimeClass is unknown): say why. Ends the
    /// sync.
    SandboxBlocked { message: String },
    /// Make the pod's volumes exist on the host. Nothing after it runs if this fails.
    PrepareVolumes,
    /// Pull (per policy), create and start a container.
    Start { container: String, init: bool },
    /// Stop a container whose probe failed; its restart policy decides what follows.
    Kill { container: String, id: String, grace: Duration },
    /// Record an Event about the pod.
    Event(PodEvent),
}

impl Action {
    /// Actions whose failure ends the sync: what follows needs what they make.
    pub fn is_gate(&self) -> bool {
        matches!(
            self,
            Action::CreateSandbox { .. } | Action::SandboxBlocked { .. } | Action::PrepareVolumes
        )
    }
}

/// What follows a run that ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterExit {
    /// The restart policy says no more runs.
    Done,
    /// Run again at `retry_at` (None: as soon as possible), with `backoff` for the next time.
    Restart { retry_at: Option<Instant>, backoff: Duration },
}

/// Why a sandbox is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SandboxChange {
    /// The runtime says it is not ready (or does not know it).
    Lost,
    /// It runs under another runtime handler than the pod's RuntimeClass names now.
    HandlerChanged { from: String, to: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        })
    }
}

/// An Event the kubelet would record about the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    pub kind: EventType,
    pub reason: String,
    pub message: String,
    /// Recorded once per worker for the same reason and message (repeated failures).
    pub once: bool,
}

impl PodEvent {
    pub fn normal(reason: &str, message: impl Into<String>) -> PodEvent {
        PodEvent {
            kind: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
            once: false,
        }
    }

    pub fn warning(reason: &str, message: impl Into<String>) -> PodEvent {
        PodEvent {
            kind: EventType::Warning,
            reason: reason.into(),
            message: message.into(),
            once: false,
        }
    }

    /// The same event, recorded only the first time.
    pub fn once(self) -> PodEvent {
        PodEvent { once: true, ..self }
    }
}
