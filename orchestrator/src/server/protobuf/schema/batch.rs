//! batch/v1 Job and CronJob (`kubectl create job|cronjob`, `kubectl create job --from`).

use super::Ty::*;
use super::core_kinds::OBJECT_REFERENCE;
use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::pod::POD_TEMPLATE_SPEC;
use super::{Field, Msg};

pub static CRON_JOB: Msg = Msg {
    name: "CronJob",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&CRON_JOB_SPEC)),
        f!(3 "status" Msg(&CRON_JOB_STATUS)),
    ],
};

pub static CRON_JOB_SPEC: Msg = Msg {
    name: "CronJobSpec",
    fields: &[
        f!(1 "schedule" Str),
        f!(8 "timeZone" Str),
        f!(2 "startingDeadlineSeconds" Int),
        f!(3 "concurrencyPolicy" Str),
        f!(4 "suspend" Bool),
        f!(5 "jobTemplate" Msg(&JOB_TEMPLATE_SPEC)),
        f!(6 "successfulJobsHistoryLimit" Int),
        f!(7 "failedJobsHistoryLimit" Int),
    ],
};

pub static JOB_TEMPLATE_SPEC: Msg = Msg {
    name: "JobTemplateSpec",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&JOB_SPEC))],
};

pub static JOB_SPEC: Msg = Msg {
    name: "JobSpec",
    fields: &[
        f!(1 "parallelism" Int),
        f!(2 "completions" Int),
        f!(3 "activeDeadlineSeconds" Int),
        f!(11 "podFailurePolicy" Msg(&POD_FAILURE_POLICY)),
        f!(16 "successPolicy" Msg(&SUCCESS_POLICY)),
        f!(7 "backoffLimit" Int),
        f!(12 "backoffLimitPerIndex" Int),
        f!(13 "maxFailedIndexes" Int),
        f!(4 "selector" Msg(&LABEL_SELECTOR)),
        f!(5 "manualSelector" Bool),
        f!(6 "template" Msg(&POD_TEMPLATE_SPEC)),
        f!(8 "ttlSecondsAfterFinished" Int),
        f!(9 "completionMode" Str),
        f!(10 "suspend" Bool),
        f!(14 "podReplacementPolicy" Str),
        f!(15 "managedBy" Str),
    ],
};

pub static POD_FAILURE_POLICY: Msg =
    Msg { name: "PodFailurePolicy", fields: &[f!(1 "rules" [Msg(&POD_FAILURE_POLICY_RULE)])] };

pub static POD_FAILURE_POLICY_RULE: Msg = Msg {
    name: "PodFailurePolicyRule",
    fields: &[
        f!(1 "action" Str),
        f!(2 "onExitCodes" Msg(&POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT)),
        f!(3 "onPodConditions" [Msg(&POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN)]),
    ],
};

pub static POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT: Msg = Msg {
    name: "PodFailurePolicyOnExitCodesRequirement",
    fields: &[f!(1 "containerName" Str), f!(2 "operator" Str), f!(3 "values" [Int])],
};

pub static POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN: Msg = Msg {
    name: "PodFailurePolicyOnPodConditionsPattern",
    fields: &[f!(1 "type" Str), f!(2 "status" Str)],
};

pub static SUCCESS_POLICY: Msg =
    Msg { name: "SuccessPolicy", fields: &[f!(1 "rules" [Msg(&SUCCESS_POLICY_RULE)])] };

pub static SUCCESS_POLICY_RULE: Msg = Msg {
    name: "SuccessPolicyRule",
    fields: &[f!(1 "succeededIndexes" Str), f!(2 "succeededCount" Int)],
};

pub static JOB: Msg = Msg {
    name: "Job",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&JOB_SPEC)),
        f!(3 "status" Msg(&JOB_STATUS)),
    ],
};

pub static CRON_JOB_STATUS: Msg = Msg {
    name: "CronJobStatus",
    fields: &[
        f!(1 "active" [Msg(&OBJECT_REFERENCE)]),
        f!(4 "lastScheduleTime" Time),
        f!(5 "lastSuccessfulTime" Time),
    ],
};

pub static JOB_STATUS: Msg = Msg {
    name: "JobStatus",
    fields: &[
        f!(1 "conditions" [Msg(&JOB_CONDITION)]),
        f!(2 "startTime" Time),
        f!(3 "completionTime" Time),
        f!(4 "active" Int, omitempty),
        f!(5 "succeeded" Int, omitempty),
        f!(6 "failed" Int, omitempty),
        f!(11 "terminating" Int),
        f!(7 "completedIndexes" Str),
        f!(10 "failedIndexes" Str),
        f!(8 "uncountedTerminatedPods" Msg(&UNCOUNTED_TERMINATED_PODS)),
        f!(9 "ready" Int),
    ],
};

pub static JOB_CONDITION: Msg = Msg {
    name: "JobCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(3 "lastProbeTime" Time),
        f!(4 "lastTransitionTime" Time),
        f!(5 "reason" Str),
        f!(6 "message" Str),
    ],
};

pub static UNCOUNTED_TERMINATED_PODS: Msg = Msg {
    name: "UncountedTerminatedPods",
    fields: &[f!(1 "succeeded" [Str]), f!(2 "failed" [Str])],
};
