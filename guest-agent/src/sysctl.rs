//! Kernel parameters of the guest (/proc/sys): the whole guest is one pod's, so a pod's
//! sysctls are written here rather than in a namespace on the node.

use std::path::PathBuf;

use crate::proto;

const PROC_SYS: &str = "/proc/sys";

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("sysctl {0:?} is not a name under /proc/sys")]
    BadName(String),
    #[error("sysctl {0}: the value has a newline or a NUL byte")]
    BadValue(String),
    #[error("sysctl {path}={value}: {source}")]
    Write {
        path: String,
        value: String,
        #[source]
        source: std::io::Error,
    },
}

/// One parameter to write, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    path: String,
    value: String,
}

impl Sysctl {
    pub fn parse(s: &proto::Sysctl) -> Result<Sysctl, SysctlError> {
        let clean = !s.path.is_empty()
            && s.path.split('/').all(|c| {
                !c.is_empty() && c != "." && c != ".." && c.bytes().all(|b| b.is_ascii_graphic())
            });
        if !clean {
            return Err(SysctlError::BadName(s.path.clone()));
        }
        if s.value.contains(['\n', '\0']) {
            return Err(SysctlError::BadValue(s.path.clone()));
        }
        Ok(Sysctl { path: s.path.clone(), value: s.value.clone() })
    }

    fn file(&self) -> PathBuf {
        PathBuf::from(PROC_SYS).join(&self.path)
    }

    pub fn apply(&self) -> Result<(), SysctlError> {
        std::fs::write(self.file(), &self.value).map_err(|source| SysctlError::Write {
            path: self.path.clone(),
            value: self.value.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_under_proc_sys() {
        let p = |path: &str, value: &str| {
            Sysctl::parse(&proto::Sysctl { path: path.into(), value: value.into() })
        };
        for bad in ["", "/net/x", "net/../../etc/passwd", "net//x", "net/./x", "kernel/a b"] {
            assert!(matches!(p(bad, "1"), Err(SysctlError::BadName(_))), "{bad}");
        }
        assert!(matches!(p("kernel/shmmax", "1\n2"), Err(SysctlError::BadValue(_))));
        let ok = p("kernel/shmmax", "65536").unwrap();
        assert_eq!(ok.file(), PathBuf::from("/proc/sys/kernel/shmmax"));
    }
}
