//! Job: runs pods until `completions` of them succeed, at most `parallelism` at a time;
//! fails after more than `backoffLimit` failed pods (recreating failed ones after an
//! exponential delay) or after `activeDeadlineSeconds`; a finished Job is deleted
//! `ttlSecondsAfterFinished` later.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Context;
use super::common::{controlled_by, enqueue_owner, is_active, is_ready, phase};
use super::pod_control::PodControl;
use crate::api::ApiError;
use crate::api::request::{DeleteOptions, Propagation};
use crate::kube::events::EventType;
use crate::kube::{
    Action, Controller, EventRecorder, Informer, Kube, ObjectKey, Reconciler, WorkQueue,
};

const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

pub struct JobController {
    kube: Kube,
    jobs: Arc<Informer<Job>>,
    pods: Arc<Informer<Pod>>,
    pod_control: PodControl,
    recorder: EventRecorder,
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let jobs = ctx.informers.get::<Job>();
    let pods = ctx.informers.get::<Pod>();
    let q = queue.clone();
    jobs.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    pods.on_change(enqueue_owner(&queue, "Job"));
    let kube = ctx.kube.named("job-controller");
    let reconciler = Arc::new(JobController {
        pod_control: PodControl::new(kube.clone(), pods.clone(), ctx.recorder.clone()),
        kube,
        jobs,
        pods,
        recorder: ctx.recorder.clone(),
    });
    Controller { name: "job", queue, reconciler, workers: ctx.config.workers }
}

fn condition(type_: &str, reason: &str, message: &str, now: &Time) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// When the Job finished (Complete or Failed), if it did.
pub fn finished_at(job: &Job) -> Option<chrono::DateTime<chrono::Utc>> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0).unwrap_or_default())
}

/// When the newest failed pod finished.
fn last_failure(pods: &[Arc<Pod>]) -> Option<chrono::DateTime<chrono::Utc>> {
    pods.iter()
        .filter(|p| phase(p) == "Failed")
        .filter_map(|p| {
            let s = p.status.as_ref()?;
            let finished = s
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| {
                    c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0)
                })
                .max();
            finished.or_else(|| s.start_time.as_ref().map(|t| t.0))
        })
        .max()
}

#[async_trait]
impl Reconciler for JobController {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(job) = self.jobs.get(key) else { return Ok(Action::Done) };
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let now = chrono::Utc::now();
        if let Some(done) = finished_at(&job) {
            return self.expire(&job, key, done, now).await;
        }
        let ns = key.namespace.clone().unwrap_or_default();
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let spec = job.spec.clone().unwrap_or_default();
        let pods = controlled_by(self.pods.owned_by(&uid), &uid);
        let active: Vec<Arc<Pod>> = pods.iter().filter(|p| is_active(p)).cloned().collect();
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i32;
        let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i32;
        let old = job.status.clone().unwrap_or_default();
        let start = old.start_time.as_ref().map(|t| t.0).unwrap_or(now);
        let completions = spec.completions;
        let parallelism = spec.parallelism.unwrap_or(1).max(0);
        let suspended = spec.suspend.unwrap_or(false);
        let time = Time(now);
        let mut status = JobStatus {
            start_time: if suspended && old.start_time.is_none() {
                None
            } else {
                Some(Time(start))
            },
            succeeded: Some(succeeded),
            failed: Some(failed),
            conditions: old.conditions.clone(),
            ..Default::default()
        };
        let deadline = spec
            .active_deadline_seconds
            .filter(|_| !suspended)
            .map(|s| start + chrono::Duration::seconds(s));
        let failure = if failed > spec.backoff_limit.unwrap_or(6) {
            Some(("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
        } else if deadline.is_some_and(|d| d <= now) {
            Some(("DeadlineExceeded", "Job was active longer than specified deadline"))
        } else {
            None
        };
        let complete = match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };
        let mut requeue: Option<Duration> = deadline.and_then(|d| (d - now).to_std().ok());
        let mut remaining = active.clone();
        if let Some((reason, message)) = failure {
            self.delete_pods(&active).await?;
            remaining.clear();
            let conds = status.conditions.get_or_insert_with(Vec::new);
            conds.push(condition("FailureTarget", reason, message, &time));
            conds.push(condition("Failed", reason, message, &time));
            self.recorder.record(&*job, EventType::Warning, reason, message.to_owned());
            requeue = None;
        } else if complete {
            self.delete_pods(&active).await?;
            remaining.clear();
            let conds = status.conditions.get_or_insert_with(Vec::new);
            conds.push(condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                &time,
            ));
            conds.push(condition(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                &time,
            ));
            status.completion_time = Some(time.clone());
            self.recorder.record(&*job, EventType::Normal, "Completed", "Job completed".into());
            requeue = None;
        } else if suspended {
            self.delete_pods(&active).await?;
            remaining.clear();
        } else {
            let want = match completions {
                Some(c) => parallelism.min(c - succeeded),
                None if succeeded > 0 => 0,
                None => parallelism,
            }
            .max(0) as usize;
            if active.len() < want {
                // Failed pods are replaced only after a growing delay.
                let delay = if failed > 0 {
                    BACKOFF_BASE.saturating_mul(1 << (failed - 1).min(6)).min(BACKOFF_MAX)
                } else {
                    Duration::ZERO
                };
                let ready_at = last_failure(&pods)
                    .map(|t| t + chrono::Duration::from_std(delay).unwrap_or_default());
                match ready_at.filter(|t| *t > now) {
                    Some(t) => {
                        let wait = (t - now).to_std().unwrap_or_default();
                        requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
                    }
                    None => {
                        let template = spec.template.clone();
                        let n = want - active.len();
                        let prefix = format!("{}-", key.name);
                        self.pod_control
                            .create_from_template(&*job, &template, &ns, &prefix, n)
                            .await?;
                        remaining = controlled_by(self.pods.owned_by(&uid), &uid)
                            .into_iter()
                            .filter(|p| is_active(p))
                            .collect();
                    }
                }
            } else if active.len() > want {
                let mut extra = active.clone();
                super::common::deletion_order(&mut extra);
                extra.truncate(active.len() - want);
                self.delete_pods(&extra).await?;
                remaining.retain(|p| !extra.iter().any(|e| e.metadata.uid == p.metadata.uid));
            }
        }
        status.active = Some(remaining.len() as i32);
        status.ready = Some(remaining.iter().filter(|p| is_ready(p)).count() as i32);
        status.terminating =
            Some(pods.iter().filter(|p| p.metadata.deletion_timestamp.is_some()).count() as i32);
        if job.status.as_ref() != Some(&status) {
            let mut new = (*job).clone();
            new.status = Some(status);
            let stored = self.kube.update_status(&new).await?;
            self.jobs.observe(stored);
        }
        Ok(requeue.map_or(Action::Done, Action::RequeueAfter))
    }
}

impl JobController {
    async fn delete_pods(&self, pods: &[Arc<Pod>]) -> Result<(), ApiError> {
        for p in pods {
            self.pod_control.delete(p).await?;
        }
        Ok(())
    }

    /// A finished Job lives `ttlSecondsAfterFinished`, then goes with its pods.
    async fn expire(
        &self,
        job: &Job,
        key: &ObjectKey,
        done: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Action, ApiError> {
        let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
            return Ok(Action::Done);
        };
        let at = done + chrono::Duration::seconds(ttl.into());
        if at > now {
            return Ok(Action::RequeueAfter((at - now).to_std().unwrap_or_default()));
        }
        let opts = DeleteOptions {
            propagation: Some(Propagation::Foreground),
            precondition_uid: job.metadata.uid.clone(),
            ..Default::default()
        };
        self.kube.delete::<Job>(key.ns(), &key.name, opts).await?;
        Ok(Action::Done)
    }
}
