//! Errors of the shim's task service, and the ttrpc status containerd gets for each.

use containerd_shim::protos::ttrpc;
use orchestrator::cri::CriError;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{0}: not found")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("the sandbox: {0}")]
    Sandbox(#[from] CriError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<ShimError> for ttrpc::Error {
    fn from(e: ShimError) -> ttrpc::Error {
        use ttrpc::Code;
        // containerd maps these codes back onto its errdefs (NotFound, FailedPrecondition...).
        let code = match &e {
            ShimError::NotFound(_) => Code::NOT_FOUND,
            ShimError::AlreadyExists(_) => Code::ALREADY_EXISTS,
            ShimError::Precondition(_) => Code::FAILED_PRECONDITION,
            ShimError::Invalid(_) => Code::INVALID_ARGUMENT,
            ShimError::Unsupported(_) => Code::UNIMPLEMENTED,
            ShimError::Sandbox(_) | ShimError::Io(_) => Code::INTERNAL,
        };
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, e.to_string()))
    }
}
