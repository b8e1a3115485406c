//! Extractors whose refusals answer in the API's error shape (axum's own answer in plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body. Malformed JSON, a wrong type or an unknown field is a 400 naming the problem
/// and where it is (line and column). The content type is not insisted on: the body decides.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Reads a JSON body; a 400 in the API's shape when it is empty, malformed or does not fit.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("invalid_json", "the request body is empty: send a JSON object"));
    }
    let parsed = serde_json::from_slice(bytes).map_err(|e| {
        let what =
            if e.is_syntax() || e.is_eof() { "the body is not valid JSON" } else { "the JSON body does not fit" };
        ApiError::bad_request("invalid_json", format!("{what}: {e}"))
    })?;
    // Only an escape can put a NUL into valid JSON; look closer only when one may be there.
    if bytes.windows(6).any(|w| w == b"\\u0000")
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && holds_nul(&value)
    {
        return Err(nul_refused("the JSON body"));
    }
    Ok(parsed)
}

/// True when a string or key anywhere in `value` holds a NUL character.
fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// The 400 for a NUL character, which neither database stores in text (PostgreSQL refuses it).
pub fn nul_refused(where_: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_request",
        format!("{where_} holds a NUL character (\\u0000), which no name, key or text may contain"),
    )
}

/// Refuses a request whose path or query holds an encoded NUL (`%00`), before any handler sees it.
pub async fn refuse_nul(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let uri = request.uri();
    let encoded_nul = |s: &str| s.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0');
    if encoded_nul(uri.path()) || uri.query().is_some_and(encoded_nul) {
        return axum::response::IntoResponse::into_response(nul_refused("the URL"));
    }
    next.run(request).await
}

/// Query parameters; an unknown or malformed one is a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// The raw body; a body over the size limit is refused in the API's error shape.
#[derive(Debug, Clone, Default)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "invalid_body" };
            ApiError::new(e.status(), code, e.body_text())
        })?;
        if bytes.contains(&0) {
            return Err(nul_refused("the request body"));
        }
        Ok(RawBody(bytes))
    }
}

/// A path parameter; one that is not valid percent-encoded UTF-8 is a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}
