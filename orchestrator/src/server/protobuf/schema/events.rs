//! Events, in their core/v1 form and the events.k8s.io/v1 one (a different message with
//! its own field numbers).

use super::Ty::*;
use super::core_kinds::OBJECT_REFERENCE;
use super::meta::OBJECT_META;
use super::{Field, Msg};

pub static EVENT: Msg = Msg {
    name: "Event",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "involvedObject" Msg(&OBJECT_REFERENCE)),
        f!(3 "reason" Str),
        f!(4 "message" Str),
        f!(5 "source" Msg(&EVENT_SOURCE)),
        f!(6 "firstTimestamp" Time),
        f!(7 "lastTimestamp" Time),
        f!(8 "count" Int, omitempty),
        f!(9 "type" Str),
        f!(10 "eventTime" MicroTime),
        f!(11 "series" Msg(&EVENT_SERIES)),
        f!(12 "action" Str),
        f!(13 "related" Msg(&OBJECT_REFERENCE)),
        f!(14 "reportingComponent" Str),
        f!(15 "reportingInstance" Str),
    ],
};

pub static EVENT_SOURCE: Msg =
    Msg { name: "EventSource", fields: &[f!(1 "component" Str), f!(2 "host" Str)] };

pub static EVENT_SERIES: Msg = Msg {
    name: "EventSeries",
    fields: &[f!(1 "count" Int, omitempty), f!(2 "lastObservedTime" MicroTime)],
};

pub static EVENTS_V1_EVENT: Msg = Msg {
    name: "Event",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "eventTime" MicroTime),
        f!(3 "series" Msg(&EVENTS_V1_EVENT_SERIES)),
        f!(4 "reportingController" Str),
        f!(5 "reportingInstance" Str),
        f!(6 "action" Str),
        f!(7 "reason" Str),
        f!(8 "regarding" Msg(&OBJECT_REFERENCE)),
        f!(9 "related" Msg(&OBJECT_REFERENCE)),
        f!(10 "note" Str),
        f!(11 "type" Str),
        f!(12 "deprecatedSource" Msg(&EVENT_SOURCE)),
        f!(13 "deprecatedFirstTimestamp" Time),
        f!(14 "deprecatedLastTimestamp" Time),
        f!(15 "deprecatedCount" Int, omitempty),
    ],
};

pub static EVENTS_V1_EVENT_SERIES: Msg =
    Msg { name: "EventSeries", fields: &[f!(1 "count" Int), f!(2 "lastObservedTime" MicroTime)] };
