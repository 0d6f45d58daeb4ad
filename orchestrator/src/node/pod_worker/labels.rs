//! The labels the agent puts on runtime objects, as the kubelet names them: how it finds a
//! pod's sandbox and containers again (adoption after a restart, logs, exec, metrics).

use std::collections::HashMap;

pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER: &str = "io.kubernetes.container.name";

/// The labels of a pod's sandbox.
pub fn sandbox(uid: &str, name: &str, namespace: &str) -> HashMap<String, String> {
    [
        (LABEL_POD_UID.to_owned(), uid.to_owned()),
        (LABEL_POD_NAME.to_owned(), name.to_owned()),
        (LABEL_POD_NAMESPACE.to_owned(), namespace.to_owned()),
    ]
    .into()
}

/// The labels of one of a pod's containers.
pub fn container(
    uid: &str,
    name: &str,
    namespace: &str,
    container: &str,
) -> HashMap<String, String> {
    let mut labels = sandbox(uid, name, namespace);
    labels.insert(LABEL_CONTAINER.to_owned(), container.to_owned());
    labels
}
