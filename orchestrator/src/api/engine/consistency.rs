//! Which state a list reads, from its `resourceVersion`, `resourceVersionMatch`, `limit` and
//! `continue` — Kubernetes' semantics for get and list, decided before any reading.

use crate::api::error::ApiError;
use crate::api::meta;
use crate::api::request::{ListOptions, ResourceVersionMatch};
use crate::store::Revision;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAt {
    /// The newest state: every write acknowledged before the request is in it.
    Consistent,
    /// Whatever state is at hand (`resourceVersion=0`).
    Any,
    /// A state at least as new as this revision.
    NotOlderThan(Revision),
    /// The state at exactly this revision (a continued list, or `resourceVersionMatch=Exact`).
    Exact(Revision),
}

/// What `opts` asks of a list; `continued` is the revision of its continue token, if any.
pub fn read_at(opts: &ListOptions, continued: Option<Revision>) -> Result<ReadAt, ApiError> {
    let rv = opts.resource_version.as_deref().unwrap_or("");
    if let Some(at) = continued {
        if !rv.is_empty() {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        if opts.resource_version_match.is_some() {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        return Ok(ReadAt::Exact(at));
    }
    let revision = match rv {
        "" => None,
        "0" => Some(0),
        s => meta::parse_revision(s).map_err(ApiError::bad_request)?,
    };
    Ok(match (opts.resource_version_match, revision) {
        (Some(_), None) => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        (Some(ResourceVersionMatch::Exact), Some(0)) => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
        (Some(ResourceVersionMatch::Exact), Some(r)) => ReadAt::Exact(r),
        (_, Some(0)) => ReadAt::Any,
        (Some(ResourceVersionMatch::NotOlderThan), Some(r)) => ReadAt::NotOlderThan(r),
        // A paginated list at a given revision reads exactly that revision.
        (None, Some(r)) if opts.limit > 0 => ReadAt::Exact(r),
        (None, Some(r)) => ReadAt::NotOlderThan(r),
        (None, None) => ReadAt::Consistent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(rv: Option<&str>, m: Option<ResourceVersionMatch>, limit: usize) -> ListOptions {
        ListOptions {
            resource_version: rv.map(str::to_owned),
            resource_version_match: m,
            limit,
            ..Default::default()
        }
    }

    #[test]
    fn kubernetes_table_of_list_semantics() {
        use ResourceVersionMatch::{Exact, NotOlderThan};
        let cases = [
            (None, None, 0, ReadAt::Consistent),
            (Some(""), None, 10, ReadAt::Consistent),
            (Some("0"), None, 0, ReadAt::Any),
            (Some("0"), None, 10, ReadAt::Any),
            (Some("7"), None, 0, ReadAt::NotOlderThan(7)),
            (Some("7"), None, 10, ReadAt::Exact(7)),
            (Some("7"), Some(Exact), 0, ReadAt::Exact(7)),
            (Some("0"), Some(NotOlderThan), 0, ReadAt::Any),
            (Some("7"), Some(NotOlderThan), 10, ReadAt::NotOlderThan(7)),
        ];
        for (rv, m, limit, want) in cases {
            assert_eq!(read_at(&opts(rv, m, limit), None).unwrap(), want, "{rv:?} {m:?} {limit}");
        }
    }

    #[test]
    fn invalid_combinations_are_refused() {
        use ResourceVersionMatch::{Exact, NotOlderThan};
        for (rv, m) in
            [(None, Some(Exact)), (Some(""), Some(NotOlderThan)), (Some("0"), Some(Exact))]
        {
            assert_eq!(read_at(&opts(rv, m, 0), None).unwrap_err().code, 400, "{rv:?} {m:?}");
        }
        assert_eq!(read_at(&opts(Some("x"), None, 0), None).unwrap_err().code, 400);
        assert_eq!(read_at(&opts(Some("5"), None, 0), Some(3)).unwrap_err().code, 400);
        assert_eq!(read_at(&opts(None, None, 2), Some(3)).unwrap(), ReadAt::Exact(3));
    }
}
