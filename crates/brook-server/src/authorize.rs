//! Authorization at the gRPC and HTTP doors (docs/security.md, "Authorization"): what each call
//! needs, asked of the broker's one authorizer ([`brook_broker::auth::Auth`]) with the
//! [`Identity`] the authentication layer ([`crate::auth`]) put on the request. A refusal is the
//! broker's `Denied` error, which each door answers its own way (gRPC `PERMISSION_DENIED`, HTTP
//! 403 `forbidden`); listings keep only what the principal may describe.
//!
//! The operations are Kafka's for the same action, so a user has the same rights on every door:
//!
//! | action | needs |
//! |--------|-------|
//! | produce (also a request-reply call, an atomic produce's topics) | `Write` topic |
//! | fetch, subscribe to a partition, get a key, a call's reply | `Read` topic |
//! | subscribe in a group, commit, respond | `Read` group and `Read` each topic |
//! | seek a group, the console's reset | `Read` group and `Read` each topic it moves |
//! | list or describe topics / groups / transactions | `Describe` on each (filtered) |
//! | group offsets | `Describe` group and topics |
//! | create a topic | `Create` cluster or topic |
//! | delete a topic, delete records | `Delete` topic |
//! | grow a topic / change its config | `Alter` / `AlterConfigs` topic |
//! | delete a group | `Delete` group |
//! | delete a group's offsets | `Delete` group and `Read` each topic |
//! | producers of a partition | `Read` topic |
//! | `/metrics` | `Describe` cluster |
//! | ACL admin | `Describe` / `Alter` cluster |

use brook_broker::auth::{Auth, Identity, Operation, Resource};
use brook_broker::{Backend, BrokerError, Seek, SeekTo};
use brook_door::Authenticator;

pub(crate) use brook_broker::auth::Operation as Op;

/// Who asks and the authorizer that answers; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    auth: Auth,
    who: Identity,
}

impl Access {
    /// The access of `who` (the authentication layer's identity; with none, which happens only
    /// with authentication off, an anonymous local caller).
    pub(crate) fn new(auth: &Authenticator, who: Option<&Identity>) -> Self {
        Self {
            auth: auth.auth().clone(),
            who: who.cloned().unwrap_or_else(Identity::local),
        }
    }

    /// `Ok` when the principal may do `op` on `resource`, else the broker's `Denied`.
    pub(crate) fn check(&self, op: Operation, resource: Resource<'_>) -> Result<(), BrokerError> {
        self.auth.authorize(&self.who, op, resource)
    }

    /// Whether the principal may do `op` on `resource` (for filtering a listing).
    pub(crate) fn may(&self, op: Operation, resource: Resource<'_>) -> bool {
        self.auth.allowed(&self.who, op, resource)
    }

    pub(crate) fn topic(&self, op: Operation, name: &str) -> Result<(), BrokerError> {
        self.check(op, Resource::topic(name))
    }

    pub(crate) fn group(&self, op: Operation, name: &str) -> Result<(), BrokerError> {
        self.check(op, Resource::group(name))
    }

    pub(crate) fn transactional_id(&self, op: Operation, name: &str) -> Result<(), BrokerError> {
        self.check(op, Resource::transactional_id(name))
    }

    pub(crate) fn cluster(&self, op: Operation) -> Result<(), BrokerError> {
        self.check(op, Resource::cluster())
    }

    /// `Create` on the cluster, or else on the topic `name` (`Auth::may_create_topic`).
    pub(crate) fn create_topic(&self, name: &str) -> Result<(), BrokerError> {
        if self.auth.may_create_topic(&self.who, name) {
            return Ok(());
        }
        self.topic(Op::Create, name)
    }

    /// A group member's action on `topics`: `Read` on the group, then on each topic.
    pub(crate) fn group_and_topics<'t>(
        &self,
        op: Operation,
        group: &str,
        topics: impl IntoIterator<Item = &'t str>,
    ) -> Result<(), BrokerError> {
        self.group(op, group)?;
        topics.into_iter().try_for_each(|t| self.topic(op, t))
    }

    /// Moves `group`'s committed offsets (a seek, the console's reset; with `dry_run` only
    /// says where they would go) if the principal may: `Read` on the group and on each topic
    /// it moves, as Kafka's OffsetCommit asks. Named `topics` are checked first; `topics`
    /// empty means every topic the group has committed in, and those are checked on the plan
    /// itself, under the group's admin claim ([`Backend::seek_group_checked`]): a topic first
    /// committed after the check is not moved, and a group that became active meanwhile is
    /// refused (`GroupNotEmpty`). Refuses before anything moves.
    pub(crate) async fn seek(
        &self,
        broker: &Backend,
        group: &str,
        to: SeekTo,
        topics: &[String],
        dry_run: bool,
    ) -> Result<Vec<Seek>, BrokerError> {
        self.group(Op::Read, group)?;
        topics.iter().try_for_each(|t| self.topic(Op::Read, t))?;
        broker
            .seek_group_checked(group, to, topics, dry_run, |plan| {
                plan.iter()
                    .try_for_each(|seek| self.topic(Op::Read, &seek.topic_partition.topic))
            })
            .await
    }

    /// Deleting `group`'s committed offsets in `topics`: `Delete` on the group and `Read` on
    /// each topic, as Kafka's OffsetDelete asks. Refuses before anything is deleted.
    pub(crate) fn delete_offsets<'t>(
        &self,
        group: &str,
        topics: impl IntoIterator<Item = &'t str>,
    ) -> Result<(), BrokerError> {
        self.group(Op::Delete, group)?;
        topics.into_iter().try_for_each(|t| self.topic(Op::Read, t))
    }
}
