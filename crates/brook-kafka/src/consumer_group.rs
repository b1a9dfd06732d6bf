//! The group coordinator of Kafka's consumer group protocol (KIP-848, ConsumerGroupHeartbeat),
//! which librdkafka (2.4+) and the Java client (3.7+) use with `group.protocol=consumer`.
//!
//! Unlike the classic protocol (`coordinator`), the door assigns: members only heartbeat, saying
//! what they subscribe to and what they own, and each heartbeat's answer tells a member which
//! partitions it may own now. Three epochs drive it, as in Kafka's group coordinator:
//!
//! - the **group epoch** moves whenever what the assignment depends on changes: a member joins,
//!   leaves, is fenced or changes its subscription, a subscribed topic appears, disappears or
//!   grows, or the group's assignor changes;
//! - the **assignment epoch** is the group epoch the *target assignment* was computed at; here
//!   the assignor ([`crate::assignor`]) runs at once, so it catches up within the same request;
//! - each **member epoch** is the assignment epoch that member has reconciled to.
//!
//! Reconciliation (Kafka's `CurrentAssignmentBuilder`) moves a member towards its target without
//! two members ever owning a partition at once: a member first gives up what its target no
//! longer holds (state `UnrevokedPartitions`: it keeps its epoch, and is told only the partitions
//! it keeps, until a heartbeat shows it no longer owns the revoked ones); only then does it move
//! to the new epoch and receive new partitions, and only those no other member still owns or is
//! revoking (state `UnreleasedPartitions` until they are released). A member that does not
//! revoke within its rebalance timeout is fenced out of the group.
//!
//! Leaving: epoch -1 leaves (its partitions go to the others); a static member
//! (`group.instance.id`) leaves with -2 and keeps its place and partitions for the session
//! timeout, so a restart rejoining with the same instance id gets them back under a new member
//! id without moving anything. Members that stop heartbeating for the session timeout are
//! removed.
//!
//! One group id, one kind of membership: a group here holds the broker's `KafkaConsumer` claim
//! (`brook_broker::group_claim`) while it has members, so a classic JoinGroup or a gRPC group
//! subscriber for the same id is refused (INCONSISTENT_GROUP_PROTOCOL for JoinGroup), and a
//! heartbeat for an id held by them gets GROUP_ID_NOT_FOUND, as Kafka answers for a group of the
//! other type. Groups and epochs live in memory: after a broker restart members get
//! UNKNOWN_MEMBER_ID and rejoin (committed offsets are the broker's and survive).
//!
//! The state lock is never held across an await; timers are tokio tasks that re-check under the
//! lock whether what they were armed for still stands.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use brook_broker::{BrokerError, GroupClaim, GroupClaims, GroupProtocol, TopicPartition};
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::assignor::{Assignment, Assignor, Subscriber, TopicId, ASSIGNOR_NAMES};
use crate::coordinator::spawn_timer;

/// A heartbeat's member epoch that leaves the group.
pub(crate) const LEAVE_EPOCH: i32 = -1;
/// A static member's member epoch that leaves for now, keeping its place for the session timeout.
pub(crate) const LEAVE_STATIC_EPOCH: i32 = -2;
/// Longest rebalance timeout a member may ask for (Kafka's `max.poll.interval.ms` is an i32;
/// past an hour a stuck member holds partitions for too long).
const REBALANCE_TIMEOUT_MAX: Duration = Duration::from_secs(3600);

/// A subscribed topic as the assignor needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopicMeta {
    pub id: TopicId,
    pub partitions: u32,
}

/// A ConsumerGroupHeartbeat request, as the coordinator needs it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heartbeat {
    pub group: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    /// `None` when unchanged.
    pub subscribed_topics: Option<Vec<String>>,
    pub subscribed_regex: Option<String>,
    /// `None` when unchanged.
    pub assignor: Option<String>,
    /// What the member owns now; `None` when unchanged since its last heartbeat.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    pub version: i16,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval: Duration,
    /// The partitions the member may own now; `None` when unchanged.
    pub assignment: Option<Assignment>,
}

/// A refused request: Kafka's code and a message saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub error: ResponseError,
    pub message: String,
}

fn refuse<T>(error: ResponseError, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        error,
        message: message.into(),
    })
}

/// Where a member is in reconciling to its target (Kafka's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

#[derive(Debug, Clone)]
struct Member {
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    subscribed: BTreeSet<String>,
    assignor: Option<Assignor>,
    rebalance_timeout: Duration,
    epoch: i32,
    previous_epoch: i32,
    state: MemberState,
    /// What it may own now.
    assigned: Assignment,
    /// What it must give up before it moves on (`UnrevokedPartitions`).
    revoking: Assignment,
    revoke_by: Option<Instant>,
    /// When its session ends unless it heartbeats.
    deadline: Instant,
}

#[derive(Debug)]
struct Group {
    epoch: i32,
    assignment_epoch: i32,
    assignor: Assignor,
    members: BTreeMap<String, Member>,
    /// The target assignment, per member, computed at `assignment_epoch`.
    target: BTreeMap<String, Assignment>,
    /// Static members: instance id -> member id.
    statics: HashMap<String, String>,
    /// The subscribed topics that exist, as of the last heartbeat.
    topics: BTreeMap<String, TopicMeta>,
    _claim: GroupClaim,
}

/// A group as ConsumerGroupDescribe, ListGroups and the broker's admin calls show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupView {
    pub group: String,
    /// `Empty`, `Assigning`, `Reconciling` or `Stable` (Kafka's consumer group states).
    pub state: &'static str,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<MemberView>,
    /// Topic names by id, for the assignments.
    pub topic_names: BTreeMap<TopicId, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub state: MemberState,
    pub subscribed: Vec<String>,
    pub assigned: Assignment,
    pub target: Assignment,
}

impl GroupView {
    /// `assignment` by topic name, for the broker's admin calls and DescribeGroups (a topic
    /// deleted since shows under an empty name).
    pub(crate) fn named(&self, assignment: &Assignment) -> Vec<TopicPartition> {
        assignment
            .iter()
            .flat_map(|(id, partitions)| {
                let topic = self.topic_names.get(id).cloned().unwrap_or_default();
                partitions.iter().filter_map(move |p| {
                    Some(TopicPartition::new(topic.clone(), u32::try_from(*p).ok()?))
                })
            })
            .collect()
    }
}

impl Group {
    fn new(claim: GroupClaim) -> Self {
        Self {
            epoch: 0,
            assignment_epoch: 0,
            assignor: Assignor::Uniform,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            statics: HashMap::new(),
            topics: BTreeMap::new(),
            _claim: claim,
        }
    }

    fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.epoch >= 0 && (m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The assignor most members ask for (ties to the first in [`ASSIGNOR_NAMES`]); `uniform`
    /// when none asks.
    fn chosen_assignor(&self) -> Assignor {
        ASSIGNOR_NAMES
            .iter()
            .filter_map(|n| Assignor::named(n))
            .map(|a| {
                let votes = self
                    .members
                    .values()
                    .filter(|m| m.assignor == Some(a))
                    .count();
                (a, votes)
            })
            .fold((Assignor::Uniform, 0), |best, (a, votes)| {
                if votes > best.1 {
                    (a, votes)
                } else {
                    best
                }
            })
            .0
    }

    /// Moves the group epoch and recomputes the target assignment at it.
    fn bump(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
        self.assignor = self.chosen_assignor();
        let counts: BTreeMap<TopicId, u32> =
            self.topics.values().map(|t| (t.id, t.partitions)).collect();
        let subscribers: Vec<Subscriber<'_>> = self
            .members
            .iter()
            .map(|(id, m)| Subscriber {
                member_id: id,
                topics: m
                    .subscribed
                    .iter()
                    .filter_map(|name| self.topics.get(name).map(|t| t.id))
                    .collect(),
                previous: self.target.get(id),
            })
            .collect();
        let target = self.assignor.assign(&subscribers, &counts);
        self.target = target;
        self.assignment_epoch = self.epoch;
    }

    /// Whether a member other than `member_id` owns or is revoking partition `p` of `t`.
    fn owned_by_other(&self, member_id: &str, t: &TopicId, p: i32) -> bool {
        self.members.iter().any(|(id, m)| {
            id != member_id
                && (m.assigned.get(t).is_some_and(|s| s.contains(&p))
                    || m.revoking.get(t).is_some_and(|s| s.contains(&p)))
        })
    }

    /// Moves `member_id` towards its target (`owned`: what its heartbeat says it owns). Returns
    /// the revocation deadline when it has just been asked to revoke.
    fn reconcile(
        &mut self,
        member_id: &str,
        owned: Option<&Assignment>,
        now: Instant,
    ) -> Option<Instant> {
        let member = self.members.get(member_id)?;
        match member.state {
            MemberState::UnrevokedPartitions => {
                let still_owns = owned.is_none_or(|o| intersects(o, &member.revoking));
                if still_owns {
                    return None;
                }
            }
            MemberState::Stable if member.epoch == self.assignment_epoch => return None,
            _ => {}
        }
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        for (t, ps) in &member.assigned {
            for &p in ps {
                let side = if target.get(t).is_some_and(|s| s.contains(&p)) {
                    &mut keep
                } else {
                    &mut revoke
                };
                side.entry(*t).or_default().insert(p);
            }
        }
        let rebalance_timeout = member.rebalance_timeout;
        if !revoke.is_empty() {
            let member = self.members.get_mut(member_id)?;
            member.state = MemberState::UnrevokedPartitions;
            member.assigned = keep;
            member.revoking = revoke;
            let by = now + rebalance_timeout;
            member.revoke_by = Some(by);
            return Some(by);
        }
        let mut unreleased = false;
        for (t, ps) in &target {
            for &p in ps {
                if keep.get(t).is_some_and(|s| s.contains(&p)) {
                    continue;
                }
                if self.owned_by_other(member_id, t, p) {
                    unreleased = true;
                } else {
                    keep.entry(*t).or_default().insert(p);
                }
            }
        }
        let epoch = self.assignment_epoch;
        let member = self.members.get_mut(member_id)?;
        member.revoking.clear();
        member.revoke_by = None;
        member.assigned = keep;
        if member.epoch != epoch {
            member.previous_epoch = member.epoch;
            member.epoch = epoch;
        }
        member.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        None
    }

    /// Removes a member (its partitions go back to the others) and moves the group epoch.
    fn remove(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.instance_id {
            if self.statics.get(instance).map(String::as_str) == Some(member_id) {
                self.statics.remove(instance);
            }
        }
        self.target.remove(member_id);
        self.bump();
        Some(member)
    }

    fn view(&self, group: &str) -> GroupView {
        GroupView {
            group: group.to_owned(),
            state: self.state(),
            epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.name(),
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberView {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    epoch: m.epoch,
                    state: m.state,
                    subscribed: m.subscribed.iter().cloned().collect(),
                    assigned: m.assigned.clone(),
                    target: self.target.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
            topic_names: self
                .topics
                .iter()
                .map(|(name, t)| (t.id, name.clone()))
                .collect(),
        }
    }
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|other| !ps.is_disjoint(other)))
}

fn intersection(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter()
        .filter_map(|(t, ps)| {
            let common: BTreeSet<i32> = b.get(t)?.intersection(ps).copied().collect();
            (!common.is_empty()).then_some((*t, common))
        })
        .collect()
}

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|other| ps.is_subset(other)))
}

/// What a timer task re-checks when it wakes.
#[derive(Debug, Clone)]
enum Timer {
    Session { group: String, member_id: String },
    Revocation { group: String, member_id: String },
}

/// Every consumer-protocol group of one listener.
#[derive(Debug)]
pub(crate) struct ConsumerGroups {
    groups: Mutex<HashMap<String, Group>>,
    claims: GroupClaims,
    session_timeout: Duration,
    heartbeat_interval: Duration,
    /// For timer tasks, which must not keep the coordinator alive after the listener stops.
    me: Weak<ConsumerGroups>,
}

impl ConsumerGroups {
    pub(crate) fn new(
        claims: GroupClaims,
        session_timeout: Duration,
        heartbeat_interval: Duration,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            groups: Mutex::new(HashMap::new()),
            claims,
            session_timeout,
            heartbeat_interval,
            me: me.clone(),
        })
    }

    /// ConsumerGroupHeartbeat. `lookup` gives a topic's id and partition count (`None` when it
    /// does not exist); it is called before the coordinator's lock is taken, for every topic
    /// the group subscribes to.
    pub(crate) fn heartbeat(
        &self,
        hb: Heartbeat,
        lookup: &dyn Fn(&str) -> Option<TopicMeta>,
    ) -> Result<HeartbeatAnswer, Refusal> {
        validate(&hb)?;
        let mut names: BTreeSet<String> = self
            .groups
            .lock()
            .get(&hb.group)
            .map(|g| {
                g.members
                    .values()
                    .flat_map(|m| m.subscribed.clone())
                    .collect()
            })
            .unwrap_or_default();
        names.extend(hb.subscribed_topics.iter().flatten().cloned());
        let resolved: BTreeMap<String, TopicMeta> = names
            .into_iter()
            .filter_map(|name| lookup(&name).map(|t| (name, t)))
            .collect();
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let group_id = hb.group.clone();
        let answer = if hb.member_epoch <= LEAVE_EPOCH {
            self.leave(&mut groups, &hb)
        } else {
            self.join_or_heartbeat(&mut groups, hb, &resolved, now)
        };
        if groups.get(&group_id).is_some_and(|g| g.members.is_empty()) {
            groups.remove(&group_id);
        }
        answer
    }

    fn leave(
        &self,
        groups: &mut HashMap<String, Group>,
        hb: &Heartbeat,
    ) -> Result<HeartbeatAnswer, Refusal> {
        let Some(group) = groups.get_mut(&hb.group) else {
            return refuse(
                ResponseError::GroupIdNotFound,
                format!("group {:?} has no consumer-protocol members", hb.group),
            );
        };
        let member_id = match &hb.instance_id {
            Some(instance) => match group.statics.get(instance) {
                Some(current) if hb.member_id.is_empty() || *current == hb.member_id => {
                    current.clone()
                }
                Some(current) => {
                    return refuse(
                        ResponseError::FencedInstanceId,
                        format!("instance {instance:?} is member {current:?} now"),
                    )
                }
                None => {
                    return refuse(
                        ResponseError::UnknownMemberId,
                        format!("no member has instance id {instance:?}"),
                    )
                }
            },
            None if group.members.contains_key(&hb.member_id) => hb.member_id.clone(),
            None => {
                return refuse(
                    ResponseError::UnknownMemberId,
                    format!("member {:?} is not in the group", hb.member_id),
                )
            }
        };
        if hb.member_epoch == LEAVE_STATIC_EPOCH {
            // Kept, with its partitions, until it comes back or its session ends.
            if let Some(member) = group.members.get_mut(&member_id) {
                member.epoch = LEAVE_STATIC_EPOCH;
            }
            tracing::info!(group = %hb.group, member = %member_id, "static member left for now");
        } else {
            group.remove(&member_id);
            tracing::info!(group = %hb.group, member = %member_id, epoch = group.epoch, "member left");
        }
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: hb.member_epoch,
            heartbeat_interval: Duration::ZERO,
            assignment: None,
        })
    }

    fn join_or_heartbeat(
        &self,
        groups: &mut HashMap<String, Group>,
        hb: Heartbeat,
        resolved: &BTreeMap<String, TopicMeta>,
        now: Instant,
    ) -> Result<HeartbeatAnswer, Refusal> {
        let group = match groups.entry(hb.group.clone()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(_) if hb.member_epoch > 0 => {
                return refuse(
                    ResponseError::UnknownMemberId,
                    format!(
                        "group {:?} is not running (the broker may have restarted): rejoin",
                        hb.group
                    ),
                )
            }
            Entry::Vacant(entry) => {
                match self.claims.claim(&hb.group, GroupProtocol::KafkaConsumer) {
                    Ok(claim) => entry.insert(Group::new(claim)),
                    Err(BrokerError::GroupInUse { holder, .. }) => {
                        return refuse(
                            ResponseError::GroupIdNotFound,
                            format!(
                                "group {:?} is not a consumer group: it has live {holder} members",
                                hb.group
                            ),
                        )
                    }
                    Err(error) => {
                        // An admin change of the group's offsets is running: retriable.
                        return refuse(ResponseError::CoordinatorLoadInProgress, error.to_string());
                    }
                }
            }
        };
        let mut changed = false;
        let mut full = hb.owned.is_some();
        let member_id = if hb.member_epoch == 0 {
            full = true;
            let member_id = if hb.member_id.is_empty() {
                // Version 0: the coordinator names the member.
                uuid::Uuid::new_v4().simple().to_string()
            } else {
                hb.member_id.clone()
            };
            changed |= self.admit(group, &hb, &member_id, now)?;
            member_id
        } else {
            check_epoch(group, &hb)?;
            hb.member_id.clone()
        };
        let Some(member) = group.members.get_mut(&member_id) else {
            return refuse(ResponseError::UnknownMemberId, "member vanished");
        };
        let epoch_before = member.epoch;
        let assigned_before = member.assigned.clone();
        member.deadline = now + self.session_timeout;
        member.client_id = hb.client_id.clone();
        member.client_host = hb.client_host.clone();
        if hb.rack_id.is_some() {
            member.rack_id = hb.rack_id.clone();
        }
        if hb.rebalance_timeout_ms > 0 {
            member.rebalance_timeout =
                Duration::from_millis(hb.rebalance_timeout_ms as u64).min(REBALANCE_TIMEOUT_MAX);
        }
        if let Some(topics) = &hb.subscribed_topics {
            let topics: BTreeSet<String> = topics.iter().cloned().collect();
            if topics != member.subscribed {
                member.subscribed = topics;
                changed = true;
            }
        }
        if let Some(name) = hb.assignor.as_deref().filter(|n| !n.is_empty()) {
            let assignor = Assignor::named(name);
            if assignor != member.assignor {
                member.assignor = assignor;
                changed = true;
            }
        }
        // What the assignment depends on: the subscribed topics as they are now.
        let names: BTreeSet<&String> = group.members.values().flat_map(|m| &m.subscribed).collect();
        let topics: BTreeMap<String, TopicMeta> = names
            .into_iter()
            .filter_map(|name| resolved.get(name).map(|t| (name.clone(), *t)))
            .collect();
        if topics != group.topics {
            group.topics = topics;
            changed = true;
        }
        if changed {
            group.bump();
            tracing::debug!(group = %hb.group, epoch = group.epoch, "group epoch moved");
        }
        if let Some(by) = group.reconcile(&member_id, hb.owned.as_ref(), now) {
            self.arm(
                by,
                Timer::Revocation {
                    group: hb.group.clone(),
                    member_id: member_id.clone(),
                },
            );
        }
        let member = group.members.get(&member_id).ok_or_else(|| Refusal {
            error: ResponseError::UnknownMemberId,
            message: "member vanished".into(),
        })?;
        let send = full || member.epoch != epoch_before || member.assigned != assigned_before;
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: member.epoch,
            heartbeat_interval: self.heartbeat_interval,
            assignment: send.then(|| member.assigned.clone()),
        })
    }

    /// A heartbeat with epoch 0: a new member, a static member coming back, or a known member
    /// starting over (it lost its partitions). Returns whether the group epoch must move.
    fn admit(
        &self,
        group: &mut Group,
        hb: &Heartbeat,
        member_id: &str,
        now: Instant,
    ) -> Result<bool, Refusal> {
        if let Some(instance) = &hb.instance_id {
            if let Some(old_id) = group.statics.get(instance).cloned() {
                if old_id != member_id {
                    let old_epoch = group.members.get(&old_id).map(|m| m.epoch);
                    if old_epoch != Some(LEAVE_STATIC_EPOCH) {
                        return refuse(
                            ResponseError::UnreleasedInstanceId,
                            format!(
                                "instance {instance:?} is still used by member {old_id:?}; it must leave first"
                            ),
                        );
                    }
                    // The same instance back: it takes the old member's place and what its
                    // target still gives it. The new incarnation owns nothing yet, so there is
                    // nothing to revoke: partitions the target moved away are simply dropped.
                    if let Some(mut member) = group.members.remove(&old_id) {
                        let target = group.target.remove(&old_id).unwrap_or_default();
                        member.assigned = intersection(&member.assigned, &target);
                        member.revoking.clear();
                        member.revoke_by = None;
                        member.state = MemberState::Stable;
                        member.epoch = 0;
                        member.deadline = now + self.session_timeout;
                        group.members.insert(member_id.to_owned(), member);
                        group.target.insert(member_id.to_owned(), target);
                    }
                    group.statics.insert(instance.clone(), member_id.to_owned());
                    self.arm_session(&hb.group, member_id, now);
                    tracing::info!(group = %hb.group, %instance, member = %member_id, "static member rejoined in its old place");
                    return Ok(false);
                }
            }
        }
        if group.members.contains_key(member_id) {
            // A known member joining again has lost its partitions: start it over.
            group.remove(member_id);
        }
        group.members.insert(
            member_id.to_owned(),
            Member {
                instance_id: hb.instance_id.clone(),
                rack_id: None,
                client_id: String::new(),
                client_host: String::new(),
                subscribed: BTreeSet::new(),
                assignor: None,
                rebalance_timeout: Duration::from_millis(hb.rebalance_timeout_ms.max(0) as u64)
                    .min(REBALANCE_TIMEOUT_MAX),
                epoch: 0,
                previous_epoch: 0,
                state: MemberState::Stable,
                assigned: Assignment::new(),
                revoking: Assignment::new(),
                revoke_by: None,
                deadline: now + self.session_timeout,
            },
        );
        if let Some(instance) = &hb.instance_id {
            group.statics.insert(instance.clone(), member_id.to_owned());
        }
        self.arm_session(&hb.group, member_id, now);
        tracing::info!(group = %hb.group, member = %member_id, "member joined");
        Ok(true)
    }

    fn arm_session(&self, group: &str, member_id: &str, now: Instant) {
        self.arm(
            now + self.session_timeout,
            Timer::Session {
                group: group.to_owned(),
                member_id: member_id.to_owned(),
            },
        );
    }

    /// Checks a commit of `group` by `member_id` at `epoch`; `None` when the group is not a
    /// consumer-protocol group here. `version` is OffsetCommit's, `None` for TxnOffsetCommit.
    /// Commits with epoch -1 and no member (tools, simple consumers) only go to groups without
    /// members, which are not kept here.
    pub(crate) fn check_commit(
        &self,
        group: &str,
        member_id: &str,
        epoch: i32,
        version: Option<i16>,
    ) -> Option<Result<(), ResponseError>> {
        let groups = self.groups.lock();
        let group = groups.get(group)?;
        let Some(member) = group.members.get(member_id) else {
            return Some(Err(ResponseError::UnknownMemberId));
        };
        if version.is_some_and(|v| v < 9) {
            // Only v9 carries member epochs (Kafka refuses older versions the same way).
            return Some(Err(ResponseError::UnsupportedVersion));
        }
        Some(match (epoch == member.epoch, version) {
            (true, _) => Ok(()),
            (false, Some(_)) => Err(ResponseError::StaleMemberEpoch),
            // TxnOffsetCommit has no STALE_MEMBER_EPOCH: Kafka answers ILLEGAL_GENERATION.
            (false, None) => Err(ResponseError::IllegalGeneration),
        })
    }

    /// Checks an offset fetch (OffsetFetch v9) naming a member; `None` when the group is not a
    /// consumer-protocol group here or the fetch names no member.
    pub(crate) fn check_fetch(
        &self,
        group: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Option<Result<(), ResponseError>> {
        if member_id.is_none() && epoch < 0 {
            return None;
        }
        let groups = self.groups.lock();
        let group = groups.get(group)?;
        let Some(member) = member_id.and_then(|id| group.members.get(id)) else {
            return Some(Err(ResponseError::UnknownMemberId));
        };
        Some(if epoch != member.epoch {
            Err(ResponseError::StaleMemberEpoch)
        } else {
            Ok(())
        })
    }

    /// Every group with members.
    pub(crate) fn groups(&self) -> Vec<GroupView> {
        let groups = self.groups.lock();
        let mut all: Vec<GroupView> = groups.iter().map(|(id, g)| g.view(id)).collect();
        all.sort_by(|a, b| a.group.cmp(&b.group));
        all
    }

    /// One group, if it is a consumer-protocol group with members here.
    pub(crate) fn describe(&self, group: &str) -> Option<GroupView> {
        self.groups.lock().get(group).map(|g| g.view(group))
    }

    /// Starts a task that wakes at `deadline` and re-checks `timer`.
    fn arm(&self, deadline: Instant, timer: Timer) {
        spawn_timer(self.me.clone(), deadline, timer, Self::fire);
    }

    /// Acts on an expired timer; `Some(t)` when it must look again at `t`.
    fn fire(&self, timer: &Timer) -> Option<Instant> {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let (Timer::Session {
            group: group_id,
            member_id,
        }
        | Timer::Revocation {
            group: group_id,
            member_id,
        }) = timer;
        let group = groups.get_mut(group_id)?;
        let member = group.members.get(member_id)?;
        match timer {
            Timer::Session { .. } => {
                if member.deadline > now {
                    return Some(member.deadline);
                }
                tracing::info!(group = %group_id, member = %member_id, "member session expired");
            }
            Timer::Revocation { .. } => {
                let by = member.revoke_by?;
                if member.state != MemberState::UnrevokedPartitions {
                    return None;
                }
                if by > now {
                    return Some(by);
                }
                tracing::warn!(group = %group_id, member = %member_id, "member did not revoke its partitions within its rebalance timeout: fenced");
            }
        }
        group.remove(member_id);
        if group.members.is_empty() {
            groups.remove(group_id);
        }
        None
    }
}

/// Kafka's checks of a heartbeat's fields (`throwIfConsumerGroupHeartbeatRequestIsInvalid`).
fn validate(hb: &Heartbeat) -> Result<(), Refusal> {
    let invalid = |m: &str| refuse(ResponseError::InvalidRequest, m);
    if hb.group.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if hb.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if hb.member_id.is_empty() && (hb.version >= 1 || hb.member_epoch != 0) {
        return invalid("MemberId can't be empty.");
    }
    if hb.member_epoch < LEAVE_STATIC_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if hb.member_epoch == LEAVE_STATIC_EPOCH && hb.instance_id.is_none() {
        return invalid("InstanceId can't be null when leaving with member epoch -2.");
    }
    if hb
        .subscribed_regex
        .as_deref()
        .is_some_and(|r| !r.is_empty())
    {
        return invalid(
            "brook does not support SubscribedTopicRegex yet: subscribe by topic names",
        );
    }
    if let Some(name) = hb.assignor.as_deref().filter(|n| !n.is_empty()) {
        if Assignor::named(name).is_none() {
            return refuse(
                ResponseError::UnsupportedAssignor,
                format!(
                    "ServerAssignor {name} is not supported. Supported assignors: {}.",
                    ASSIGNOR_NAMES.join(", ")
                ),
            );
        }
    }
    if hb.member_epoch == 0 {
        if hb.rebalance_timeout_ms <= 0 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if hb.subscribed_topics.is_none() {
            return invalid("SubscribedTopicNames must be set in first request.");
        }
        if hb
            .owned
            .as_ref()
            .is_some_and(|o| o.values().any(|p| !p.is_empty()))
        {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
    }
    Ok(())
}

/// Kafka's member epoch check (`throwIfMemberEpochIsInvalid`): a newer epoch than the
/// coordinator gave, or an older one other than the previous one with owned partitions it still
/// may own (its last answer was lost), fences the member.
fn check_epoch(group: &Group, hb: &Heartbeat) -> Result<(), Refusal> {
    let Some(member) = group.members.get(&hb.member_id) else {
        return refuse(
            ResponseError::UnknownMemberId,
            format!("member {:?} is not in the group: rejoin", hb.member_id),
        );
    };
    if let Some(instance) = &hb.instance_id {
        if group.statics.get(instance) != Some(&hb.member_id) {
            return refuse(
                ResponseError::FencedInstanceId,
                format!("instance {instance:?} belongs to another member now"),
            );
        }
    }
    let fenced = || {
        refuse(
            ResponseError::FencedMemberEpoch,
            format!(
                "member epoch {} is fenced: the member is at epoch {}",
                hb.member_epoch, member.epoch
            ),
        )
    };
    if hb.member_epoch > member.epoch {
        return fenced();
    }
    if hb.member_epoch < member.epoch
        && (hb.member_epoch != member.previous_epoch
            || !hb
                .owned
                .as_ref()
                .is_some_and(|o| is_subset(o, &member.assigned)))
    {
        return fenced();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
