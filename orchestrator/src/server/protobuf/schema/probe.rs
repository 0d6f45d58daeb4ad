//! Container probes (liveness, readiness, startup) and lifecycle hooks, which share their
//! actions.

use super::Ty::*;
use super::{Field, Msg};

pub static PROBE: Msg = Msg {
    name: "Probe",
    fields: &[
        f!(1 "handler" Inline(&PROBE_HANDLER)),
        f!(2 "initialDelaySeconds" Int, omitempty),
        f!(3 "timeoutSeconds" Int, omitempty),
        f!(4 "periodSeconds" Int, omitempty),
        f!(5 "successThreshold" Int, omitempty),
        f!(6 "failureThreshold" Int, omitempty),
        f!(7 "terminationGracePeriodSeconds" Int),
    ],
};

pub static PROBE_HANDLER: Msg = Msg {
    name: "ProbeHandler",
    fields: &[
        f!(1 "exec" Msg(&EXEC_ACTION)),
        f!(2 "httpGet" Msg(&HTTP_GET_ACTION)),
        f!(3 "tcpSocket" Msg(&TCP_SOCKET_ACTION)),
        f!(4 "grpc" Msg(&GRPC_ACTION)),
    ],
};

pub static EXEC_ACTION: Msg = Msg { name: "ExecAction", fields: &[f!(1 "command" [Str])] };

pub static HTTP_GET_ACTION: Msg = Msg {
    name: "HTTPGetAction",
    fields: &[
        f!(1 "path" Str),
        f!(2 "port" IntOrString),
        f!(3 "host" Str),
        f!(4 "scheme" Str),
        f!(5 "httpHeaders" [Msg(&HTTP_HEADER)]),
    ],
};

pub static HTTP_HEADER: Msg =
    Msg { name: "HTTPHeader", fields: &[f!(1 "name" Str), f!(2 "value" Str)] };

pub static TCP_SOCKET_ACTION: Msg =
    Msg { name: "TCPSocketAction", fields: &[f!(1 "port" IntOrString), f!(2 "host" Str)] };

pub static GRPC_ACTION: Msg =
    Msg { name: "GRPCAction", fields: &[f!(1 "port" Int), f!(2 "service" Str)] };

pub static LIFECYCLE: Msg = Msg {
    name: "Lifecycle",
    fields: &[f!(1 "postStart" Msg(&LIFECYCLE_HANDLER)), f!(2 "preStop" Msg(&LIFECYCLE_HANDLER))],
};

pub static LIFECYCLE_HANDLER: Msg = Msg {
    name: "LifecycleHandler",
    fields: &[
        f!(1 "exec" Msg(&EXEC_ACTION)),
        f!(2 "httpGet" Msg(&HTTP_GET_ACTION)),
        f!(3 "tcpSocket" Msg(&TCP_SOCKET_ACTION)),
        f!(4 "sleep" Msg(&SLEEP_ACTION)),
    ],
};

pub static SLEEP_ACTION: Msg = Msg { name: "SleepAction", fields: &[f!(1 "seconds" Int)] };
