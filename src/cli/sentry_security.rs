//! The security options of `ringfence sentry run` and `sentry exec`: identity, capabilities,
//! no_new_privs, seccomp profile and filesystem restrictions, turned into the control
//! protocol's fields (the same ones the CRI fills).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use sentry_kvm::control::protocol::{CapSet, Capabilities, Capability, Process, SeccompProfile};
use sentry_kvm::kernel::seccomp::runtime_default;

#[derive(Args, Clone, Debug, Default)]
pub struct SecurityArgs {
    /// User (and group) the program runs as: UID[:GID], numeric.
    #[arg(long, value_name = "UID[:GID]", value_parser = parse_user)]
    pub user: Option<(u32, u32)>,
    /// Supplementary group id (repeatable).
    #[arg(long = "group-add", value_name = "GID")]
    pub group_add: Vec<u32>,
    /// Capability to add back after --cap-drop (repeatable): a name like NET_RAW, or ALL.
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Capability to drop (repeatable): a name like NET_RAW, or ALL.
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Sets no_new_privs for the program.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Seccomp profile: an OCI profile (JSON) file, `runtime-default`, or `unconfined`.
    #[arg(long, value_name = "FILE|runtime-default|unconfined", default_value = "unconfined")]
    pub seccomp_profile: String,
    /// Makes the root filesystem read-only (/dev/shm, /proc and volumes keep their own mode).
    #[arg(long)]
    pub read_only: bool,
    /// Path to hide (repeatable): files read as /dev/null, directories as empty.
    #[arg(long = "masked-path", value_name = "PATH")]
    pub masked_paths: Vec<String>,
    /// Path to make read-only (repeatable).
    #[arg(long = "readonly-path", value_name = "PATH")]
    pub readonly_paths: Vec<String>,
}

fn parse_user(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    let num = |v: &str| v.parse::<u32>().map_err(|_| format!("{s:?}: expected UID[:GID], numeric"));
    Ok((num(u)?, num(g)?))
}

/// `ALL` or one capability name.
fn cap_names(names: &[String]) -> anyhow::Result<CapSet> {
    let mut set = CapSet::EMPTY;
    for n in names {
        if n.eq_ignore_ascii_case("ALL") {
            return Ok(CapSet::FULL);
        }
        set.add(n.parse::<Capability>()?);
    }
    Ok(set)
}

impl SecurityArgs {
    /// The capability sets: None unless capabilities were dropped or added (the Sentry's
    /// default: root holds every capability). Added ones win over dropped ones.
    fn capabilities(&self) -> anyhow::Result<Option<Capabilities>> {
        if self.cap_add.is_empty() && self.cap_drop.is_empty() {
            return Ok(None);
        }
        let drop = cap_names(&self.cap_drop)?;
        let add = cap_names(&self.cap_add)?;
        let set = CapSet::from_bits(CapSet::FULL.bits() & !drop.bits()).union(add);
        Ok(Some(Capabilities {
            effective: set,
            permitted: set,
            bounding: set,
            ..Default::default()
        }))
    }

    fn seccomp(&self) -> anyhow::Result<Option<SeccompProfile>> {
        Ok(match self.seccomp_profile.as_str() {
            "unconfined" => None,
            "runtime-default" => Some(runtime_default::profile()),
            file => {
                let path = PathBuf::from(file);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("seccomp profile {}", path.display()))?;
                let profile: SeccompProfile = serde_json::from_str(&text)
                    .with_context(|| format!("seccomp profile {}", path.display()))?;
                // Refused here, with the file's name, rather than by the sandbox.
                if let Err(e) = profile.compile() {
                    bail!("seccomp profile {}: {e}", path.display());
                }
                Some(profile)
            }
        })
    }

    /// A process running `argv` with these options.
    pub fn process(
        &self,
        argv: Vec<String>,
        env: Vec<String>,
        cwd: String,
    ) -> anyhow::Result<Process> {
        let (uid, gid) = self.user.unwrap_or((0, 0));
        Ok(Process {
            argv,
            env,
            cwd,
            uid,
            gid,
            groups: self.group_add.clone(),
            capabilities: self.capabilities()?,
            no_new_privs: self.no_new_privs,
            seccomp: self.seccomp()?,
            terminal: None,
        })
    }

    pub fn rootfs_policy(&self) -> sentry_kvm::sandbox::RootfsPolicy {
        sentry_kvm::sandbox::RootfsPolicy {
            read_only: self.read_only,
            masked_paths: self.masked_paths.clone(),
            readonly_paths: self.readonly_paths.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_flags_make_the_sets() {
        let a = SecurityArgs {
            cap_drop: vec!["NET_RAW".into(), "cap_chown".into()],
            ..Default::default()
        };
        let c = a.capabilities().unwrap().unwrap();
        assert!(!c.bounding.has(Capability::CHOWN) && c.bounding.has(Capability::KILL));
        let a = SecurityArgs {
            cap_drop: vec!["ALL".into()],
            cap_add: vec!["KILL".into()],
            ..Default::default()
        };
        let c = a.capabilities().unwrap().unwrap();
        assert_eq!(c.effective.iter().collect::<Vec<_>>(), vec![Capability::KILL]);
        assert!(
            SecurityArgs { cap_add: vec!["NOPE".into()], ..Default::default() }
                .capabilities()
                .is_err()
        );
        assert_eq!(SecurityArgs::default().capabilities().unwrap(), None);
        assert_eq!(parse_user("1000"), Ok((1000, 1000)));
        assert_eq!(parse_user("1000:5"), Ok((1000, 5)));
        assert!(parse_user("bob").is_err());
    }
}
