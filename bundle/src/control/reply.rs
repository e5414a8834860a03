//! Every control-plane response is built here, so errors have one shape
//! (`ErrorReply` JSON) and no handler can leak more than it means to.

use std::convert::Infallible;

use bottle_protocol::control::ErrorReply;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde::Serialize;

pub type Body = BoxBody<Bytes, Infallible>;

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("control replies always serialize");
    with_type(status, "application/json", Full::new(Bytes::from(bytes)).boxed())
}

pub fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(status, &ErrorReply { error: message.into() })
}

/// The same reply for a missing, malformed or wrong token: nothing to tell them apart.
pub fn unauthorized() -> Response<Body> {
    let mut r = error(StatusCode::UNAUTHORIZED, "control: a valid bearer token is required");
    r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

pub fn not_found() -> Response<Body> {
    error(StatusCode::NOT_FOUND, "control: no such endpoint")
}

pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, format!("control: method not allowed; use {allow}"));
    r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    r
}
