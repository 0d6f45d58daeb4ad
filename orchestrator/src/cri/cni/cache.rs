//! What the runtime remembers of each attachment, one file per pod sandbox: the network list
//! and runtime configuration ADD ran with and its result, so that DEL (and CHECK) run with the
//! same, whatever the configuration directory holds by then, and so that a restarted runtime
//! finds what it must take down. Written before ADD runs, completed after.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub container_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub args: String,
    /// The network list, as a `.conflist`.
    pub config: Value,
    /// The `runtimeConfig` entries by capability.
    #[serde(default)]
    pub runtime_config: serde_json::Map<String, Value>,
    /// The final ADD result, once there is one.
    #[serde(default)]
    pub result: Option<Value>,
}

pub struct Cache {
    dir: PathBuf,
}

/// Container ids become file names: only plain ones are accepted.
fn file_name(id: &str) -> std::io::Result<String> {
    let plain = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain {
        return Err(std::io::Error::other(format!("container id {id:?} is not a plain name")));
    }
    Ok(format!("{id}.json"))
}

impl Cache {
    pub fn new(dir: &Path) -> Cache {
        Cache { dir: dir.to_owned() }
    }

    pub fn save(&self, a: &Attachment) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(file_name(&a.container_id)?);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(a).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, &path)
    }

    pub fn load(&self, id: &str) -> Option<Attachment> {
        let text = std::fs::read(self.dir.join(file_name(id).ok()?)).ok()?;
        match serde_json::from_slice(&text) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(id, "unreadable CNI cache entry: {e}");
                None
            }
        }
    }

    pub fn remove(&self, id: &str) {
        if let Ok(name) = file_name(id) {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }

    /// The ids of every attachment recorded.
    pub fn ids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_round_trip_and_odd_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&dir.path().join("cache"));
        assert!(cache.ids().is_empty());
        let a = Attachment {
            container_id: "abc123".into(),
            netns: "/run/netns/rf-abc123".into(),
            ifname: "eth0".into(),
            args: "IgnoreUnknown=1".into(),
            config: serde_json::json!({"cniVersion": "1.0.0", "name": "n", "plugins": []}),
            runtime_config: Default::default(),
            result: None,
        };
        cache.save(&a).unwrap();
        assert_eq!(cache.load("abc123"), Some(a.clone()));
        assert_eq!(cache.ids(), ["abc123"]);
        for bad in ["", "../x", "a/b", "a.b"] {
            assert!(cache.save(&Attachment { container_id: bad.into(), ..a.clone() }).is_err());
            assert!(cache.load(bad).is_none());
        }
        std::fs::write(dir.path().join("cache/broken.json"), "{").unwrap();
        assert!(cache.load("broken").is_none());
        cache.remove("abc123");
        assert!(cache.load("abc123").is_none());
    }
}
