//! The Container Network Interface (spec 1.0.0) as a runtime uses it: pod sandboxes are
//! attached to the network that a configuration list describes, by plugin executables.
//!
//! - [`config`]: the list in use (the lexically first file of the configuration directory),
//!   and the default one the runtime writes.
//! - [`invoke`]: running one plugin (environment, stdin, timeout, error output).
//! - [`result`]: what plugins print: results and errors.
//! - [`cache`]: what ADD ran with and returned, per sandbox, for DEL, CHECK and restarts.
//!
//! [`Cni`] chains them: ADD through the list in order, each plugin given the previous one's
//! result; DEL in reverse with the cached result; CHECK in order.

pub mod cache;
pub mod config;
pub mod invoke;
pub mod result;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use cache::{Attachment, Cache};
use config::NetworkList;
use invoke::{Invocation, Op};
use result::CniResult;

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("no CNI network configuration (*.conflist, *.conf) in {0}")]
    NoConfig(PathBuf),
    #[error("CNI network configuration {path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("CNI plugin {plugin:?} not found in {dirs}")]
    PluginNotFound { plugin: String, dirs: String },
    #[error("CNI plugin {plugin} failed {op}: {msg}")]
    Plugin { plugin: String, op: &'static str, msg: String },
    #[error("CNI plugin {plugin} {op}: {msg}")]
    Exec { plugin: String, op: &'static str, msg: String },
    #[error("CNI plugin {plugin} {op} timed out after {secs} s")]
    Timeout { plugin: String, op: &'static str, secs: f64 },
    #[error("CNI plugin {plugin} ADD: {msg}")]
    Result { plugin: String, msg: String },
    #[error("CNI cache: {0}")]
    Cache(#[from] std::io::Error),
}

/// One attachment to make.
pub struct AttachRequest<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub args: String,
    /// Offered to plugins that declare the capability (`portMappings`, ...).
    pub runtime_config: Map<String, Value>,
}

/// The runtime's side of CNI: where configurations and plugins are, and the cache.
pub struct Cni {
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
    cache: Cache,
    /// How long one plugin may run.
    pub timeout: Duration,
}

/// The configuration one plugin reads on stdin: its own object with the list's version and
/// name, the previous result, and the runtime configuration it has capabilities for.
fn plugin_config(
    list: &NetworkList,
    plugin: &Map<String, Value>,
    prev: Option<&Value>,
    runtime: &Map<String, Value>,
) -> Vec<u8> {
    let mut conf = plugin.clone();
    conf.insert("cniVersion".into(), list.cni_version.clone().into());
    conf.insert("name".into(), list.name.clone().into());
    conf.remove("prevResult");
    conf.remove("runtimeConfig");
    if let Some(p) = prev {
        conf.insert("prevResult".into(), p.clone());
    }
    let offered: Map<String, Value> = runtime
        .iter()
        .filter(|(cap, _)| config::has_capability(plugin, cap))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !offered.is_empty() {
        conf.insert("runtimeConfig".into(), offered.into());
    }
    serde_json::to_vec(&conf).unwrap_or_default()
}

impl Cni {
    pub fn new(conf_dir: &Path, bin_dirs: Vec<PathBuf>, cache_dir: &Path) -> Cni {
        Cni {
            conf_dir: conf_dir.to_owned(),
            bin_dirs,
            cache: Cache::new(cache_dir),
            timeout: Duration::from_secs(60),
        }
    }

    /// The network list a new attachment would use.
    pub fn config(&self) -> Result<NetworkList, CniError> {
        config::load(&self.conf_dir).map(|(_, l)| l)
    }

    fn invocation<'a>(&'a self, a: &'a Attachment) -> Invocation<'a> {
        Invocation {
            container_id: &a.container_id,
            netns: &a.netns,
            ifname: &a.ifname,
            args: &a.args,
            bin_dirs: &self.bin_dirs,
            timeout: self.timeout,
        }
    }

    /// ADD through `list`; on failure what was added is deleted again.
    pub fn add(&self, list: &NetworkList, req: AttachRequest) -> Result<CniResult, CniError> {
        let mut a = Attachment {
            container_id: req.container_id.to_owned(),
            netns: req.netns.to_owned(),
            ifname: req.ifname.to_owned(),
            args: req.args,
            config: list.to_json(),
            runtime_config: req.runtime_config,
            result: None,
        };
        // Cached first: a runtime dying during ADD leaves its successor something to DEL.
        self.cache.save(&a)?;
        let added = self.add_chain(list, &a);
        match added {
            Ok(r) => {
                a.result = Some(r.raw.clone());
                if let Err(e) = self.cache.save(&a) {
                    let _ = self.del(&a.container_id);
                    return Err(e.into());
                }
                Ok(r)
            }
            Err(e) => {
                if let Err(del) = self.del(&a.container_id) {
                    tracing::warn!(id = %a.container_id, "CNI DEL after a failed ADD: {del}");
                }
                Err(e)
            }
        }
    }

    fn add_chain(&self, list: &NetworkList, a: &Attachment) -> Result<CniResult, CniError> {
        let inv = self.invocation(a);
        let mut prev: Option<CniResult> = None;
        for plugin in &list.plugins {
            let name = config::plugin_type(plugin);
            let stdin =
                plugin_config(list, plugin, prev.as_ref().map(|r| &r.raw), &a.runtime_config);
            let out = invoke::exec(name, Op::Add, &inv, &stdin)?;
            let r = CniResult::parse(&out)
                .map_err(|msg| CniError::Result { plugin: name.to_owned(), msg })?;
            prev = Some(r);
        }
        prev.ok_or_else(|| CniError::Result { plugin: list.name.clone(), msg: "no plugins".into() })
    }

    /// The cached list of an attachment (what its ADD ran with).
    fn cached_list(a: &Attachment) -> Result<NetworkList, CniError> {
        NetworkList::parse(&a.config.to_string(), false).map_err(|msg| CniError::Config {
            path: PathBuf::from(format!("(cached for {})", a.container_id)),
            msg,
        })
    }

    /// DEL of sandbox `id`'s attachment, in reverse order with the cached result; forgotten
    /// once every plugin succeeded. Nothing cached: nothing to do. Every plugin gets its DEL
    /// even when one before it failed: one broken plugin must not keep the others' leases.
    pub fn del(&self, id: &str) -> Result<(), CniError> {
        let Some(a) = self.cache.load(id) else { return Ok(()) };
        let list = Self::cached_list(&a)?;
        let inv = self.invocation(&a);
        let mut first_error = None;
        for plugin in list.plugins.iter().rev() {
            let stdin = plugin_config(&list, plugin, a.result.as_ref(), &a.runtime_config);
            match invoke::exec(config::plugin_type(plugin), Op::Del, &inv, &stdin) {
                Ok(_) => {}
                // Nothing can undo what a plugin that is gone did (nor did it run if an
                // ADD failed for want of it): keeping the entry would only retry forever.
                Err(e @ CniError::PluginNotFound { .. }) => tracing::warn!(id, "CNI DEL: {e}"),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => {
                self.cache.remove(id);
                Ok(())
            }
        }
    }

    /// CHECK of sandbox `id`'s attachment (skipped where the list disables it or predates it).
    pub fn check(&self, id: &str) -> Result<(), CniError> {
        let a = self.cache.load(id).ok_or_else(|| {
            CniError::Cache(std::io::Error::other(format!("no attachment cached for {id}")))
        })?;
        let list = Self::cached_list(&a)?;
        if list.disable_check || list.cni_version.starts_with("0.3.") {
            return Ok(());
        }
        let inv = self.invocation(&a);
        for plugin in &list.plugins {
            let stdin = plugin_config(&list, plugin, a.result.as_ref(), &a.runtime_config);
            invoke::exec(config::plugin_type(plugin), Op::Check, &inv, &stdin)?;
        }
        Ok(())
    }

    /// The ids of every attachment cached (after a restart: every one left over).
    pub fn cached(&self) -> Vec<String> {
        self.cache.ids()
    }

    /// The network namespace a cached attachment was made in.
    pub fn cached_netns(&self, id: &str) -> Option<PathBuf> {
        self.cache.load(id).map(|a| a.netns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_gets_the_lists_name_its_prev_result_and_only_its_capabilities() {
        let list = NetworkList::parse(
            r#"{"cniVersion": "1.0.0", "name": "net", "plugins": [
                {"type": "bridge", "cniVersion": "0.1.0", "prevResult": "forged"},
                {"type": "portmap", "capabilities": {"portMappings": true}}]}"#,
            false,
        )
        .unwrap();
        let mut runtime = Map::new();
        runtime.insert("portMappings".into(), serde_json::json!([{"hostPort": 8080}]));
        runtime.insert("bandwidth".into(), serde_json::json!({}));
        let first: Value =
            serde_json::from_slice(&plugin_config(&list, &list.plugins[0], None, &runtime))
                .unwrap();
        assert_eq!(first["cniVersion"], "1.0.0");
        assert_eq!(first["name"], "net");
        assert!(first.get("prevResult").is_none() && first.get("runtimeConfig").is_none());
        let prev = serde_json::json!({"cniVersion": "1.0.0", "ips": []});
        let second: Value =
            serde_json::from_slice(&plugin_config(&list, &list.plugins[1], Some(&prev), &runtime))
                .unwrap();
        assert_eq!(second["prevResult"], prev);
        assert_eq!(
            second["runtimeConfig"],
            serde_json::json!({"portMappings": [{"hostPort": 8080}]})
        );
    }
}
