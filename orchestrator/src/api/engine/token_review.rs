//! authentication.k8s.io/v1 TokenReview: whether a bearer token authenticates, and as whom,
//! answered by the same authenticator the server uses for requests (webhook token
//! authenticators and in-cluster components ask this). Static tokens come through a seam (the
//! server plugs in its token file); service account tokens are checked by the engine itself.

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
    pub(super) async fn review_token(&self, spec: &Value) -> Result<Value, ApiError> {
        let token = spec["token"].as_str().unwrap_or("");
        if token.is_empty() {
            return Err(ApiError::bad_request("spec.token: Required value"));
        }
        let mut wanted: Vec<&str> =
            spec["audiences"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if wanted.is_empty() {
            wanted.push(API_AUDIENCE);
        }
        // Static tokens are for this API server: a review for other audiences fails.
        let static_user = if wanted.contains(&API_AUDIENCE) {
            self.tokens.get().and_then(|a| a.authenticate(token))
        } else {
            None
        };
        let (user, audiences, why) = match static_user {
            Some(u) => (Some(u), vec![API_AUDIENCE.to_owned()], String::new()),
            None => match self.authenticate_service_account(token, &wanted).await {
                Ok((u, audiences)) => (Some(u), audiences, String::new()),
                Err(why) => (None, Vec::new(), why),
            },
        };
        Ok(match user {
            Some(u) => {
                let mut info = json!({"username": u.name, "groups": u.groups});
                if !u.uid.is_empty() {
                    info["uid"] = json!(u.uid);
                }
                if !u.extra.is_empty() {
                    info["extra"] = json!(u.extra);
                }
                json!({"authenticated": true, "user": info, "audiences": audiences})
            }
            None => {
                json!({"authenticated": false, "error": format!("invalid bearer token, {why}")})
            }
        })
    }
}
