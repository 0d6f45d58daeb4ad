//! What every device holds once the driver has activated it: guest memory, its queues and the
//! interrupt line.

use std::sync::Arc;

use virtio_queue::Queue;

use crate::{ActivateError, GuestMem, Interrupt, QueueConfig, queue};

pub struct Active {
    pub mem: GuestMem,
    pub queues: Vec<Queue>,
    pub interrupt: Arc<dyn Interrupt>,
}

impl Active {
    /// Builds the queues the driver set up; a device needs all of `max_sizes`.
    pub fn new(
        mem: GuestMem,
        configs: &[QueueConfig],
        max_sizes: &[u16],
        interrupt: Arc<dyn Interrupt>,
    ) -> Result<Active, ActivateError> {
        if configs.len() != max_sizes.len() {
            return Err(ActivateError::Invalid(format!(
                "the device needs {} queues, the driver set up {}",
                max_sizes.len(),
                configs.len()
            )));
        }
        let queues = configs
            .iter()
            .zip(max_sizes)
            .enumerate()
            .map(|(i, (c, max))| queue::build(i, *max, c, &mem))
            .collect::<Result<_, _>>()?;
        Ok(Active { mem, queues, interrupt })
    }

    /// Where the device stands in each queue.
    pub fn positions(&self) -> Vec<crate::QueuePosition> {
        use virtio_queue::QueueT;
        self.queues
            .iter()
            .map(|q| crate::QueuePosition { next_avail: q.next_avail(), next_used: q.next_used() })
            .collect()
    }
}
