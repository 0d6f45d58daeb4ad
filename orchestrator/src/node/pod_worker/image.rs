//! Whether a container's image must be pulled, per its imagePullPolicy (Always for untagged
//! images, else IfNotPresent, unless the pod says). Pure.

use k8s_openapi::api::core::v1::Container;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The container's policy, defaulted as the API defaults it.
    pub fn of(c: &Container) -> PullPolicy {
        let image = c.image.as_deref().unwrap_or_default();
        match c.image_pull_policy.as_deref() {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ if latest(image) => PullPolicy::Always,
            _ => PullPolicy::IfNotPresent,
        }
    }
}

/// An image without a digest or tag, which means `:latest`.
fn latest(image: &str) -> bool {
    let last = image.rsplit('/').next().unwrap_or("");
    !image.contains('@') && !last.contains(':')
}

/// What to do about a container's image before creating it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageStep {
    /// The image is there and may be used as is.
    Use,
    /// Pull it (a locally imported image still counts if the pull fails).
    Pull,
    /// Not present and never to be pulled: the container cannot start.
    NeverPulled,
}

pub fn image_step(policy: PullPolicy, present: bool) -> ImageStep {
    match (policy, present) {
        (PullPolicy::Never, false) => ImageStep::NeverPulled,
        (PullPolicy::IfNotPresent | PullPolicy::Never, true) => ImageStep::Use,
        _ => ImageStep::Pull,
    }
}
