//! HorizontalPodAutoscaler (autoscaling/v2, Resource metrics): every sync period, reads the
//! target's scale and its pods' PodMetrics, computes the replica count that brings average
//! CPU (or memory) to the target — within a 10% tolerance — and scales, scaling down only to
//! the highest recommendation of the stabilization window (default 300 s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricSpec, MetricStatus, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::Context;
use super::common::is_active;
use crate::api::metrics::PodMetrics;
use crate::api::request::PatchType;
use crate::api::resources::{self, Subresource};
use crate::api::selector::LabelSelector;
use crate::api::{ApiError, Operation};
use crate::kube::events::EventType;
use crate::kube::{
    Action, Controller, EventRecorder, Informer, Kube, ObjectKey, Reconciler, WorkQueue, quantity,
};

const TOLERANCE: f64 = 0.1;
const DEFAULT_DOWNSCALE_WINDOW: i32 = 300;

pub struct HpaController {
    kube: Kube,
    hpas: Arc<Informer<HorizontalPodAutoscaler>>,
    pods: Arc<Informer<Pod>>,
    metrics: Arc<Informer<PodMetrics>>,
    recorder: EventRecorder,
    period: Duration,
    /// Recent recommendations per HPA, for stabilization.
    history: Mutex<HashMap<ObjectKey, Vec<(Instant, i32)>>>,
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let hpas = ctx.informers.get::<HorizontalPodAutoscaler>();
    let q = queue.clone();
    hpas.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    let reconciler = Arc::new(HpaController {
        kube: ctx.kube.named("horizontal-pod-autoscaler"),
        hpas,
        pods: ctx.informers.get::<Pod>(),
        metrics: ctx.informers.get::<PodMetrics>(),
        recorder: ctx.recorder.clone(),
        period: ctx.config.hpa_sync_period,
        history: Mutex::new(HashMap::new()),
    });
    Controller { name: "horizontalpodautoscaling", queue, reconciler, workers: ctx.config.workers }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
) -> HorizontalPodAutoscalerCondition {
    HorizontalPodAutoscalerCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(Time(chrono::Utc::now())),
    }
}

/// Requested and used amounts of `resource` (millis) over the pods that report metrics.
struct Usage {
    pods: i32,
    requested: i64,
    used: i64,
}

impl HpaController {
    fn usage(&self, ns: &str, selector: &LabelSelector, resource: &str) -> Usage {
        let mut u = Usage { pods: 0, requested: 0, used: 0 };
        for p in self.pods.select(ns, selector).into_iter().filter(|p| is_active(p)) {
            let name = p.metadata.name.clone().unwrap_or_default();
            let Some(m) = self.metrics.get(&ObjectKey::new(Some(ns), &name)) else { continue };
            u.pods += 1;
            for c in p.spec.iter().flat_map(|s| &s.containers) {
                let req = c
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get(resource));
                u.requested += req.and_then(|q| quantity::milli(&q.0)).unwrap_or(0);
            }
            for c in &m.containers {
                u.used += c.usage.get(resource).and_then(|q| quantity::milli(&q.0)).unwrap_or(0);
            }
        }
        u
    }

    /// (desired replicas, the metric's status) for one Resource metric.
    fn evaluate(
        &self,
        ns: &str,
        selector: &LabelSelector,
        m: &MetricSpec,
        current: i32,
    ) -> Result<(i32, MetricStatus), String> {
        let r = m
            .resource
            .as_ref()
            .filter(|_| m.type_ == "Resource")
            .ok_or_else(|| format!("metric type {} is not supported", m.type_))?;
        let u = self.usage(ns, selector, &r.name);
        if u.pods == 0 {
            return Err(format!("no metrics returned for {} of the target's pods", r.name));
        }
        let (ratio, status) = if let Some(target) = r.target.average_utilization {
            if u.requested == 0 {
                return Err(format!("missing request for {}", r.name));
            }
            let utilization = (u.used * 100 / u.requested) as i32;
            (
                f64::from(utilization) / f64::from(target.max(1)),
                MetricValueStatus {
                    average_utilization: Some(utilization),
                    average_value: Some(Quantity(format!("{}m", u.used / i64::from(u.pods)))),
                    value: None,
                },
            )
        } else if let Some(target) = &r.target.average_value {
            let per_pod = u.used as f64 / f64::from(u.pods);
            let want = quantity::milli(&target.0).unwrap_or(1).max(1) as f64;
            (
                per_pod / want,
                MetricValueStatus {
                    average_value: Some(Quantity(format!("{}m", per_pod as i64))),
                    ..Default::default()
                },
            )
        } else {
            return Err("a Resource metric needs averageUtilization or averageValue".into());
        };
        let desired = if (ratio - 1.0).abs() <= TOLERANCE {
            current
        } else {
            (ratio * f64::from(u.pods)).ceil() as i32
        };
        let status = MetricStatus {
            type_: "Resource".into(),
            resource: Some(ResourceMetricStatus { name: r.name.clone(), current: status }),
            ..Default::default()
        };
        Ok((desired, status))
    }

    /// Scale-down follows the highest recommendation within the window; scale-up the lowest
    /// within its (default zero) window.
    fn stabilize(
        &self,
        key: &ObjectKey,
        hpa: &HorizontalPodAutoscaler,
        desired: i32,
        current: i32,
    ) -> i32 {
        let behavior = hpa.spec.as_ref().and_then(|s| s.behavior.as_ref());
        let down = behavior
            .and_then(|b| b.scale_down.as_ref())
            .and_then(|r| r.stabilization_window_seconds)
            .unwrap_or(DEFAULT_DOWNSCALE_WINDOW);
        let up = behavior
            .and_then(|b| b.scale_up.as_ref())
            .and_then(|r| r.stabilization_window_seconds)
            .unwrap_or(0);
        let now = Instant::now();
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let recs = h.entry(key.clone()).or_default();
        recs.push((now, desired));
        let longest = Duration::from_secs(down.max(up).max(0) as u64);
        recs.retain(|(t, _)| now.duration_since(*t) <= longest);
        let within = |secs: i32| {
            recs.iter()
                .filter(move |(t, _)| {
                    now.duration_since(*t) <= Duration::from_secs(secs.max(0) as u64)
                })
                .map(|(_, r)| *r)
        };
        if desired < current {
            within(down).max().unwrap_or(desired).min(current)
        } else {
            within(up).min().unwrap_or(desired).max(current)
        }
    }
}

#[async_trait]
impl Reconciler for HpaController {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(hpa) = self.hpas.get(key) else {
            self.history.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
            return Ok(Action::Done);
        };
        let ns = key.namespace.clone().unwrap_or_default();
        let spec = hpa.spec.clone().unwrap_or_default();
        let target = &spec.scale_target_ref;
        let group =
            target.api_version.as_deref().map(|v| resources::split_api_version(v).0).unwrap_or("");
        let mut status = HorizontalPodAutoscalerStatus {
            current_metrics: None,
            last_scale_time: hpa.status.as_ref().and_then(|s| s.last_scale_time.clone()),
            observed_generation: hpa.metadata.generation,
            ..Default::default()
        };
        let Some(kind) =
            resources::find_kind(group, &target.kind).filter(|k| k.has(Subresource::Scale))
        else {
            status.conditions = Some(vec![condition(
                "AbleToScale",
                false,
                "FailedGetScale",
                format!("{} has no scale subresource", target.kind),
            )]);
            return self.write(&hpa, status).await;
        };
        let scale = self
            .kube
            .raw(kind, Some(&ns), Some(&target.name), Some(Subresource::Scale), Operation::Get)
            .await?;
        let current = scale["spec"]["replicas"].as_i64().unwrap_or(0) as i32;
        status.current_replicas = Some(current);
        status.desired_replicas = current;
        let selector = LabelSelector::parse(scale["status"]["selector"].as_str().unwrap_or(""))
            .unwrap_or_default();
        if current == 0 {
            status.conditions = Some(vec![condition(
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            )]);
            return self.write(&hpa, status).await;
        }
        let mut desired = 0;
        let mut metrics = Vec::new();
        let mut failure = None;
        for m in spec.metrics.iter().flatten() {
            match self.evaluate(&ns, &selector, m, current) {
                Ok((d, s)) => {
                    desired = desired.max(d);
                    metrics.push(s);
                }
                Err(e) => failure = Some(e),
            }
        }
        if metrics.is_empty() {
            let why = failure.unwrap_or_else(|| "no metrics".into());
            status.conditions = Some(vec![
                condition(
                    "AbleToScale",
                    true,
                    "SucceededGetScale",
                    "the HPA controller was able to get the target's current scale".into(),
                ),
                condition("ScalingActive", false, "FailedGetResourceMetric", why),
            ]);
            return self.write(&hpa, status).await;
        }
        let (min, max) = (spec.min_replicas.unwrap_or(1), spec.max_replicas);
        let stable = self.stabilize(key, &hpa, desired, current);
        let bounded = stable.clamp(min.min(max), max);
        let limited = if stable > max {
            condition(
                "ScalingLimited",
                true,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count".into(),
            )
        } else if stable < min {
            condition(
                "ScalingLimited",
                true,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count".into(),
            )
        } else {
            condition(
                "ScalingLimited",
                false,
                "DesiredWithinRange",
                "the desired count is within the acceptable range".into(),
            )
        };
        if bounded != current {
            let patch = json!({"spec": {"replicas": bounded}});
            self.kube
                .raw(
                    kind,
                    Some(&ns),
                    Some(&target.name),
                    Some(Subresource::Scale),
                    Operation::Patch {
                        patch_type: PatchType::Merge,
                        patch,
                        opts: Default::default(),
                    },
                )
                .await?;
            status.last_scale_time = Some(Time(chrono::Utc::now()));
            let direction = if bounded > current { "above" } else { "below" };
            self.recorder.record(
                &*hpa,
                EventType::Normal,
                "SuccessfulRescale",
                format!("New size: {bounded}; reason: All metrics {direction} target"),
            );
        }
        status.desired_replicas = bounded;
        status.current_metrics = Some(metrics);
        status.conditions = Some(vec![
            condition(
                "AbleToScale",
                true,
                "ReadyForNewScale",
                "recommended size matches current size".into(),
            ),
            condition(
                "ScalingActive",
                true,
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count".into(),
            ),
            limited,
        ]);
        self.write(&hpa, status).await
    }
}

impl HpaController {
    /// Writes the status (keeping condition transition times when nothing changed) and
    /// comes back after the sync period.
    async fn write(
        &self,
        hpa: &HorizontalPodAutoscaler,
        mut status: HorizontalPodAutoscalerStatus,
    ) -> Result<Action, ApiError> {
        let old = hpa.status.clone().unwrap_or_default();
        for c in status.conditions.iter_mut().flatten() {
            if let Some(o) = old
                .conditions
                .iter()
                .flatten()
                .find(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason)
            {
                c.last_transition_time = o.last_transition_time.clone();
            }
        }
        if hpa.status.as_ref() != Some(&status) {
            let mut new = hpa.clone();
            new.status = Some(status);
            let stored = self.kube.update_status(&new).await?;
            self.hpas.observe(stored);
        }
        Ok(Action::RequeueAfter(self.period))
    }
}
