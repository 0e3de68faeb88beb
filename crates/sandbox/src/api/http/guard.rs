//! The layer in front of every route when auth is on.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::super::auth::{Auth, Decision, SELF_SUBJECT_ACCESS_REVIEWS, forbidden, request_info};
use super::render::{error_response, json_response};
use super::request::read_json;

/// The layer in front of every route when auth is on: authenticate, authorize, then
/// pass the request on with its [`UserInfo`] as an extension. Answers
/// SelfSubjectAccessReviews itself.
pub async fn guard(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let user = match auth.authenticate(req.headers()) {
        Ok(user) => user,
        Err(e) => return error_response(&e),
    };
    let attributes = request_info::parse(req.method(), req.uri().path(), req.uri().query());
    if let Decision::Deny { reason } = auth.authorize(&user, &attributes) {
        let refusal = forbidden(&user, &attributes, &reason);
        auth.refused(refusal.to_string());
        return error_response(&refusal);
    }
    if req.method() == Method::POST && req.uri().path() == SELF_SUBJECT_ACCESS_REVIEWS {
        return match read_json(req).await {
            Ok(review) => match auth.self_subject_access_review(&user, &review) {
                Ok(answer) => json_response(StatusCode::CREATED, &answer),
                Err(e) => error_response(&e),
            },
            Err(e) => error_response(&e),
        };
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}
