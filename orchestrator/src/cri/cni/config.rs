//! Network configuration lists: the lexically first `*.conflist` or `*.conf` of the
//! configuration directory (a lone `.conf` is a list of one plugin), checked before any
//! plugin sees it, and the default list the runtime writes when the directory has none.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::CniError;

/// The spec versions whose result shape this runtime reads (0.3.0 introduced today's).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// The file the runtime writes; used only while the directory holds no other configuration,
/// so that a list a user drops in wins whatever its name.
pub const DEFAULT_FILE: &str = "99-ringfence-default.conflist";

/// A parsed network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    pub cni_version: String,
    pub name: String,
    pub disable_check: bool,
    /// Each plugin's configuration object as written (it has a `type`).
    pub plugins: Vec<Map<String, Value>>,
}

/// A plugin's `type`: the name of its executable.
pub fn plugin_type(plugin: &Map<String, Value>) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// Whether a plugin declares capability `cap` (`"capabilities": {"portMappings": true}`).
pub fn has_capability(plugin: &Map<String, Value>, cap: &str) -> bool {
    plugin.get("capabilities").and_then(|c| c.get(cap)).and_then(Value::as_bool) == Some(true)
}

/// Network names as the spec allows them: they become directory names of IPAM plugins.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_plugin(index: usize, plugin: &Value) -> Result<Map<String, Value>, String> {
    let obj = plugin.as_object().ok_or_else(|| format!("plugin {index} is not an object"))?;
    let ty = obj
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("plugin {index} has no \"type\""))?;
    // The type names a file in the plugin directories, nothing elsewhere.
    if ty.is_empty() || ty.contains('/') || ty == "." || ty == ".." {
        return Err(format!("plugin {index}: type {ty:?} is not a plugin name"));
    }
    Ok(obj.clone())
}

impl NetworkList {
    /// Parses a `.conflist` (`lone == false`) or a `.conf` (one plugin's configuration).
    pub fn parse(text: &str, lone: bool) -> Result<NetworkList, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let obj = v.as_object().ok_or("not a JSON object")?;
        let cni_version =
            obj.get("cniVersion").and_then(Value::as_str).ok_or("no \"cniVersion\"")?.to_owned();
        if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
            return Err(format!(
                "cniVersion {cni_version:?} is not supported (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            ));
        }
        let name = obj.get("name").and_then(Value::as_str).ok_or("no \"name\"")?.to_owned();
        if !valid_name(&name) {
            return Err(format!("network name {name:?} is not valid"));
        }
        let disable_check = obj.get("disableCheck").and_then(Value::as_bool).unwrap_or(false);
        let plugins = if lone {
            vec![check_plugin(0, &v)?]
        } else {
            let list = obj.get("plugins").and_then(Value::as_array).ok_or(
                "no \"plugins\" list (a single plugin's configuration belongs in a .conf)",
            )?;
            if list.is_empty() {
                return Err("the \"plugins\" list is empty".into());
            }
            list.iter().enumerate().map(|(i, p)| check_plugin(i, p)).collect::<Result<_, _>>()?
        };
        Ok(NetworkList { cni_version, name, disable_check, plugins })
    }

    /// The list as a `.conflist` (what the cache keeps, so that DEL sees what ADD saw).
    pub fn to_json(&self) -> Value {
        json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "disableCheck": self.disable_check,
            "plugins": self.plugins,
        })
    }

    pub fn has_capability(&self, cap: &str) -> bool {
        self.plugins.iter().any(|p| has_capability(p, cap))
    }
}

/// The configuration files of `dir` the runtime considers, in the order it considers them.
fn candidates(dir: &Path) -> Result<Vec<PathBuf>, CniError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CniError::Config { path: dir.to_owned(), msg: e.to_string() })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conflist" || x == "conf"))
        .collect();
    files.sort();
    if files.len() > 1 {
        files.retain(|p| !p.ends_with(DEFAULT_FILE));
    }
    Ok(files)
}

/// Whether `dir` holds a configuration besides the runtime's default.
pub fn has_user_config(dir: &Path) -> bool {
    candidates(dir).is_ok_and(|c| c.iter().any(|p| !p.ends_with(DEFAULT_FILE)))
}

/// The network configuration in use: the lexically first file of `dir`.
pub fn load(dir: &Path) -> Result<(PathBuf, NetworkList), CniError> {
    let path =
        candidates(dir)?.into_iter().next().ok_or_else(|| CniError::NoConfig(dir.to_owned()))?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| CniError::Config { path: path.clone(), msg: e.to_string() })?;
    let lone = path.extension().is_some_and(|x| x == "conf");
    let list = NetworkList::parse(&text, lone)
        .map_err(|msg| CniError::Config { path: path.clone(), msg })?;
    Ok((path, list))
}

/// An IPv4 subnet, `a.b.c.d/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub network: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Cidr {
    /// Parses a subnet with room for a gateway and at least one pod (at most a /30).
    pub fn parse(text: &str) -> Result<Ipv4Cidr, String> {
        let (addr, len) = text.split_once('/').ok_or_else(|| format!("{text}: not a.b.c.d/len"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| format!("{text}: not an IPv4 address"))?;
        let len: u8 = len.parse().map_err(|_| format!("{text}: bad prefix length"))?;
        if !(1..=30).contains(&len) {
            return Err(format!("{text}: the prefix must be /1 to /30"));
        }
        let mask = u32::MAX << (32 - len);
        if u32::from(addr) & !mask != 0 {
            return Err(format!("{text}: host bits are set"));
        }
        Ok(Ipv4Cidr { network: addr, len })
    }

    /// The first address: the bridge's, the pods' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.len)
    }
}

/// The default list: the reference `bridge` (the node's bridge as the pods' gateway) with
/// `host-local` addresses from `subnet`, kept in `ipam_dir`, and `loopback`. The name is the
/// bridge's, so that runtimes on one host with bridges of their own never share leases.
pub fn default_list(bridge: &str, subnet: Ipv4Cidr, ipam_dir: &Path) -> NetworkList {
    let plugins = [
        json!({
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            // A pod reaches itself through a Service address.
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": subnet.to_string(), "gateway": subnet.gateway().to_string()}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": ipam_dir.to_string_lossy(),
            },
        }),
        json!({"type": "loopback"}),
    ];
    NetworkList {
        cni_version: "1.0.0".into(),
        name: format!("ringfence-{bridge}"),
        disable_check: false,
        plugins: plugins.into_iter().filter_map(|p| p.as_object().cloned()).collect(),
    }
}

/// Writes the default list into `dir` unless the directory holds another configuration
/// (rewritten each start, so that it follows the runtime's flags). True when it is in use.
pub fn ensure_default(dir: &Path, list: &NetworkList) -> Result<bool, CniError> {
    let err = |e: std::io::Error| CniError::Config { path: dir.to_owned(), msg: e.to_string() };
    std::fs::create_dir_all(dir).map_err(err)?;
    if has_user_config(dir) {
        return Ok(false);
    }
    let text = serde_json::to_string_pretty(&list.to_json()).map_err(std::io::Error::other);
    let tmp = dir.join(format!(".{DEFAULT_FILE}.tmp"));
    text.and_then(|t| std::fs::write(&tmp, t))
        .and_then(|()| std::fs::rename(&tmp, dir.join(DEFAULT_FILE)))
        .map_err(err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"cniVersion": "1.0.0", "name": "net-1", "plugins": [
        {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}},
        {"type": "portmap", "capabilities": {"portMappings": true}}]}"#;

    #[test]
    fn a_conflist_parses_with_its_plugins_and_capabilities() {
        let l = NetworkList::parse(LIST, false).unwrap();
        assert_eq!((l.cni_version.as_str(), l.name.as_str()), ("1.0.0", "net-1"));
        assert_eq!(l.plugins.iter().map(plugin_type).collect::<Vec<_>>(), ["bridge", "portmap"]);
        assert!(l.has_capability("portMappings"));
        assert!(!l.has_capability("bandwidth"));
        // The cached form parses back to the same list.
        assert_eq!(NetworkList::parse(&l.to_json().to_string(), false).unwrap(), l);
    }

    #[test]
    fn a_conf_is_a_list_of_one() {
        let l = NetworkList::parse(
            r#"{"cniVersion": "0.4.0", "name": "n", "type": "ptp", "ipMasq": true}"#,
            true,
        )
        .unwrap();
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(plugin_type(&l.plugins[0]), "ptp");
    }

    #[test]
    fn hostile_lists_are_refused_with_the_reason() {
        for (text, lone, why) in [
            ("", false, "invalid JSON"),
            ("{\"cniVersion\": \"1.0.0\",", false, "invalid JSON"),
            ("[1, 2]", false, "not a JSON object"),
            (r#"{"name": "n", "plugins": [{"type": "x"}]}"#, false, "cniVersion"),
            (r#"{"cniVersion": 1, "name": "n", "plugins": [{"type": "x"}]}"#, false, "cniVersion"),
            (r#"{"cniVersion": "0.2.0", "name": "n", "plugins": [{"type": "x"}]}"#, false, "0.2.0"),
            (r#"{"cniVersion": "9.9.9", "name": "n", "plugins": [{"type": "x"}]}"#, false, "9.9.9"),
            (r#"{"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}"#, false, "name"),
            (
                r#"{"cniVersion": "1.0.0", "name": "../x", "plugins": [{"type": "x"}]}"#,
                false,
                "name",
            ),
            (r#"{"cniVersion": "1.0.0", "name": "n"}"#, false, "plugins"),
            (r#"{"cniVersion": "1.0.0", "name": "n", "plugins": []}"#, false, "empty"),
            (r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [3]}"#, false, "not an object"),
            (r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{}]}"#, false, "type"),
            (
                r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../../bin/sh"}]}"#,
                false,
                "plugin name",
            ),
            (
                r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": ".."}]}"#,
                false,
                "plugin name",
            ),
            (r#"{"cniVersion": "1.0.0", "name": "n"}"#, true, "type"),
        ] {
            let e = NetworkList::parse(text, lone).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn the_lexically_first_file_is_used_and_the_default_only_alone() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path()), Err(CniError::NoConfig(_))));
        let subnet = Ipv4Cidr::parse("10.1.2.0/24").unwrap();
        let default = default_list("br-x", subnet, Path::new("/tmp/ipam"));
        assert!(ensure_default(dir.path(), &default).unwrap());
        let (path, l) = load(dir.path()).unwrap();
        assert!(path.ends_with(DEFAULT_FILE));
        assert_eq!(l, default);
        std::fs::write(dir.path().join("README"), "not a config").unwrap();
        std::fs::write(
            dir.path().join("20-b.conf"),
            r#"{"cniVersion": "1.0.0", "name": "b", "type": "ptp"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("10-a.conflist"), LIST).unwrap();
        assert_eq!(load(dir.path()).unwrap().1.name, "net-1");
        assert!(!ensure_default(dir.path(), &default).unwrap());
        std::fs::write(dir.path().join("05-broken.conflist"), "{").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("05-broken.conflist") && e.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn subnets_are_checked() {
        let c = Ipv4Cidr::parse("10.88.0.0/30").unwrap();
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 88, 0, 1));
        for bad in
            ["10.88.0.0", "10.88.0.1/24", "10.88.0.0/31", "10.88.0.0/0", "x/24", "10.0.0.0/x"]
        {
            assert!(Ipv4Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
