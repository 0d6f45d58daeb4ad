//! The client side of the API, shared by the scheduler, the controllers and node agents (the
//! role of client-go): one [`Client`] seam (in-process or HTTPS), a typed client over it,
//! informers (list + watch caches), rate-limited work queues, the reconcile runner, and an
//! event recorder.

pub mod client;
pub mod events;
pub mod https;
pub mod informer;
pub mod key;
pub mod quantity;
pub mod runner;
pub mod typed;
pub mod workqueue;

pub use client::{Client, InProcess};
pub use events::EventRecorder;
pub use informer::{Change, Informer, Informers};
pub use key::ObjectKey;
pub use runner::{Action, Controller, Reconciler};
pub use typed::{Kube, Object, TypedWatch};
pub use workqueue::WorkQueue;
