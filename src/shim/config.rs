//! What a shim runs its sandboxes in, read from a runtime config file (TOML) whose path
//! containerd passes with a task's runtime options, as it does for runsc and Kata: the CRI
//! plugin's `options.ConfigPath` of a runtime, or `ctr run --runtime-config-path`. Without
//! one, every sandbox is a Sentry.
//!
//! ```toml
//! sandbox = "microvm"            # or "sentry" (the default)
//! [microvm]
//! guest_kernel = "/var/lib/ringfence/guest/vmlinux"   # default: `ringfence image kernel`'s
//! guest_initrd = "/var/lib/ringfence/guest/initrd"
//! virtiofsd = "/usr/lib/qemu/virtiofsd"
//! memory_mib = 256               # a guest's memory without a memory limit in the spec
//! boot_timeout_seconds = 600
//! templates = "/var/lib/ringfence/templates"  # pods start as clones of snapshots kept here
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use orchestrator::cri::handler::microvm::MicrovmConfig;
use serde::Deserialize;

use super::error::ShimError;

/// The runtime options containerd sends for runtimes other than runc
/// (`runtimeoptions.v1.Options` of its CRI plugin).
#[derive(Clone, PartialEq, prost::Message)]
struct RuntimeOptions {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(string, tag = "2")]
    config_path: String,
}

const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShimConfig {
    #[serde(default)]
    pub sandbox: SandboxClass,
    #[serde(default)]
    pub microvm: MicrovmSettings,
}

/// What isolates a sandbox: the runtime classes of the project's own CRI runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxClass {
    #[default]
    Sentry,
    Microvm,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MicrovmSettings {
    pub guest_kernel: Option<PathBuf>,
    pub guest_initrd: Option<PathBuf>,
    pub virtiofsd: PathBuf,
    pub memory_mib: u64,
    pub boot_timeout_seconds: u64,
    /// Where snapshot templates are kept (shared by the node's shims): pods with a network
    /// start as clones of one instead of booting. None: every guest boots.
    pub templates: Option<PathBuf>,
}

impl Default for MicrovmSettings {
    fn default() -> Self {
        MicrovmSettings {
            guest_kernel: None,
            guest_initrd: None,
            virtiofsd: "/usr/lib/qemu/virtiofsd".into(),
            memory_mib: 256,
            boot_timeout_seconds: 600,
            templates: None,
        }
    }
}

impl ShimConfig {
    /// The config a task's runtime options point at; the default when they name none.
    pub fn from_options(options: Option<&Any>) -> Result<ShimConfig, ShimError> {
        let Some(any) = options else { return Ok(ShimConfig::default()) };
        if !any.type_url.ends_with(RUNTIME_OPTIONS) {
            return Err(ShimError::Invalid(format!(
                "runtime options of type {:?}: this runtime takes {RUNTIME_OPTIONS} (a config \
                 path)",
                any.type_url
            )));
        }
        let opts = <RuntimeOptions as prost::Message>::decode(any.value.as_slice())
            .map_err(|e| ShimError::Invalid(format!("runtime options: {e}")))?;
        if opts.config_path.is_empty() {
            return Ok(ShimConfig::default());
        }
        ShimConfig::load(Path::new(&opts.config_path))
    }

    pub fn load(path: &Path) -> Result<ShimConfig, ShimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ShimError::Invalid(format!("runtime config {}: {e}", path.display())))?;
        toml::from_str(&text)
            .map_err(|e| ShimError::Invalid(format!("runtime config {}: {e}", path.display())))
    }
}

impl MicrovmSettings {
    /// The CRI runtime's microvm handler configured from these settings, its VMM the
    /// `ringfence-vmm` beside `exe`.
    pub fn handler_config(&self, exe: &Path) -> Result<MicrovmConfig, ShimError> {
        let guest = match (&self.guest_kernel, &self.guest_initrd) {
            (Some(k), Some(i)) => Some((k.clone(), i.clone())),
            (None, None) => None,
            _ => {
                return Err(ShimError::Invalid(
                    "runtime config: [microvm] guest_kernel and guest_initrd go together".into(),
                ));
            }
        };
        let boot_timeout = Duration::from_secs(self.boot_timeout_seconds);
        Ok(MicrovmConfig {
            default_memory_mib: self.memory_mib,
            templates: self.templates.clone(),
            ..MicrovmConfig::beside(exe, &self.virtiofsd, guest, boot_timeout)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, config_path: &str) -> Any {
        let opts = RuntimeOptions { type_url: String::new(), config_path: config_path.into() };
        let mut a = Any::new();
        a.type_url = type_url.into();
        a.value = prost::Message::encode_to_vec(&opts);
        a
    }

    #[test]
    fn no_options_or_no_path_is_the_sentry() {
        assert_eq!(ShimConfig::from_options(None).unwrap().sandbox, SandboxClass::Sentry);
        let a = any("runtimeoptions.v1.Options", "");
        assert_eq!(ShimConfig::from_options(Some(&a)).unwrap(), ShimConfig::default());
    }

    #[test]
    fn a_config_file_picks_the_microvm_class() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shim.toml");
        std::fs::write(
            &path,
            "sandbox = \"microvm\"\n[microvm]\nguest_kernel = \"/k\"\nguest_initrd = \"/i\"\n\
             memory_mib = 128\ntemplates = \"/t\"\n",
        )
        .unwrap();
        let a = any("type.googleapis.com/runtimeoptions.v1.Options", path.to_str().unwrap());
        let c = ShimConfig::from_options(Some(&a)).unwrap();
        assert_eq!(c.sandbox, SandboxClass::Microvm);
        let h = c.microvm.handler_config(Path::new("/opt/rf/ringfence")).unwrap();
        assert_eq!(h.guest, Some(("/k".into(), "/i".into())));
        assert_eq!(h.vmm.program, PathBuf::from("/opt/rf/ringfence-vmm"));
        assert_eq!((h.default_memory_mib, h.guest_memory_mib(Some(100))), (128, 164));
        assert_eq!(h.virtiofsd.program, PathBuf::from("/usr/lib/qemu/virtiofsd"));
        assert_eq!(h.templates, Some(PathBuf::from("/t")));
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shim.toml");
        for (text, says) in [
            ("sandbox = \"runc\"\n", "unknown variant"),
            ("sandbox = \"microvm\"\nmemory = 3\n", "unknown field"),
            ("[microvm]\nguest_kernel = \"/k\"\n", "go together"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = ShimConfig::load(&path)
                .and_then(|c| c.microvm.handler_config(Path::new("/x")).map(|_| ()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        let missing = any("runtimeoptions.v1.Options", "/nonexistent/shim.toml");
        let e = ShimConfig::from_options(Some(&missing)).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/shim.toml"), "{e}");
        let runc = any("containerd.runc.v1.Options", "");
        let e = ShimConfig::from_options(Some(&runc)).unwrap_err().to_string();
        assert!(e.contains("runtimeoptions.v1.Options"), "{e}");
    }
}
