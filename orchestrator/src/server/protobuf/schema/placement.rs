//! Where a pod may run: node and pod (anti-)affinity, tolerations and topology spread.

use super::Ty::*;
use super::meta::LABEL_SELECTOR;
use super::{Field, Msg};

pub static AFFINITY: Msg = Msg {
    name: "Affinity",
    fields: &[
        f!(1 "nodeAffinity" Msg(&NODE_AFFINITY)),
        f!(2 "podAffinity" Msg(&POD_AFFINITY)),
        f!(3 "podAntiAffinity" Msg(&POD_ANTI_AFFINITY)),
    ],
};

pub static NODE_AFFINITY: Msg = Msg {
    name: "NodeAffinity",
    fields: &[
        f!(1 "requiredDuringSchedulingIgnoredDuringExecution" Msg(&NODE_SELECTOR)),
        f!(2 "preferredDuringSchedulingIgnoredDuringExecution" [Msg(&PREFERRED_SCHEDULING_TERM)]),
    ],
};

pub static NODE_SELECTOR: Msg =
    Msg { name: "NodeSelector", fields: &[f!(1 "nodeSelectorTerms" [Msg(&NODE_SELECTOR_TERM)])] };

pub static NODE_SELECTOR_TERM: Msg = Msg {
    name: "NodeSelectorTerm",
    fields: &[
        f!(1 "matchExpressions" [Msg(&NODE_SELECTOR_REQUIREMENT)]),
        f!(2 "matchFields" [Msg(&NODE_SELECTOR_REQUIREMENT)]),
    ],
};

pub static NODE_SELECTOR_REQUIREMENT: Msg = Msg {
    name: "NodeSelectorRequirement",
    fields: &[f!(1 "key" Str), f!(2 "operator" Str), f!(3 "values" [Str])],
};

pub static PREFERRED_SCHEDULING_TERM: Msg = Msg {
    name: "PreferredSchedulingTerm",
    fields: &[f!(1 "weight" Int), f!(2 "preference" Msg(&NODE_SELECTOR_TERM))],
};

pub static POD_AFFINITY: Msg = Msg {
    name: "PodAffinity",
    fields: &[
        f!(1 "requiredDuringSchedulingIgnoredDuringExecution" [Msg(&POD_AFFINITY_TERM)]),
        f!(2 "preferredDuringSchedulingIgnoredDuringExecution" [Msg(&WEIGHTED_POD_AFFINITY_TERM)]),
    ],
};

pub static POD_AFFINITY_TERM: Msg = Msg {
    name: "PodAffinityTerm",
    fields: &[
        f!(1 "labelSelector" Msg(&LABEL_SELECTOR)),
        f!(2 "namespaces" [Str]),
        f!(3 "topologyKey" Str),
        f!(4 "namespaceSelector" Msg(&LABEL_SELECTOR)),
        f!(5 "matchLabelKeys" [Str]),
        f!(6 "mismatchLabelKeys" [Str]),
    ],
};

pub static WEIGHTED_POD_AFFINITY_TERM: Msg = Msg {
    name: "WeightedPodAffinityTerm",
    fields: &[f!(1 "weight" Int), f!(2 "podAffinityTerm" Msg(&POD_AFFINITY_TERM))],
};

/// The same terms as a PodAffinity, which the scheduler reads the other way round.
pub static POD_ANTI_AFFINITY: Msg = Msg { name: "PodAntiAffinity", fields: POD_AFFINITY.fields };

pub static TOLERATION: Msg = Msg {
    name: "Toleration",
    fields: &[
        f!(1 "key" Str),
        f!(2 "operator" Str),
        f!(3 "value" Str),
        f!(4 "effect" Str),
        f!(5 "tolerationSeconds" Int),
    ],
};

pub static TOPOLOGY_SPREAD_CONSTRAINT: Msg = Msg {
    name: "TopologySpreadConstraint",
    fields: &[
        f!(1 "maxSkew" Int),
        f!(2 "topologyKey" Str),
        f!(3 "whenUnsatisfiable" Str),
        f!(4 "labelSelector" Msg(&LABEL_SELECTOR)),
        f!(5 "minDomains" Int),
        f!(6 "nodeAffinityPolicy" Str),
        f!(7 "nodeTaintsPolicy" Str),
        f!(8 "matchLabelKeys" [Str]),
    ],
};
