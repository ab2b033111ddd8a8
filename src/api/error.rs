//! Every error response is the OCI error envelope
//! `{"errors":[{"code","message","detail"}]}` with the spec's code and HTTP status.

use crate::oci::NameError;
use crate::registry::RegistryError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: Value,
    /// Extra headers (e.g. `Range` on a 416 for an upload, `Content-Range` on a blob 416).
    pub headers: Vec<(header::HeaderName, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: Value::Null,
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A failure of the server itself: the cause goes to the log, not to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            "internal error; the registry's log has the cause",
        )
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        match e {
            NameError::BadTag(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "TAG_INVALID", e.to_string())
            }
            NameError::BadReference { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", e.to_string()),
        }
    }
}

impl From<crate::admin::AdminError> for ApiError {
    fn from(e: crate::admin::AdminError) -> Self {
        use crate::admin::AdminError as E;
        let (status, code) = match &e {
            E::Invalid(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            E::Conflict(_) => (StatusCode::CONFLICT, "DENIED"),
            E::Db(_) => return ApiError::internal(&e),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        RegistryError::Db(e).into()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        let message = e.to_string();
        let (status, code) = match &e {
            E::BlobUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            E::UploadUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            E::UploadInvalid(_) | E::BadContentRange(_) => {
                (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID")
            }
            E::ChunkOutOfOrder { .. } | E::ChunkRangeTooLong(_) => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID")
            }
            E::DigestInvalid(_) | E::DigestMissing | E::DigestMismatch { .. } => {
                (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
            }
            E::ManifestUnknown { .. } | E::NotAcceptable { .. } | E::TagWaiting { .. } => {
                (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
            }
            E::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            E::ManifestTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            E::ManifestBlobUnknown(_) | E::ManifestChildUnknown(_) => {
                (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
            }
            E::NameUnknown(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            E::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "UNSUPPORTED"),
            E::Denied { .. } | E::TooManySignatures { .. } => (StatusCode::FORBIDDEN, "DENIED"),
            E::TrustConfigInvalid(_) => (StatusCode::BAD_REQUEST, "TRUST_CONFIG_INVALID"),
            E::TrustChangeSuperseded => (StatusCode::CONFLICT, "DENIED"),
            // Garbage collection was removing these very bytes: pushing again succeeds.
            E::Db(crate::db::DbError::BlobCollected(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "BLOB_UPLOAD_INVALID")
            }
            E::Storage(_) | E::Db(_) => {
                // Logged once, here; the client gets no internals.
                tracing::error!(error = %e, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN")
            }
        };
        let mut out = ApiError::new(status, code, message);
        match e {
            E::DigestMismatch { expected, actual } => {
                out.detail = json!({ "expected": expected, "actual": actual });
            }
            E::ManifestBlobUnknown(d) | E::ManifestChildUnknown(d) => {
                out.detail = json!({ "missing": d });
            }
            E::Denied { detail, .. } => {
                out.detail = detail;
            }
            E::TagWaiting {
                tag, digest, needs, ..
            } => {
                out.detail =
                    json!({ "tag": tag, "waiting": digest, "needs": needs, "state": "pending" });
            }
            E::TooManySignatures { subject, limit, .. } => {
                out.detail =
                    json!({ "subject": subject, "limit": limit, "check": "signaturesPerSubject" });
            }
            E::ChunkOutOfOrder { current } => {
                out.detail = json!({ "received": current });
                out.headers.push((header::RANGE, upload_range(current)));
            }
            E::RangeNotSatisfiable { size } => {
                out.headers
                    .push((header::CONTENT_RANGE, format!("bytes */{size}")));
            }
            E::Db(crate::db::DbError::BlobCollected(_)) => {
                out.headers.push((header::RETRY_AFTER, "1".into()));
            }
            E::Storage(_) | E::Db(_) => {
                out.message = "internal error; the registry's log has the cause".into();
            }
            _ => {}
        }
        out
    }
}

/// The `Range` header value of an upload holding `len` bytes (`0-0` when empty, as
/// Distribution does and clients expect).
pub fn upload_range(len: u64) -> String {
    format!("0-{}", len.saturating_sub(1))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut entry = json!({ "code": self.code, "message": self.message });
        if !self.detail.is_null() {
            entry["detail"] = self.detail;
        }
        let body = json!({ "errors": [entry] }).to_string();
        let mut res = (self.status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        res
    }
}
