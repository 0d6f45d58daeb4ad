//! The Kubernetes API, independent of HTTP: the resource table, typed requests, the engine that
//! executes them against the store, and what it needs (schemas, defaults, validation, patches,
//! tables, selectors, cron schedules, discovery documents, background lifecycle work).

pub mod certificate_requests;
pub mod conversion;
pub mod cron;
pub mod custom;
pub mod defaults;
pub mod discovery;
pub mod disruption_budget;
pub mod engine;
pub mod error;
pub mod lifecycle;
pub mod limit_range;
pub mod managed;
pub mod meta;
pub mod metrics;
pub mod openapi;
pub mod openapi_v2;
pub mod patch;
pub mod quota;
pub mod request;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod service_account_token;
pub mod stateful_sets;
pub mod table;
pub mod validation;
pub mod watch_cache;

pub use engine::{Api, ApiConfig, ApiResponse, ServiceCidr};
pub use error::ApiError;
pub use request::{ApiRequest, Operation, Target, User};
