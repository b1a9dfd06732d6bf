//! Request parts the handlers take, checked and refused in the door's JSON error format: path
//! parameters (topic names and group ids are checked by the broker's rules before anything
//! else runs, so a bad name is a 400 rather than a 404), query strings and JSON bodies.

use axum::extract::{FromRequest, FromRequestParts, Path};
use axum::http::request::Parts;
use serde::Deserialize;

use super::error::ApiError;

/// A JSON body, refused with the door's error format (413 over the body limit).
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct JsonBody<T>(pub(crate) T);

/// A query string, refused with the door's error format.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(pub(crate) T);

/// `{topic}` of a route.
#[derive(Debug)]
pub(crate) struct TopicPath {
    pub(crate) topic: String,
}

#[derive(Deserialize)]
struct TopicParams {
    topic: String,
}

impl<S: Send + Sync> FromRequestParts<S> for TopicPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(TopicParams { topic }) = Path::from_request_parts(parts, state).await?;
        brook_broker::validate_topic_name(&topic)?;
        Ok(Self { topic })
    }
}

/// `{topic}` and `{partition}` of a route.
#[derive(Debug)]
pub(crate) struct PartitionPath {
    pub(crate) topic: String,
    pub(crate) partition: u32,
}

#[derive(Deserialize)]
struct PartitionParams {
    topic: String,
    partition: u32,
}

impl<S: Send + Sync> FromRequestParts<S> for PartitionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(PartitionParams { topic, partition }) =
            Path::from_request_parts(parts, state).await?;
        brook_broker::validate_topic_name(&topic)?;
        Ok(Self { topic, partition })
    }
}

/// `{group}` of a route.
#[derive(Debug)]
pub(crate) struct GroupPath {
    pub(crate) group: String,
}

#[derive(Deserialize)]
struct GroupParams {
    group: String,
}

impl<S: Send + Sync> FromRequestParts<S> for GroupPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(GroupParams { group }) = Path::from_request_parts(parts, state).await?;
        brook_broker::validate_group_id(&group)?;
        Ok(Self { group })
    }
}
