//! scheduling.k8s.io/v1 PriorityClass, as `kubectl create priorityclass` sends it.

use super::Ty::*;
use super::meta::OBJECT_META;
use super::{Field, Msg};

pub static PRIORITY_CLASS: Msg = Msg {
    name: "PriorityClass",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "value" Int),
        f!(3 "globalDefault" Bool, omitempty),
        f!(4 "description" Str),
        f!(5 "preemptionPolicy" Str),
    ],
};
