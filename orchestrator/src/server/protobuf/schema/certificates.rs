//! certificates.k8s.io/v1: `kubectl certificate approve|deny` sends the request back with
//! its new condition.

use super::Ty::*;
use super::meta::OBJECT_META;
use super::{Field, Msg};

pub static CERTIFICATE_SIGNING_REQUEST: Msg = Msg {
    name: "CertificateSigningRequest",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&CERTIFICATE_SIGNING_REQUEST_SPEC)),
        f!(3 "status" Msg(&CERTIFICATE_SIGNING_REQUEST_STATUS)),
    ],
};

pub static CERTIFICATE_SIGNING_REQUEST_SPEC: Msg = Msg {
    name: "CertificateSigningRequestSpec",
    fields: &[
        f!(1 "request" Bytes),
        f!(7 "signerName" Str),
        f!(8 "expirationSeconds" Int),
        f!(5 "usages" [Str]),
        f!(2 "username" Str),
        f!(3 "uid" Str),
        f!(4 "groups" [Str]),
        f!(6 "extra" Map(&StrList)),
    ],
};

pub static CERTIFICATE_SIGNING_REQUEST_STATUS: Msg = Msg {
    name: "CertificateSigningRequestStatus",
    fields: &[
        f!(1 "conditions" [Msg(&CERTIFICATE_SIGNING_REQUEST_CONDITION)]),
        f!(2 "certificate" Bytes),
    ],
};

pub static CERTIFICATE_SIGNING_REQUEST_CONDITION: Msg = Msg {
    name: "CertificateSigningRequestCondition",
    fields: &[
        f!(1 "type" Str),
        f!(6 "status" Str),
        f!(2 "reason" Str),
        f!(3 "message" Str),
        f!(4 "lastUpdateTime" Time),
        f!(5 "lastTransitionTime" Time),
    ],
};
