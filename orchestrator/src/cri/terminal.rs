//! What a CRI `tty` means beyond the sandbox's pseudo-terminal: the resize messages streaming
//! clients send (`{"Width":W,"Height":H}` on channel 4 of an exec or attach session) and the
//! `TERM` a process on a terminal gets when its environment names none, as other runtimes do.

use serde::Deserialize;

use super::handler::TerminalSize;

/// `TERM` for processes on a terminal whose environment has none.
const DEFAULT_TERM: &str = "TERM=xterm";

/// A resize message as Kubernetes clients send it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Resize {
    width: u16,
    height: u16,
}

/// The window size in a resize message; None when malformed.
pub fn parse_resize(data: &[u8]) -> Option<TerminalSize> {
    let r: Resize = serde_json::from_slice(data).ok()?;
    Some(TerminalSize { rows: r.height, cols: r.width })
}

/// Adds `TERM` to `env` when it has none.
pub fn default_term(env: &mut Vec<String>) {
    if !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push(DEFAULT_TERM.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages_give_rows_and_columns() {
        let size = parse_resize(br#"{"Width":132,"Height":43}"#);
        assert_eq!(size, Some(TerminalSize { rows: 43, cols: 132 }));
        assert_eq!(parse_resize(b"{\"Width\":-1,\"Height\":2}"), None);
        assert_eq!(parse_resize(b"not json"), None);
    }

    #[test]
    fn term_is_added_only_when_missing() {
        let mut env = vec!["PATH=/bin".to_string()];
        default_term(&mut env);
        assert_eq!(env, ["PATH=/bin", "TERM=xterm"]);
        let mut env = vec!["TERM=vt100".to_string()];
        default_term(&mut env);
        assert_eq!(env, ["TERM=vt100"]);
    }
}
