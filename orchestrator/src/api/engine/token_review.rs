//! authentication.k8s.io/v1 TokenReview: whether a bearer token authenticates, and as whom,
//! answered by the same authenticator the server uses for requests (webhook token
//! authenticators and in-cluster components ask this). The authenticator is a seam: the
//! server plugs in its token file; without one every token is unknown.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Api;
use crate::api::{ApiError, User};

/// The audience tokens of this API server are for when a review names none.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// Who a bearer token belongs to.
pub trait TokenAuthenticator: Send + Sync {
    fn authenticate(&self, token: &str) -> Option<User>;
}

impl Api {
    /// Makes `authenticator` answer TokenReviews (once; later calls change nothing).
    pub fn set_token_authenticator(&self, authenticator: Arc<dyn TokenAuthenticator>) {
        let _ = self.tokens.set(authenticator);
    }

    /// A TokenReview's status: authenticated with the user, or not with the reason.
    pub(super) fn review_token(&self, spec: &Value) -> Result<Value, ApiError> {
        let token = spec["token"].as_str().unwrap_or("");
        if token.is_empty() {
            return Err(ApiError::bad_request("spec.token: Required value"));
        }
        let wanted: Vec<&str> =
            spec["audiences"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        // Static tokens are for this API server: a review for other audiences fails.
        if !wanted.is_empty() && !wanted.contains(&API_AUDIENCE) {
            return Ok(json!({
                "authenticated": false,
                "error": format!("token audiences {wanted:?} are not this server's ({API_AUDIENCE})"),
            }));
        }
        let user = self.tokens.get().and_then(|a| a.authenticate(token));
        Ok(match user {
            Some(u) => {
                let mut info = json!({"username": u.name, "groups": u.groups});
                if !u.uid.is_empty() {
                    info["uid"] = json!(u.uid);
                }
                if !u.extra.is_empty() {
                    info["extra"] = json!(u.extra);
                }
                json!({"authenticated": true, "user": info, "audiences": [API_AUDIENCE]})
            }
            None => json!({"authenticated": false, "error": "invalid bearer token"}),
        })
    }
}
