//! CronJob: creates a Job for each time its schedule comes due (UTC), honouring
//! `startingDeadlineSeconds`, `concurrencyPolicy` (Allow, Forbid, Replace) and `suspend`, and
//! keeps only the newest finished Jobs (`successfulJobsHistoryLimit`,
//! `failedJobsHistoryLimit`). Jobs are named after their scheduled minute, so a restarted
//! controller never starts the same run twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::Context;
use super::common::{controlled_by, enqueue_owner, owner_ref};
use super::job::finished_at;
use crate::api::ApiError;
use crate::api::cron::Schedule;
use crate::api::request::{DeleteOptions, Propagation};
use crate::kube::events::EventType;
use crate::kube::{
    Action, Controller, EventRecorder, Informer, Kube, ObjectKey, Reconciler, WorkQueue,
};

pub const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

pub struct CronJobController {
    kube: Kube,
    crons: Arc<Informer<CronJob>>,
    jobs: Arc<Informer<Job>>,
    recorder: EventRecorder,
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let crons = ctx.informers.get::<CronJob>();
    let jobs = ctx.informers.get::<Job>();
    let q = queue.clone();
    crons.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    jobs.on_change(enqueue_owner(&queue, "CronJob"));
    let reconciler = Arc::new(CronJobController {
        kube: ctx.kube.named("cronjob-controller"),
        crons,
        jobs,
        recorder: ctx.recorder.clone(),
    });
    Controller { name: "cronjob", queue, reconciler, workers: ctx.config.workers }
}

fn succeeded(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Complete" && c.status == "True"))
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        ..Default::default()
    }
}

#[async_trait]
impl Reconciler for CronJobController {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(cj) = self.crons.get(key) else { return Ok(Action::Done) };
        if cj.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let spec = cj.spec.clone().unwrap_or_default();
        let mut jobs = controlled_by(self.jobs.owned_by(&uid), &uid);
        jobs.sort_by_key(|j| j.metadata.creation_timestamp.clone().map(|t| t.0));
        self.trim_history(&jobs, spec.successful_jobs_history_limit.unwrap_or(3), true).await?;
        self.trim_history(&jobs, spec.failed_jobs_history_limit.unwrap_or(1), false).await?;
        let mut active: Vec<Arc<Job>> = jobs
            .iter()
            .filter(|j| finished_at(j).is_none() && j.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        let mut status = cj.status.clone().unwrap_or_default();
        let last_success =
            jobs.iter().filter(|j| succeeded(j)).filter_map(|j| finished_at(j)).max();
        if let Some(t) = last_success {
            status.last_successful_time = Some(Time(t));
        }
        let sched = match Schedule::parse(&spec.schedule) {
            Ok(s) => s,
            Err(e) => {
                self.recorder.record(
                    &*cj,
                    EventType::Warning,
                    "UnparseableSchedule",
                    format!("unparseable schedule {:?}: {e}", spec.schedule),
                );
                return self.write_status(&cj, status, &active).await.map(|_| Action::Done);
            }
        };
        if spec.time_zone.as_deref().is_some_and(|z| !matches!(z, "UTC" | "Etc/UTC")) {
            self.recorder.record(
                &*cj,
                EventType::Warning,
                "UnknownTimeZone",
                "only UTC schedules are supported".into(),
            );
            return self.write_status(&cj, status, &active).await.map(|_| Action::Done);
        }
        let now = Utc::now();
        let since = status
            .last_schedule_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| cj.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(now);
        // The most recent time that came due, and the next one.
        let mut due: Option<DateTime<Utc>> = None;
        let mut next = sched.next_after(since);
        while let Some(t) = next.filter(|t| *t <= now) {
            due = Some(t);
            next = sched.next_after(t);
        }
        let suspended = spec.suspend.unwrap_or(false);
        let late = due.is_some_and(|t| {
            spec.starting_deadline_seconds.is_some_and(|d| t + chrono::Duration::seconds(d) < now)
        });
        if let Some(at) = due.filter(|_| !suspended && !late) {
            let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
            if policy == "Forbid" && !active.is_empty() {
                // Skipped: try again at the next time (or when the active job finishes).
            } else {
                if policy == "Replace" {
                    for j in &active {
                        self.delete_job(j).await?;
                    }
                    active.clear();
                }
                let job = self.create_job(&cj, at).await?;
                active.push(Arc::new(job));
                status.last_schedule_time = Some(Time(at));
            }
        }
        self.write_status(&cj, status, &active).await?;
        Ok(match next {
            Some(t) => Action::RequeueAfter(
                (t - now).to_std().unwrap_or_default() + Duration::from_millis(100),
            ),
            None => Action::Done,
        })
    }
}

impl CronJobController {
    async fn create_job(&self, cj: &CronJob, at: DateTime<Utc>) -> Result<Job, ApiError> {
        let template = cj.spec.as_ref().map(|s| s.job_template.clone()).unwrap_or_default();
        let tm = template.metadata.clone().unwrap_or_default();
        let mut annotations = tm.annotations.unwrap_or_default();
        annotations
            .insert(SCHEDULED_AT.into(), at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let name =
            format!("{}-{}", cj.metadata.name.clone().unwrap_or_default(), at.timestamp() / 60);
        let job = Job {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: cj.metadata.namespace.clone(),
                labels: tm.labels,
                annotations: Some(annotations),
                owner_references: Some(vec![owner_ref(cj)]),
                ..Default::default()
            },
            spec: Some(template.spec.unwrap_or_default()),
            status: None,
        };
        match self.kube.create(&job).await {
            Ok(j) => {
                self.recorder.record(
                    cj,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created job {name}"),
                );
                self.jobs.observe(j.clone());
                Ok(j)
            }
            // Already started for this time (before a restart, or by a concurrent sync).
            Err(e) if e.code == 409 => {
                self.kube.get(cj.metadata.namespace.as_deref(), &name).await?.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_job(&self, job: &Job) -> Result<(), ApiError> {
        let k = ObjectKey::of(&job.metadata);
        let opts = DeleteOptions {
            propagation: Some(Propagation::Background),
            precondition_uid: job.metadata.uid.clone(),
            ..Default::default()
        };
        match self.kube.delete::<Job>(k.ns(), &k.name, opts).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the oldest finished Jobs of one kind (succeeded or failed) beyond `keep`.
    async fn trim_history(
        &self,
        jobs: &[Arc<Job>],
        keep: i32,
        successful: bool,
    ) -> Result<(), ApiError> {
        let done: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| {
                finished_at(j).is_some()
                    && succeeded(j) == successful
                    && j.metadata.deletion_timestamp.is_none()
            })
            .collect();
        let excess = done.len().saturating_sub(keep.max(0) as usize);
        for j in done.into_iter().take(excess) {
            self.delete_job(j).await?;
        }
        Ok(())
    }

    async fn write_status(
        &self,
        cj: &CronJob,
        mut status: k8s_openapi::api::batch::v1::CronJobStatus,
        active: &[Arc<Job>],
    ) -> Result<(), ApiError> {
        let refs: Vec<ObjectReference> = active.iter().map(|j| reference(j)).collect();
        status.active = (!refs.is_empty()).then_some(refs);
        if cj.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut new = cj.clone();
        new.status = Some(status);
        let stored = self.kube.update_status(&new).await?;
        self.crons.observe(stored);
        Ok(())
    }
}
