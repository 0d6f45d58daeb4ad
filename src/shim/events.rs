//! Task events published to containerd (it learns of exits only from TaskExit). One thread
//! sends them in order, so that no request handler waits on containerd.

use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};
use std::time::{SystemTime, UNIX_EPOCH};

use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::publisher::RemotePublisher;

type Event = (&'static str, Box<dyn MessageDyn>);

pub struct Events {
    queue: Mutex<Sender<Event>>,
}

impl Events {
    pub fn new(publisher: RemotePublisher, namespace: &str) -> Events {
        let (queue, events) = channel::<Event>();
        let namespace = namespace.to_owned();
        let spawned = std::thread::Builder::new().name("events".into()).spawn(move || {
            for (topic, event) in events {
                if let Err(e) = publisher.publish(Context::default(), topic, &namespace, event) {
                    tracing::warn!("publishing {topic}: {e}");
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!("no thread to publish events: {e}");
        }
        Events { queue: Mutex::new(queue) }
    }

    pub fn publish(&self, topic: &'static str, event: Box<dyn MessageDyn>) {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.send((topic, event)).is_err() {
            tracing::warn!("event {topic} dropped: no publisher");
        }
    }
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32, ..Default::default() }
}
