//! Authorization at the HTTP door (crate::authorize has the rules): a route layer checks what
//! each route's path names (its topic, group or transactional id) before the handler runs, and
//! answers 403 `forbidden` when the principal may not; a handler checks what only its body
//! names (the topic of `POST /v1/topics`, the topics of a commit) and filters its listing with
//! the [`Access`] extractor. A route without a rule here is for superusers only, so a new
//! route is closed until it is given one (a test holds every route to a rule).

use std::convert::Infallible;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use brook_broker::auth::{Identity, Resource};
use brook_broker::BrokerError;

use super::error::ApiError;
use super::App;
pub(crate) use crate::authorize::{Access, Op};

/// What a route needs before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// Nothing (health checks, the API document, the console's static files).
    Open,
    /// `op` on the path's `{topic}`.
    Topic(Op),
    /// `op` on the path's `{group}`.
    Group(Op),
    /// `op` on the path's `{group}` and on each topic of the `topics` query parameter.
    GroupAndQueryTopics(Op),
    /// `op` on the path's `{transactional_id}`.
    TransactionalId(Op),
    /// `op` on the cluster.
    Cluster(Op),
    /// `Describe` on the cluster, unless `metrics_public`.
    Metrics,
    /// The handler checks (what it needs is in the body) or filters (a listing).
    Handler,
}

/// The rule of the route `method path` (axum's path syntax); `None`: no rule.
pub(crate) fn needs(method: &Method, path: &str) -> Option<Needs> {
    use Needs as N;
    let rule = match (method.as_str(), path) {
        ("GET", "/healthz" | "/readyz" | "/v1/openapi.json") => N::Open,
        ("GET", "/metrics") => N::Metrics,
        ("GET" | "POST", "/v1/topics" | "/v1/groups" | "/v1/transactions") => N::Handler,
        ("GET", "/v1/topics/{topic}") => N::Topic(Op::Describe),
        ("DELETE", "/v1/topics/{topic}" | "/v1/topics/{topic}/records") => N::Topic(Op::Delete),
        ("POST", "/v1/topics/{topic}/records" | "/v1/topics/{topic}/call") => N::Topic(Op::Write),
        // A call's reply: its caller's, who wrote the call.
        ("GET", "/v1/topics/{topic}/call/{correlation_id}") => N::Topic(Op::Write),
        (
            "GET",
            "/v1/topics/{topic}/partitions/{partition}/records"
            | "/v1/topics/{topic}/partitions/{partition}/stream"
            | "/v1/topics/{topic}/partitions/{partition}/producers"
            | "/v1/topics/{topic}/keys/{key}",
        ) => N::Topic(Op::Read),
        ("POST", "/v1/topics/{topic}/partitions") => N::Topic(Op::Alter),
        ("PATCH", "/v1/topics/{topic}/config") => N::Topic(Op::AlterConfigs),
        ("GET", "/v1/groups/{group}") => N::Group(Op::Describe),
        ("GET", "/v1/groups/{group}/stream") => N::GroupAndQueryTopics(Op::Read),
        // The topics are in the body or the query: the handlers check each too (`Read`),
        // before anything changes (`Access::seek`, `Access::delete_offsets`).
        ("POST", "/v1/groups/{group}/offsets" | "/v1/groups/{group}/seek") => N::Group(Op::Read),
        ("DELETE", "/v1/groups/{group}" | "/v1/groups/{group}/offsets") => N::Group(Op::Delete),
        ("GET", "/v1/transactions/{transactional_id}") => N::TransactionalId(Op::Describe),
        ("GET", "/v1/acls") => N::Cluster(Op::Describe),
        ("POST" | "DELETE", "/v1/acls") => N::Cluster(Op::Alter),
        ("GET", "/v1/users" | "/v1/tokens") => N::Cluster(Op::Describe),
        ("POST", "/v1/users" | "/v1/tokens")
        | ("DELETE", "/v1/users/{user}" | "/v1/tokens/{id}")
        | ("PUT", "/v1/users/{user}/password") => N::Cluster(Op::Alter),
        // The web console's page and assets: what it shows comes from the routes above.
        ("GET", "/" | "/console/app.js" | "/console/style.css") => N::Open,
        ("GET", "/console/api/settings") => N::Cluster(Op::DescribeConfigs),
        // Its body's topics (or the group's committed ones): `Access::seek` in the handler.
        ("POST", "/console/api/groups/{group}/reset") => N::Group(Op::Read),
        _ => return None,
    };
    Some(rule)
}

impl FromRequestParts<App> for Access {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Infallible> {
        Ok(Access::new(
            &app.config.security.auth,
            parts.extensions.get::<Identity>(),
        ))
    }
}

/// The route layer: checks the route's rule, then runs the handler.
pub(crate) async fn check(
    State(app): State<App>,
    path: MatchedPath,
    params: RawPathParams,
    request: Request,
    next: Next,
) -> Response {
    let access = Access::new(
        &app.config.security.auth,
        request.extensions().get::<Identity>(),
    );
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| *key == name)
            .map_or("", |(_, value)| value)
    };
    let checked: Result<(), BrokerError> = match needs(request.method(), path.as_str()) {
        Some(Needs::Open | Needs::Handler) => Ok(()),
        Some(Needs::Topic(op)) => access.topic(op, param("topic")),
        Some(Needs::Group(op)) => access.group(op, param("group")),
        Some(Needs::GroupAndQueryTopics(op)) => {
            let topics = query_topics(request.uri().query().unwrap_or(""));
            access.group_and_topics(op, param("group"), topics.iter().map(String::as_str))
        }
        Some(Needs::TransactionalId(op)) => access.transactional_id(op, param("transactional_id")),
        Some(Needs::Cluster(op)) => access.cluster(op),
        Some(Needs::Metrics) if app.config.metrics_public => Ok(()),
        Some(Needs::Metrics) => access.cluster(Op::Describe),
        None => access.check(Op::All, Resource::cluster()),
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(denied) => ApiError::from(denied).into_response(),
    }
}

/// The topics of a `topics=a,b` query parameter (percent-decoded); none when it is missing or
/// the query does not parse (the handler then refuses it).
fn query_topics(query: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Topics {
        #[serde(default)]
        topics: String,
    }
    let Ok(uri) = format!("/?{query}").parse::<axum::http::Uri>() else {
        return Vec::new();
    };
    match axum::extract::Query::<Topics>::try_from_uri(&uri) {
        Ok(axum::extract::Query(Topics { topics })) => topics
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_rule() {
        for (method, path) in super::super::routes() {
            assert!(
                needs(&method, path).is_some(),
                "{method} {path} has no rule"
            );
        }
    }

    #[test]
    fn query_topics_are_split_and_decoded() {
        assert_eq!(
            query_topics("reset=earliest&topics=a,%20b,,c"),
            vec!["a", "b", "c"]
        );
    }
}
