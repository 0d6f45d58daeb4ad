//! Table-driven tests of the planner, the status it reports and the memory it plans on: each
//! row is a pod (YAML), what the worker remembers and what the runtime shows, and the
//! decisions expected, written out one per line. No I/O: the clock is an `Instant` the test
//! moves.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::action::{Action, AfterExit, SandboxChange};
use super::image::{ImageStep, PullPolicy, image_step};
use super::memory::{ContainerRecord, PodMemory, SandboxRecord, StartFailure, Waiting};
use super::observe::{ContainerRun, HandlerLookup, Observed, RunState, SandboxSeen};
use super::plan::{Plan, plan, termination};
use super::status::{StatusInputs, pod_status};
use super::{backoff, spec};
use crate::node::probe::ProbeState;

/// One app container, restarting always.
const WEB: &str = "
metadata: {name: web-1, namespace: default, uid: u-1}
spec:
  containers:
  - {name: web, image: 'web:v1'}
";

/// Two init containers before the app.
const INIT: &str = "
metadata: {name: job-1, namespace: default, uid: u-2}
spec:
  initContainers:
  - {name: setup, image: 'tools:1'}
  - {name: migrate, image: 'tools:1'}
  containers:
  - {name: web, image: 'web:v1'}
";

/// An app container with every probe and a short grace period.
const PROBED: &str = "
metadata: {name: web-2, namespace: default, uid: u-3}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: web
    image: 'web:v1'
    startupProbe: {tcpSocket: {port: 80}, failureThreshold: 3}
    livenessProbe: {httpGet: {path: /healthz, port: 80}, failureThreshold: 2}
    readinessProbe: {httpGet: {path: /ready, port: 80}}
";

fn with_policy(yaml: &str, policy: &str) -> String {
    yaml.replace("spec:\n", &format!("spec:\n  restartPolicy: {policy}\n"))
}

/// A pod, what the worker remembers of it and what the runtime shows, at one moment.
struct World {
    pod: Pod,
    memory: PodMemory,
    seen: Observed,
    /// When the containers the test starts started.
    base: Instant,
    now: Instant,
}

impl World {
    /// A pod the worker just took on: no sandbox, its handler resolved to `sentry`.
    fn new(yaml: &str) -> World {
        let base = Instant::now();
        World {
            pod: serde_yaml::from_str(yaml).expect("test pod"),
            memory: PodMemory::new(Time(chrono::Utc::now())),
            seen: Observed {
                handler: Some(HandlerLookup::Found("sentry".into())),
                ..Default::default()
            },
            base,
            now: base + Duration::from_secs(60),
        }
    }

    /// The worker's sandbox `sb-1` is ready, its volumes prepared.
    fn ready(mut self) -> World {
        self.memory.sandbox =
            Some(SandboxRecord { id: "sb-1".into(), ip: Some([10, 88, 0, 5].into()) });
        self.memory.volumes = Some(HashMap::new());
        self.memory.handler_checked = true;
        self.seen.sandbox = Some(SandboxSeen::Ready { handler: "sentry".into() });
        self.seen.handler = None;
        self
    }

    /// The worker's sandbox `sb-1` is no longer ready.
    fn lost(mut self) -> World {
        self = self.ready();
        self.seen.sandbox = Some(SandboxSeen::NotReady);
        self.seen.handler = Some(HandlerLookup::Found("sentry".into()));
        self
    }

    fn with(mut self, f: impl FnOnce(&mut World)) -> World {
        f(&mut self);
        self
    }

    fn record(self, name: &str, f: impl FnOnce(&mut ContainerRecord)) -> World {
        self.with(|w| f(w.memory.containers.entry(name.into()).or_default()))
    }

    /// Container `name` runs as `<name>-1`, started at `base`.
    fn run(self, name: &str, state: RunState, exit_code: i32) -> World {
        let base = self.base;
        let id = format!("{name}-1");
        let run = ContainerRun {
            id: id.clone(),
            state,
            exit_code,
            reason: String::new(),
            started_at: 1_700_000_000_000_000_000,
            finished_at: 1_700_000_060_000_000_000,
        };
        self.record(name, |r| {
            r.id = Some(id);
            r.started = Some(base);
        })
        .with(|w| {
            w.seen.containers.insert(name.into(), run);
        })
    }

    fn running(self, name: &str) -> World {
        self.run(name, RunState::Running, 0)
    }

    fn exited(self, name: &str, code: i32) -> World {
        self.run(name, RunState::Exited, code)
    }

    fn plan(&self) -> Plan {
        plan(&self.pod, &self.seen, &self.memory, self.now)
    }

    /// The plan, one action per line.
    fn decisions(&self) -> Vec<String> {
        self.plan().actions.iter().map(|a| describe(a, self.now)).collect()
    }

    fn status(&self) -> PodStatus {
        let runs = self.seen.containers.clone();
        let inputs = StatusInputs {
            memory: &self.memory,
            runs: &runs,
            host_ip: "10.0.0.1",
            now: self.now,
            wall: Time(chrono::Utc::now()),
        };
        pod_status(&self.pod, &inputs)
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

fn describe(a: &Action, now: Instant) -> String {
    match a {
        Action::Forget { container } => format!("forget {container}"),
        Action::RecordExit { container, terminated, next } => {
            let code = terminated.exit_code;
            let next = match next {
                AfterExit::Done => "done".to_owned(),
                AfterExit::Restart { retry_at: None, backoff } => {
                    format!("restart now, next back-off {}", secs(*backoff))
                }
                AfterExit::Restart { retry_at: Some(at), backoff } => {
                    format!("restart in {}, next back-off {}", secs(*at - now), secs(*backoff))
                }
            };
            format!("exit {container} {code}: {next}")
        }
        Action::InitDone { container } => format!("init done {container}"),
        Action::RemoveContainer { id } => format!("remove {id}"),
        Action::DropSandbox { id, why: SandboxChange::Lost } => format!("drop {id}: lost"),
        Action::DropSandbox { id, why: SandboxChange::HandlerChanged { from, to } } => {
            format!("drop {id}: handler {from} -> {to}")
        }
        Action::CreateSandbox { handler, attempt } => {
            format!("create sandbox {handler} attempt {attempt}")
        }
        Action::SandboxBlocked { message } => format!("blocked: {message}"),
        Action::PrepareVolumes => "prepare volumes".into(),
        Action::Start { container, init: true } => format!("start init {container}"),
        Action::Start { container, init: false } => format!("start {container}"),
        Action::Kill { container, id, grace } => {
            format!("kill {container} ({id}, {})", secs(*grace))
        }
        Action::Event(e) => {
            format!(
                "event {} {}: {}{}",
                e.kind,
                e.reason,
                e.message,
                if e.once { " (once)" } else { "" }
            )
        }
    }
}

const BACK_OFF: &str =
    "event Warning BackOff: Back-off restarting failed container web in pod default/web-1 (once)";

const SANDBOX_CHANGED: &str =
    "event Normal SandboxChanged: Pod sandbox changed, it will be killed and re-created.";

/// One test per row: the world, then the decisions expected, in order.
macro_rules! plans {
    ($($name:ident: $world:expr => [$($line:expr),* $(,)?];)*) => {$(
        #[test]
        fn $name() {
            let world: World = $world;
            let expected: Vec<String> = vec![$($line.to_string()),*];
            assert_eq!(world.decisions(), expected);
        }
    )*};
}

plans! {
    // The sandbox.
    a_new_pod_gets_a_sandbox_its_volumes_then_its_containers: World::new(WEB) => [
        "create sandbox sentry attempt 0", "prepare volumes", "start web",
    ];
    an_unknown_runtime_class_blocks_the_pod_and_nothing_else_runs: World::new(WEB).with(|w| {
        w.seen.handler = Some(HandlerLookup::Failed("RuntimeClass \"x\" not found".into()));
    }) => ["blocked: RuntimeClass \"x\" not found"];
    a_ready_sandbox_with_a_running_container_needs_nothing:
        World::new(WEB).ready().running("web") => [];
    a_lost_sandbox_is_dropped_and_made_again_with_the_next_attempt:
        World::new(WEB).lost().run("web", RunState::Running, 0) => [
        "drop sb-1: lost", SANDBOX_CHANGED, "create sandbox sentry attempt 1", "start web",
    ];
    a_sandbox_under_another_handler_is_replaced: World::new(WEB).ready().running("web").with(|w| {
        w.seen.handler = Some(HandlerLookup::Found("microvm".into()));
    }) => [
        "drop sb-1: handler sentry -> microvm", SANDBOX_CHANGED,
        "create sandbox microvm attempt 1", "start web",
    ];
    a_sandbox_whose_handler_the_runtime_does_not_say_is_kept:
        World::new(WEB).ready().running("web").with(|w| {
            w.seen.sandbox = Some(SandboxSeen::Ready { handler: String::new() });
            w.seen.handler = Some(HandlerLookup::Found("microvm".into()));
        }) => [];
    a_failed_handler_lookup_does_not_touch_a_ready_sandbox:
        World::new(WEB).ready().running("web").with(|w| {
            w.seen.handler = Some(HandlerLookup::Failed("API unavailable".into()));
        }) => [];
    volumes_are_prepared_before_any_container_starts:
        World::new(WEB).ready().with(|w| w.memory.volumes = None)
        => ["prepare volumes", "start web"];
    a_container_the_runtime_forgot_starts_again: World::new(WEB).ready().running("web").with(|w| {
        w.seen.containers.clear();
    }) => ["forget web", "start web"];

    // Restart policies.
    always_restarts_a_container_that_succeeded: World::new(WEB).ready().exited("web", 0) => [
        "exit web 0: restart now, next back-off 10s", "remove web-1", "start web",
    ];
    on_failure_leaves_a_success_alone:
        World::new(&with_policy(WEB, "OnFailure")).ready().exited("web", 0) => [
        "exit web 0: done", "remove web-1",
    ];
    on_failure_restarts_a_failure:
        World::new(&with_policy(WEB, "OnFailure")).ready().exited("web", 2) => [
        "exit web 2: restart now, next back-off 10s", "remove web-1", "start web",
    ];
    never_restarts_a_failure: World::new(&with_policy(WEB, "Never")).ready().exited("web", 1) => [
        "exit web 1: done", "remove web-1",
    ];
    a_container_finished_for_good_is_not_started_again:
        World::new(&with_policy(WEB, "Never")).ready().record("web", |r| r.done = true) => [];

    // CrashLoopBackOff.
    the_second_crash_waits_ten_seconds: World::new(WEB).ready().exited("web", 1).record("web", |r| {
        r.backoff = backoff::START;
    }) => ["exit web 1: restart in 10s, next back-off 20s", "remove web-1", BACK_OFF];
    back_off_doubles: World::new(WEB).ready().exited("web", 1).record("web", |r| {
        r.backoff = Duration::from_secs(80);
    }) => ["exit web 1: restart in 80s, next back-off 160s", "remove web-1", BACK_OFF];
    back_off_stops_at_five_minutes: World::new(WEB).ready().exited("web", 137).record("web", |r| {
        r.backoff = Duration::from_secs(300);
    }) => ["exit web 137: restart in 300s, next back-off 300s", "remove web-1", BACK_OFF];
    a_container_that_ran_ten_minutes_starts_back_off_over:
        World::new(WEB).ready().exited("web", 1).record("web", |r| r.backoff = backoff::MAX)
        .with(|w| {
            w.now = w.base + Duration::from_secs(11 * 60);
        }) => ["exit web 1: restart now, next back-off 10s", "remove web-1", "start web"];
    a_crashed_container_in_back_off_waits_and_says_so: World::new(WEB).ready().with(|w| {
        let at = w.now + Duration::from_secs(5);
        let r = w.memory.containers.entry("web".into()).or_default();
        (r.retry_at, r.restarts) = (Some(at), 3);
    }) => [BACK_OFF];
    a_container_waiting_to_retry_its_set_up_is_not_in_back_off: World::new(WEB).ready().with(|w| {
        let at = w.now + Duration::from_secs(5);
        let r = w.memory.containers.entry("web".into()).or_default();
        (r.retry_at, r.restarts) = (Some(at), 3);
        r.waiting = Some(Waiting::new("ErrImagePull", "not found"));
    }) => [];
    a_container_whose_back_off_is_over_starts: World::new(WEB).ready().with(|w| {
        let at = w.now - Duration::from_secs(1);
        w.memory.containers.entry("web".into()).or_default().retry_at = Some(at);
    }) => ["start web"];

    // Init containers.
    the_first_init_container_runs_alone: World::new(INIT).ready() => ["start init setup"];
    a_running_init_container_holds_the_rest: World::new(INIT).ready().running("setup") => [];
    a_succeeded_init_container_lets_the_next_one_start:
        World::new(INIT).ready().exited("setup", 0) => [
        "exit setup 0: done", "init done setup", "start init migrate",
    ];
    the_app_starts_in_the_sync_the_last_init_container_succeeds:
        World::new(INIT).ready().record("setup", |r| r.done = true).with(|w| w.memory.init_done = 1)
            .exited("migrate", 0) => [
        "exit migrate 0: done", "init done migrate", "start web",
    ];
    a_failed_init_container_is_retried_in_a_later_sync:
        World::new(INIT).ready().exited("setup", 1) => [
        "exit setup 1: restart now, next back-off 10s",
    ];
    a_failed_init_container_runs_again_when_due:
        World::new(INIT).ready().record("setup", |r| r.restarts = 1) => ["start init setup"];
    on_failure_retries_a_failed_init_container_too:
        World::new(&with_policy(INIT, "OnFailure")).ready().exited("setup", 1).record("setup", |r| {
            r.backoff = backoff::START;
        }) => ["exit setup 1: restart in 10s, next back-off 20s"];
    under_never_a_failed_init_container_is_final: World::new(&with_policy(INIT, "Never")).ready()
        .exited("setup", 1) => ["exit setup 1: done"];
    under_never_a_succeeded_init_container_moves_on: World::new(&with_policy(INIT, "Never")).ready()
        .exited("setup", 0) => ["exit setup 0: done", "init done setup", "start init migrate"];
    under_never_the_app_waits_forever_behind_a_failed_init_container:
        World::new(&with_policy(INIT, "Never")).ready().record("setup", |r| r.done = true) => [];

    // Probes.
    a_startup_probe_out_of_tries_kills_the_container: World::new(PROBED).ready().running("web")
        .with(|w| {
            let probe = w.pod.spec.as_ref().unwrap().containers[0].startup_probe.clone().unwrap();
            let mut st = ProbeState::new(&probe, false, w.base);
            st.failures = 3;
            st.last_message = "dial tcp 10.88.0.5:80: connection refused".into();
            w.memory.containers.get_mut("web").unwrap().probes.startup = Some(st);
        }) => [
        "event Warning Unhealthy: Startup probe failed: dial tcp 10.88.0.5:80: connection refused",
        "event Normal Killing: Container web failed startup probe, will be restarted",
        "kill web (web-1, 5s)",
    ];
    a_startup_probe_within_its_threshold_holds_everything_else: World::new(PROBED).ready()
        .running("web").with(|w| {
            let probe = w.pod.spec.as_ref().unwrap().containers[0].startup_probe.clone().unwrap();
            let mut st = ProbeState::new(&probe, false, w.base);
            st.failures = 2;
            let r = w.memory.containers.get_mut("web").unwrap();
            r.probes.startup = Some(st);
            let live = ProbeState { ok: false, ..ProbeState::new(&probe, false, w.base) };
            r.probes.liveness = Some(live);
        }) => [];
    a_failed_liveness_probe_restarts_with_the_pods_grace: World::new(PROBED).ready().running("web")
        .with(|w| {
            let c = &w.pod.spec.as_ref().unwrap().containers[0];
            let mut live = ProbeState::new(c.liveness_probe.as_ref().unwrap(), true, w.base);
            live.ok = false;
            live.last_message = "HTTP probe failed with statuscode: 500".into();
            let r = w.memory.containers.get_mut("web").unwrap();
            r.probes.startup = Some(ProbeState { ok: true, ..live.clone() });
            r.probes.liveness = Some(live);
            w.seen.readiness_failed.insert("web".into(), "ignored".into());
        }) => [
        "event Warning Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 500",
        "event Normal Killing: Container web failed liveness probe, will be restarted",
        "kill web (web-1, 5s)",
    ];
    a_liveness_kill_without_a_grace_period_gives_thirty_seconds:
        World::new(WEB).ready().running("web").with(|w| {
            let mut live = ProbeState::new(&Default::default(), true, w.base);
            live.ok = false;
            live.last_message = "timeout".into();
            w.memory.containers.get_mut("web").unwrap().probes.liveness = Some(live);
        }) => [
        "event Warning Unhealthy: Liveness probe failed: timeout",
        "event Normal Killing: Container web failed liveness probe, will be restarted",
        "kill web (web-1, 30s)",
    ];
    readiness_turning_to_failing_is_an_event_not_a_restart:
        World::new(PROBED).ready().running("web").with(|w| {
            let why = "HTTP probe failed with statuscode: 503";
            w.seen.readiness_failed.insert("web".into(), why.into());
        }) => [
        "event Warning Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503",
    ];
    probes_of_a_container_that_exited_do_not_kill_it: World::new(PROBED).ready().exited("web", 1)
        .with(|w| {
            let mut live = ProbeState::new(&Default::default(), true, w.base);
            live.ok = false;
            w.memory.containers.get_mut("web").unwrap().probes.liveness = Some(live);
        }) => ["exit web 1: restart now, next back-off 10s", "remove web-1", "start web"];
}

/// One test per row: the world, then a summary of the status expected.
macro_rules! statuses {
    ($($name:ident: $world:expr => $summary:expr;)*) => {$(
        #[test]
        fn $name() {
            let world: World = $world;
            assert_eq!(summary(&world.status()), $summary);
        }
    )*};
}

fn state_of(s: &ContainerStatus) -> String {
    let st = s.state.clone().unwrap_or_default();
    let state = match (st.running, st.waiting, st.terminated) {
        (Some(_), _, _) => "running".to_owned(),
        (_, Some(w), _) => format!("waiting {}", w.reason.unwrap_or_default()),
        (_, _, Some(t)) => format!("terminated {} {}", t.exit_code, t.reason.unwrap_or_default()),
        _ => "none".to_owned(),
    };
    let flag = |on: bool, word: &str| if on { format!(" {word}") } else { String::new() };
    format!(
        "{} {state}{}{} r{}",
        s.name,
        flag(s.ready, "ready"),
        flag(s.started == Some(true), "started"),
        s.restart_count
    )
}

/// Phase, then the conditions that vary, then every container (init containers first).
fn summary(s: &PodStatus) -> String {
    let cond = |t: &str| {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .map(|c| c.status.clone())
            .unwrap_or_default()
    };
    let mut parts = vec![format!(
        "{} sandbox={} initialized={} ready={}",
        s.phase.clone().unwrap_or_default(),
        cond("PodReadyToStartContainers"),
        cond("Initialized"),
        cond("Ready"),
    )];
    parts.extend(s.init_container_statuses.iter().flatten().map(state_of));
    parts.extend(s.container_statuses.iter().flatten().map(state_of));
    parts.join(" | ")
}

statuses! {
    a_pod_not_started_yet_is_pending_and_creating: World::new(WEB) =>
        "Pending sandbox=False initialized=True ready=False | web waiting ContainerCreating r0";
    a_pod_whose_sandbox_fails_says_why: World::new(WEB).with(|w| {
        w.memory.pod_waiting = Some(Waiting::new("CreatePodSandboxError", "no handler"));
    }) => "Pending sandbox=False initialized=True ready=False \
           | web waiting CreatePodSandboxError r0";
    a_running_container_without_probes_is_ready: World::new(WEB).ready().running("web") =>
        "Running sandbox=True initialized=True ready=True | web running ready started r0";
    a_container_in_back_off_is_in_crash_loop_back_off: World::new(WEB).ready().record("web", |r| {
        r.restarts = 2;
        r.retry_at = Some(Instant::now() + Duration::from_secs(3600));
    }) => "Running sandbox=True initialized=True ready=False | web waiting CrashLoopBackOff r2";
    an_image_that_cannot_be_pulled_is_err_image_pull: World::new(WEB).ready().record("web", |r| {
        let why = "Failed to pull image \"web:v1\": not found";
        r.waiting = Some(Waiting::new("ErrImagePull", why));
        r.retry_at = Some(Instant::now() + Duration::from_secs(3600));
    }) => "Pending sandbox=True initialized=True ready=False | web waiting ErrImagePull r0";
    every_container_succeeded_means_succeeded:
        World::new(&with_policy(WEB, "OnFailure")).ready().exited("web", 0).with(|w| {
            let plan = w.plan();
            for a in &plan.actions {
                w.memory.apply(a);
            }
            w.seen.containers.clear();
        }) => "Succeeded sandbox=True initialized=True ready=False | web terminated 0 Completed r0";
    a_container_that_failed_for_good_fails_the_pod:
        World::new(&with_policy(WEB, "Never")).ready().exited("web", 3).with(|w| {
            let plan = w.plan();
            for a in &plan.actions {
                w.memory.apply(a);
            }
            w.seen.containers.clear();
        }) => "Failed sandbox=True initialized=True ready=False | web terminated 3 Error r0";
    a_failed_init_container_under_never_fails_the_pod:
        World::new(&with_policy(INIT, "Never")).ready().exited("setup", 1).with(|w| {
            let plan = w.plan();
            for a in &plan.actions {
                w.memory.apply(a);
            }
            w.seen.containers.clear();
        }) => "Failed sandbox=True initialized=False ready=False | setup terminated 1 Error r0 \
               | migrate waiting ContainerCreating r0 | web waiting ContainerCreating r0";
    an_init_container_running_keeps_the_pod_initializing:
        World::new(INIT).ready().running("setup") =>
        "Pending sandbox=True initialized=False ready=False | setup running ready started r0 \
         | migrate waiting ContainerCreating r0 | web waiting ContainerCreating r0";
    a_container_before_its_startup_probe_passes_is_neither_started_nor_ready:
        World::new(PROBED).ready().running("web").with(|w| {
            let now = w.base;
            let c = w.pod.spec.as_ref().unwrap().containers[0].clone();
            w.memory.container_started(&c, "web-1".into(), now);
        }) => "Running sandbox=True initialized=True ready=False | web running r0";
    a_started_container_waits_for_readiness_to_be_ready:
        World::new(PROBED).ready().running("web").with(|w| {
            let now = w.base;
            let c = w.pod.spec.as_ref().unwrap().containers[0].clone();
            w.memory.container_started(&c, "web-1".into(), now);
            let r = w.memory.containers.get_mut("web").unwrap();
            r.probes.startup.as_mut().unwrap().ok = true;
        }) => "Running sandbox=True initialized=True ready=False | web running started r0";
    a_pod_restarted_once_shows_the_count: World::new(WEB).ready().running("web").record("web", |r| {
        r.restarts = 1;
    }) => "Running sandbox=True initialized=True ready=True | web running ready started r1";
}

#[test]
fn the_status_carries_the_pods_addresses_and_the_last_termination() {
    let w = World::new(WEB).ready().running("web").record("web", |r| {
        r.last_terminated = Some(super::plan::terminated(&ContainerRun {
            id: "web-0".into(),
            state: RunState::Exited,
            exit_code: 137,
            reason: "OOMKilled".into(),
            started_at: 0,
            finished_at: 1_000_000_000,
        }));
    });
    let s = w.status();
    assert_eq!(s.pod_ip.as_deref(), Some("10.88.0.5"));
    assert_eq!(s.host_ip.as_deref(), Some("10.0.0.1"));
    let web = &s.container_statuses.unwrap()[0];
    assert_eq!(web.container_id.as_deref(), Some("ringfence://web-1"));
    let last = web.last_state.clone().unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (137, Some("OOMKilled")));
    assert_eq!(last.container_id.as_deref(), Some("ringfence://web-0"));
}

#[test]
fn deletion_grace_comes_from_the_deletion_then_the_pod_then_the_default() {
    let rows = [
        (
            "{metadata: {name: p, deletionGracePeriodSeconds: 7}, \
              spec: {terminationGracePeriodSeconds: 5, containers: []}}",
            7,
        ),
        ("{metadata: {name: p}, spec: {terminationGracePeriodSeconds: 5, containers: []}}", 5),
        ("{metadata: {name: p, deletionGracePeriodSeconds: 0}, spec: {containers: []}}", 0),
        ("{metadata: {name: p}, spec: {containers: []}}", 30),
    ];
    for (yaml, want) in rows {
        let w = World::new(yaml);
        assert_eq!(termination(&w.pod, &w.memory).grace, Duration::from_secs(want), "{yaml}");
    }
}

#[test]
fn pre_stop_hooks_run_only_in_running_containers_that_have_one() {
    let w = World::new(
        "
metadata: {name: p}
spec:
  containers:
  - {name: a, lifecycle: {preStop: {sleep: {seconds: 2}}}}
  - {name: b, lifecycle: {preStop: {exec: {command: [drain]}}}}
  - {name: c}
",
    )
    .ready()
    .running("a")
    .running("c");
    let t = termination(&w.pod, &w.memory);
    assert_eq!(t.pre_stop, vec![("a".to_owned(), "a-1".to_owned())]);
}

#[test]
fn start_failures_are_retried_as_the_kubelet_does() {
    let now = Instant::now();
    let mut m = PodMemory::new(Time(chrono::Utc::now()));
    // Set-up failures (image, environment, create) wait the first back-off, uncounted.
    let pull = Waiting::new("ErrImagePull", "not found");
    m.start_failed("web", StartFailure::Setup(pull.clone()), now);
    let r = m.container("web").unwrap();
    assert_eq!(
        (r.restarts, r.retry_at, r.waiting.clone()),
        (0, Some(now + backoff::START), Some(pull))
    );
    assert!(!m.due("web", now) && m.due("web", now + backoff::START));
    // A process that cannot start counts as a run and backs off like a crash.
    let run = Waiting::new("RunContainerError", "exec: no such file");
    for (restarts, wait) in [(1, 10), (2, 20), (3, 40)] {
        m.start_failed("web", StartFailure::Run(run.clone()), now);
        let r = m.container("web").unwrap();
        assert_eq!((r.restarts, r.retry_at), (restarts, Some(now + Duration::from_secs(wait))));
    }
    // A start clears the reason and arms the probes.
    let c = serde_yaml::from_str("{name: web, readinessProbe: {exec: {command: [ok]}}}").unwrap();
    m.container_started(&c, "web-9".into(), now);
    let r = m.container("web").unwrap();
    assert!(r.waiting.is_none() && r.probes.readiness.is_some() && r.probes.liveness.is_none());
    assert_eq!(r.id.as_deref(), Some("web-9"));
}

/// A sandbox the runtime refused is tried again after 1 s, 2 s, 4 s... up to 10 s, not on the
/// next pass (which the status write reporting the failure starts at once).
#[test]
fn failed_sandboxes_are_retried_after_a_back_off() {
    let mut w = World::new(INIT);
    let create = "create sandbox sentry attempt 0";
    assert_eq!(w.decisions().first().map(String::as_str), Some(create));
    let mut waits = Vec::new();
    for _ in 0..6 {
        w.memory.sandbox_failed(w.now);
        let wait = w.memory.sandbox_retry_at.unwrap() - w.now;
        waits.push(wait.as_secs());
        assert!(w.decisions().is_empty(), "within the back-off: {:?}", w.decisions());
        w.now += wait;
        assert_eq!(w.decisions().first().map(String::as_str), Some(create));
    }
    assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
    w.memory.sandbox_created("sb-1".into(), None);
    assert_eq!((w.memory.sandbox_retry_at, w.memory.sandbox_backoff), (None, Duration::ZERO));
}

#[test]
fn a_lost_sandbox_counts_a_restart_for_what_ran_in_it_only() {
    let mut w = World::new(INIT).lost().record("setup", |r| r.done = true).running("web");
    w.memory.containers.entry("migrate".into()).or_default().restarts = 4;
    let plan = w.plan();
    for a in &plan.actions {
        w.memory.apply(a);
    }
    let restarts = |n: &str| w.memory.container(n).map(|r| (r.restarts, r.id.is_some()));
    assert_eq!(restarts("web"), Some((1, false)), "it ran: one restart");
    assert_eq!(restarts("migrate"), Some((4, false)), "not running: unchanged");
    assert_eq!(restarts("setup"), Some((0, false)), "done: unchanged");
    assert_eq!((w.memory.sandbox.clone(), w.memory.sandbox_attempt), (None, 1));
}

#[test]
fn after_a_node_restart_running_containers_count_a_restart_and_end_unknown() {
    let pod: Pod = serde_yaml::from_str(
        "
metadata: {name: p}
spec: {containers: [{name: a}, {name: b}]}
status:
  containerStatuses:
  - name: a
    restartCount: 2
    image: x
    imageID: ''
    ready: true
    containerID: ringfence://a-3
    state: {running: {startedAt: '2026-01-01T00:00:00Z'}}
  - name: b
    restartCount: 1
    image: x
    imageID: ''
    ready: false
    state: {waiting: {reason: CrashLoopBackOff}}
    lastState: {terminated: {exitCode: 1, reason: Error}}
",
    )
    .unwrap();
    let mut m = PodMemory::new(Time(chrono::Utc::now()));
    m.carry_over(&pod, Time(chrono::Utc::now()));
    let a = m.container("a").unwrap();
    let last = a.last_terminated.clone().unwrap();
    assert_eq!((a.restarts, last.exit_code, last.reason.as_deref()), (3, 255, Some("Unknown")));
    assert_eq!(last.container_id.as_deref(), Some("ringfence://a-3"));
    let b = m.container("b").unwrap();
    assert_eq!((b.restarts, b.last_terminated.as_ref().map(|t| t.exit_code)), (1, Some(1)));
}

#[test]
fn adoption_keeps_the_newest_run_of_each_container() {
    let mut m = PodMemory::new(Time(chrono::Utc::now()));
    m.adopt_container("web", "old".into(), 1);
    m.adopt_container("web", "new".into(), 3);
    m.adopt_container("web", "older".into(), 0);
    let r = m.container("web").unwrap();
    assert_eq!((r.id.as_deref(), r.restarts), (Some("new"), 3));
}

#[test]
fn images_are_pulled_per_policy() {
    let policy = |yaml: &str| PullPolicy::of(&serde_yaml::from_str(yaml).unwrap());
    assert_eq!(policy("{name: c, image: busybox}"), PullPolicy::Always);
    assert_eq!(policy("{name: c, image: 'busybox:1.36'}"), PullPolicy::IfNotPresent);
    assert_eq!(policy("{name: c, image: 'localhost:5000/busybox'}"), PullPolicy::Always);
    assert_eq!(policy("{name: c, image: 'busybox@sha256:ab'}"), PullPolicy::IfNotPresent);
    assert_eq!(policy("{name: c, image: busybox, imagePullPolicy: Never}"), PullPolicy::Never);
    let rows = [
        (PullPolicy::Always, true, ImageStep::Pull),
        (PullPolicy::Always, false, ImageStep::Pull),
        (PullPolicy::IfNotPresent, true, ImageStep::Use),
        (PullPolicy::IfNotPresent, false, ImageStep::Pull),
        (PullPolicy::Never, true, ImageStep::Use),
        (PullPolicy::Never, false, ImageStep::NeverPulled),
    ];
    for (p, present, want) in rows {
        assert_eq!(image_step(p, present), want, "{p:?} present={present}");
    }
}

#[test]
fn restart_policies_per_exit_code() {
    use spec::RestartPolicy::*;
    let rows = [
        (Always, 0, true),
        (Always, 1, true),
        (OnFailure, 0, false),
        (OnFailure, 1, true),
        (Never, 0, false),
        (Never, 1, false),
    ];
    for (policy, code, restarts) in rows {
        assert_eq!(policy.restarts(code), restarts, "{policy:?} exit {code}");
    }
    let of = |yaml: &str| spec::RestartPolicy::of(&serde_yaml::from_str(yaml).unwrap());
    assert_eq!(of("{spec: {containers: []}}"), Always);
    assert_eq!(of("{spec: {restartPolicy: OnFailure, containers: []}}"), OnFailure);
}
