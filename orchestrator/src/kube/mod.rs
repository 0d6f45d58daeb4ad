//! The client side of the API, shared by the scheduler, the controllers and node agents (the
//! role of client-go): one [`Client`] seam (in-process or HTTPS), a typed client over it,
//! informers (list + watch caches), rate-limited work queues, the reconcile runner, and an
//! event recorder.
//!
//! - [`client`]: the [`Client`] seam and [`InProcess`], its in-process side.
//! - [`https`]: [`Client`] over HTTPS, pooling [`connection`]s: raw HTTP/1.1 connections
//!   from a kubeconfig, which benchmarks and tests also use directly.
//! - [`typed`]: [`Kube`], typed objects over a [`Client`]; [`quantity`]: resource quantities.
//! - [`informer`]: list + watch caches; [`workqueue`]: rate-limited queues of [`key`]s;
//!   [`runner`]: the reconcile loop; [`events`]: the event recorder.

pub mod client;
pub mod connection;
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
