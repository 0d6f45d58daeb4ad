//! Running `nft`: one transaction per call, fed on stdin, so that the kernel applies all of it
//! or none of it.

use std::io::Write;
use std::process::{Command, Stdio};

const NFT: &str = "nft";

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(
        "the nftables Service proxy and NetworkPolicy enforcement need the `nft` program ({0}); \
         install Debian's nftables package, or start the node with --proxy-mode userspace \
         --no-network-policy"
    )]
    Missing(std::io::Error),
    #[error("running nft: {0}")]
    Io(std::io::Error),
    #[error("nft refused the ruleset: {0}")]
    Rejected(String),
}

/// Whether `nft` can be run at all.
pub fn check() -> Result<(), NftError> {
    let out = Command::new(NFT).arg("--version").output().map_err(NftError::Missing)?;
    if !out.status.success() {
        return Err(NftError::Rejected(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(())
}

/// Applies `script` as one transaction.
pub fn apply(script: &str) -> Result<(), NftError> {
    let mut child = Command::new(NFT)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NftError::Missing(e),
            _ => NftError::Io(e),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(NftError::Io)?;
    }
    let out = child.wait_with_output().map_err(NftError::Io)?;
    if !out.status.success() {
        return Err(NftError::Rejected(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(())
}
