//! How a process ended, as the guest's wait status says and as the host reports it.

use crate::proto;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
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
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

impl From<Exit> for proto::ExitStatus {
    fn from(e: Exit) -> Self {
        let status = match e {
            Exit::Code(c) => proto::exit_status::Status::Code(c),
            Exit::Signal(s) => proto::exit_status::Status::Signal(s),
        };
        proto::ExitStatus { status: Some(status) }
    }
}

impl TryFrom<&proto::ExitStatus> for Exit {
    type Error = &'static str;
    fn try_from(s: &proto::ExitStatus) -> Result<Self, Self::Error> {
        match s.status {
            Some(proto::exit_status::Status::Code(c)) => Ok(Exit::Code(c)),
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
        assert!(Exit::try_from(&proto::ExitStatus { status: None }).is_err());
    }
}
