//! The kernel command line: where the host tells the agent how to set the guest up before any
//! request can (`ringfence.ip=`, `ringfence.gw=`, `ringfence.shell=`, `ringfence.log=`,
//! `ringfence.hostname=`, `ringfence.share=TAG`, `ringfence.link=up`).
//!
//! `ringfence.share_later=1` keeps the agent from mounting `ringfence.share=` at boot: a guest
//! booted to be a snapshot's template must not hold a session with a virtio-fs daemon that the
//! clones restored from it will not have; the host names the tag in Refresh instead.

/// A kernel command line, read once.
#[derive(Debug, Clone, Default)]
pub struct Cmdline(String);

impl Cmdline {
    /// The running kernel's (`/proc/cmdline`); empty where there is none to read.
    pub fn of_this_kernel() -> Cmdline {
        Cmdline(std::fs::read_to_string("/proc/cmdline").unwrap_or_default())
    }

    pub fn new(text: &str) -> Cmdline {
        Cmdline(text.to_owned())
    }

    /// The value of the first `key=value` word for `key`; `None` when absent or empty.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.0
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_by_their_whole_key() {
        let c = Cmdline::new("console=ttyS0 ringfence.shell=/dev/vda ringfence.ip= panic=1\n");
        assert_eq!(c.value("ringfence.shell"), Some("/dev/vda"));
        assert_eq!(c.value("console"), Some("ttyS0"));
        assert_eq!(c.value("ringfence.ip"), None);
        assert_eq!(c.value("ringfence"), None);
        assert_eq!(c.value("panic"), Some("1"));
    }
}
