//! How a process ended, as the guest's wait status says and as the host reports it.

use crate::proto;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Killed (SIGKILL) by the kernel's out-of-memory killer.
    OutOfMemory,
}

impl Exit {
    /// Decodes a `waitpid` status (only exits and deaths are routed here).
    pub fn from_wait_status(status: i32) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }

    /// The status a shell would give: the code, or 128 + the signal.
    pub fn shell_status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
            Exit::OutOfMemory => 128 + libc::SIGKILL,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
            Exit::OutOfMemory => write!(f, "killed by the out-of-memory killer"),
        }
    }
}

impl From<Exit> for proto::ExitStatus {
    fn from(e: Exit) -> Self {
        let status = match e {
            Exit::Code(c) => proto::exit_status::Status::Code(c),
            Exit::Signal(s) => proto::exit_status::Status::Signal(s),
            Exit::OutOfMemory => proto::exit_status::Status::Signal(libc::SIGKILL),
        };
        proto::ExitStatus { status: Some(status), oom_killed: e == Exit::OutOfMemory }
    }
}

impl TryFrom<&proto::ExitStatus> for Exit {
    type Error = &'static str;
    fn try_from(s: &proto::ExitStatus) -> Result<Self, Self::Error> {
        match s.status {
            Some(proto::exit_status::Status::Code(c)) => Ok(Exit::Code(c)),
            Some(proto::exit_status::Status::Signal(libc::SIGKILL)) if s.oom_killed => {
                Ok(Exit::OutOfMemory)
            }
            Some(proto::exit_status::Status::Signal(s)) => Ok(Exit::Signal(s)),
            None => Err("an exit status with neither code nor signal"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(Exit::from_wait_status(3 << 8), Exit::Code(3));
        assert_eq!(Exit::from_wait_status(9), Exit::Signal(9));
        assert_eq!(Exit::Signal(9).shell_status(), 137);
        let p: proto::ExitStatus = Exit::Code(7).into();
        assert_eq!(Exit::try_from(&p), Ok(Exit::Code(7)));
        assert!(Exit::try_from(&proto::ExitStatus::default()).is_err());
        let oom: proto::ExitStatus = Exit::OutOfMemory.into();
        assert_eq!(Exit::try_from(&oom), Ok(Exit::OutOfMemory));
        assert_eq!(Exit::OutOfMemory.shell_status(), 137);
    }
}
