//! One group id, one kind of membership.
//!
//! brook coordinates consumer groups three ways: the broker's own groups ([`crate::group`]: gRPC,
//! HTTP and embedded subscribers, assigned on the server), the Kafka door's classic protocol
//! (JoinGroup/SyncGroup, assigned by a client) and its consumer protocol (KIP-848's
//! ConsumerGroupHeartbeat, assigned by the door). All share the committed offsets, so one group
//! id used by two kinds at once would get independent assignments, each side reading the
//! partitions the other reads too. A claim prevents that: whatever coordinates a group holds a
//! [`GroupClaim`] while the group has live members, and a claim of the other kind is refused
//! until the last claim of the first is dropped. Committed offsets are not claimed: any door
//! may read or commit them. An admin change of a group's offsets (deleting the group or its
//! offsets, resetting them) takes an exclusive claim instead ([`GroupClaims::claim_admin`]):
//! only on a group without live members, and no member joins until it is done.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::names::validate_group_id;

/// Which coordinator runs a group's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupProtocol {
    /// Kafka's classic consumer-group protocol, coordinated by the Kafka door.
    Kafka,
    /// Kafka's consumer protocol (KIP-848, `group.protocol=consumer`), coordinated by the
    /// Kafka door with server-side assignment.
    KafkaConsumer,
    /// The broker's own groups: gRPC, HTTP and embedded group subscribers.
    Brook,
    /// An admin change of the group's offsets, while it runs ([`GroupClaims::claim_admin`]).
    Admin,
}

impl fmt::Display for GroupProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kafka => "Kafka",
            Self::KafkaConsumer => "Kafka consumer-protocol (KIP-848)",
            Self::Brook => "brook (gRPC, HTTP or embedded)",
            Self::Admin => "admin",
        })
    }
}

/// The registry of live claims; cheap to clone (clones share it). A broker has one
/// ([`Broker::group_claims`]); a coordinator outside the broker keeps a clone.
#[derive(Debug, Clone, Default)]
pub struct GroupClaims {
    held: Arc<Mutex<HashMap<String, Held>>>,
}

#[derive(Debug)]
struct Held {
    protocol: GroupProtocol,
    /// Live claims of that kind; the entry goes when it drops to zero.
    count: usize,
}

impl GroupClaims {
    /// Claims `group` for `protocol`; any number of claims of one kind may be held at once.
    /// `GroupInUse` while claims of the other kind are held.
    pub fn claim(&self, group: &str, protocol: GroupProtocol) -> Result<GroupClaim> {
        let mut held = self.held.lock();
        match held.get_mut(group) {
            Some(h) if h.protocol == GroupProtocol::Admin || protocol == GroupProtocol::Admin => {
                return Err(BrokerError::GroupBusy {
                    group: group.to_owned(),
                })
            }
            Some(h) if h.protocol != protocol => {
                return Err(BrokerError::GroupInUse {
                    group: group.to_owned(),
                    holder: h.protocol,
                })
            }
            Some(h) => h.count += 1,
            None => {
                held.insert(group.to_owned(), Held { protocol, count: 1 });
            }
        }
        Ok(GroupClaim {
            claims: self.clone(),
            group: group.to_owned(),
            protocol,
        })
    }

    /// Claims `group` for an admin change of its committed offsets: only while nobody else
    /// holds it (`GroupNotEmpty` while it has live members, `GroupBusy` during another admin
    /// change), and every member claim is refused with `GroupBusy` until this one is dropped.
    pub fn claim_admin(&self, group: &str) -> Result<GroupClaim> {
        let mut held = self.held.lock();
        match held.get(group) {
            Some(h) if h.protocol == GroupProtocol::Admin => Err(BrokerError::GroupBusy {
                group: group.to_owned(),
            }),
            Some(_) => Err(BrokerError::GroupNotEmpty {
                group: group.to_owned(),
            }),
            None => {
                held.insert(
                    group.to_owned(),
                    Held {
                        protocol: GroupProtocol::Admin,
                        count: 1,
                    },
                );
                Ok(GroupClaim {
                    claims: self.clone(),
                    group: group.to_owned(),
                    protocol: GroupProtocol::Admin,
                })
            }
        }
    }

    /// The kind of membership `group` has now, if any.
    pub fn holder(&self, group: &str) -> Option<GroupProtocol> {
        self.held.lock().get(group).map(|h| h.protocol)
    }

    fn release(&self, group: &str) {
        let mut held = self.held.lock();
        if let Some(h) = held.get_mut(group) {
            h.count -= 1;
            if h.count == 0 {
                held.remove(group);
            }
        }
    }
}

/// A live claim on a group id; released when dropped.
#[derive(Debug)]
#[must_use = "the claim is released when dropped"]
pub struct GroupClaim {
    claims: GroupClaims,
    group: String,
    protocol: GroupProtocol,
}

impl GroupClaim {
    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn protocol(&self) -> GroupProtocol {
        self.protocol
    }
}

impl Drop for GroupClaim {
    fn drop(&mut self) {
        self.claims.release(&self.group);
    }
}

impl Broker {
    /// Claims `group` for members of `protocol`: hold it while the group has live members.
    /// `InvalidGroupId` for a bad id; `GroupInUse` while members of the other kind are live.
    /// The broker's own group subscriptions claim for [`GroupProtocol::Brook`] themselves.
    pub fn claim_group(&self, group: &str, protocol: GroupProtocol) -> Result<GroupClaim> {
        validate_group_id(group)?;
        self.group_claims().claim(group, protocol)
    }

    /// The broker's claim registry, for a coordinator that claims as it goes (under its own
    /// lock, without a broker call per join).
    pub fn group_claims(&self) -> GroupClaims {
        self.inner.groups.claims.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_of_one_kind_share_a_group_and_shut_out_the_other_until_the_last_goes() {
        let claims = GroupClaims::default();
        let first = claims.claim("g", GroupProtocol::Kafka).expect("first");
        let second = claims.claim("g", GroupProtocol::Kafka).expect("same kind");
        let refused = claims.claim("g", GroupProtocol::Brook).unwrap_err();
        assert!(matches!(
            refused,
            BrokerError::GroupInUse {
                holder: GroupProtocol::Kafka,
                ..
            }
        ));
        assert_eq!(
            refused.to_string(),
            "group \"g\" has live Kafka members; use another group id or stop them"
        );
        assert_eq!(refused.kind(), crate::ErrorKind::InvalidArgument);
        let _other = claims
            .claim("other", GroupProtocol::Brook)
            .expect("another id");
        drop(first);
        assert_eq!(claims.holder("g"), Some(GroupProtocol::Kafka));
        drop(second);
        assert_eq!(claims.holder("g"), None);
        let brook = claims.claim("g", GroupProtocol::Brook).expect("free again");
        assert_eq!(
            (brook.group(), brook.protocol()),
            ("g", GroupProtocol::Brook)
        );
    }

    #[test]
    fn an_admin_claim_needs_the_group_empty_and_keeps_members_out_while_held() {
        let claims = GroupClaims::default();
        let member = claims.claim("g", GroupProtocol::Kafka).expect("member");
        assert!(matches!(
            claims.claim_admin("g"),
            Err(BrokerError::GroupNotEmpty { .. })
        ));
        drop(member);
        let admin = claims.claim_admin("g").expect("empty now");
        for protocol in [
            GroupProtocol::Kafka,
            GroupProtocol::Brook,
            GroupProtocol::Admin,
        ] {
            let refused = claims.claim("g", protocol).unwrap_err();
            assert!(
                matches!(refused, BrokerError::GroupBusy { .. }),
                "{refused}"
            );
            assert_eq!(refused.kind(), crate::ErrorKind::Unavailable, "retriable");
        }
        assert!(matches!(
            claims.claim_admin("g"),
            Err(BrokerError::GroupBusy { .. })
        ));
        drop(admin);
        assert_eq!(claims.holder("g"), None);
        let _member = claims.claim("g", GroupProtocol::Brook).expect("free again");
    }
}
