//! Impersonation: `Impersonate-User`, `-Group`, `-Uid` and `-Extra-<key>` headers make a
//! request act as someone else, when RBAC grants the caller the `impersonate` verb on each of
//! them (users or service accounts, groups, uids, user extras), as Kubernetes does. A header
//! the caller may not use is a 403, never ignored.

use http::HeaderMap;

use super::authn::AUTHENTICATED;
use crate::api::engine::authorize::Attributes;
use crate::api::error::ApiError;
use crate::api::{Api, User};

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA: &str = "impersonate-extra-";

/// What the headers ask to act as, before any check.
#[derive(Debug, Default, PartialEq, Eq)]
struct Wanted {
    user: Option<String>,
    groups: Vec<String>,
    uid: Option<String>,
    extra: std::collections::BTreeMap<String, Vec<String>>,
}

fn wanted(headers: &HeaderMap) -> Result<Option<Wanted>, ApiError> {
    let text = |v: &http::HeaderValue| {
        v.to_str().map(str::to_owned).map_err(|_| {
            ApiError::bad_request("impersonation headers must be visible ASCII".to_string())
        })
    };
    let mut w = Wanted::default();
    let mut any = false;
    for (name, value) in headers {
        let name = name.as_str();
        if name == USER {
            w.user = Some(text(value)?);
        } else if name == GROUP {
            w.groups.push(text(value)?);
        } else if name == UID {
            w.uid = Some(text(value)?);
        } else if let Some(key) = name.strip_prefix(EXTRA) {
            // Keys are percent-encoded in header names (RFC 3986 unreserved characters kept).
            let key = super::router::percent_decode(key);
            w.extra.entry(key).or_default().push(text(value)?);
        } else {
            continue;
        }
        any = true;
    }
    if !any {
        return Ok(None);
    }
    if w.user.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "requested impersonation of groups, a uid or extras without impersonating a user"
                .to_string(),
        ));
    }
    Ok(Some(w))
}

/// The user `caller` acts as for this request: itself, or whom the headers name once RBAC
/// allows each part.
pub async fn resolve(api: &Api, caller: User, headers: &HeaderMap) -> Result<User, ApiError> {
    let Some(w) = wanted(headers)? else { return Ok(caller) };
    let name = w.user.unwrap_or_default();
    let check = |group: &str, resource: &str, namespace: &str, object: &str| Attributes {
        verb: "impersonate".into(),
        group: group.into(),
        resource: resource.into(),
        namespace: namespace.into(),
        name: object.into(),
        ..Default::default()
    };
    let service_account = name
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, sa)| (ns.to_owned(), sa.to_owned()));
    let mut checks = vec![match &service_account {
        Some((ns, sa)) => check("", "serviceaccounts", ns, sa),
        None => check("", "users", "", &name),
    }];
    checks.extend(w.groups.iter().map(|g| check("", "groups", "", g)));
    if let Some(uid) = &w.uid {
        checks.push(check("authentication.k8s.io", "uids", "", uid));
    }
    for (key, values) in &w.extra {
        let resource = format!("userextras/{key}");
        checks.extend(values.iter().map(|v| check("authentication.k8s.io", &resource, "", v)));
    }
    for a in &checks {
        if !api.allowed(&caller, a).await? {
            let scope = if a.namespace.is_empty() {
                "at the cluster scope".to_owned()
            } else {
                format!("in the namespace \"{}\"", a.namespace)
            };
            return Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: User \"{}\" cannot impersonate resource \"{}\" in API group \"{}\" {scope}",
                a.resource, a.name, caller.name, a.resource, a.group
            )));
        }
    }
    let mut groups = w.groups;
    if let Some((ns, _)) = &service_account {
        groups.push("system:serviceaccounts".into());
        groups.push(format!("system:serviceaccounts:{ns}"));
    }
    if name != "system:anonymous" && !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    tracing::debug!(caller = %caller.name, as_user = %name, "impersonating");
    Ok(User { name, uid: w.uid.unwrap_or_default(), groups, extra: w.extra })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn headers_are_read_and_a_user_is_required() {
        assert_eq!(wanted(&headers(&[("accept", "x")])).unwrap(), None);
        let w = wanted(&headers(&[
            ("Impersonate-User", "alice"),
            ("Impersonate-Group", "devs"),
            ("Impersonate-Group", "ops"),
            ("Impersonate-Extra-scopes%2Fv1", "view"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(w.user.as_deref(), Some("alice"));
        assert_eq!(w.groups, ["devs", "ops"]);
        assert_eq!(w.extra["scopes/v1"], ["view"]);
        assert!(wanted(&headers(&[("Impersonate-Group", "devs")])).is_err());
    }
}
