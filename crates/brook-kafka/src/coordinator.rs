//! The group coordinator of Kafka's classic consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), as Apache Kafka's `GroupCoordinator` runs it.
//!
//! Kafka clients assign partitions themselves: the coordinator collects the members, picks a
//! protocol every member supports and a leader, hands the leader every member's subscription
//! metadata, and relays the assignment the leader computed back to each member. It never reads
//! the bytes it relays. That is why this lives in the Kafka door rather than in the broker's
//! own groups (which assign on the server, for gRPC subscribers); the committed offsets are the
//! broker's, so a group's position is one fact whichever door committed it.
//!
//! Static membership (KIP-345): a member that joins with a `group.instance.id` keeps its place
//! across restarts. It does not leave when it closes; when it comes back (without a member id)
//! within its session timeout, it takes the old incarnation's place and assignment under a new
//! member id, and a stable group answers it at once, without a rebalance. The old incarnation's
//! requests get `FENCED_INSTANCE_ID`, as does any request naming the instance with another
//! member id.
//!
//! States: `Empty` -> `PreparingRebalance` (members (re)join; completes when every known
//! member has joined, or when the rebalance timeout drops the ones that did not; a group's first
//! round also waits `group_initial_rebalance_delay` for more members) -> `CompletingRebalance`
//! (the leader's SyncGroup brings the assignment) -> `Stable`. A member that stops
//! heartbeating for its session timeout is removed and the group rebalances.
//!
//! One group id, one kind of membership: a group here holds the broker's Kafka claim on its id
//! (`brook_broker::group_claim`) for as long as it exists, so the broker's own group subscribers
//! cannot use the id meanwhile, and a JoinGroup for an id they hold is refused with
//! INCONSISTENT_GROUP_PROTOCOL (the reason is logged: JoinGroup carries no error message).
//!
//! Requests that must wait (a JoinGroup until the round completes, a SyncGroup until the leader
//! sends the assignment) get a oneshot receiver; the state lock is never held across an await.
//! Timers are tokio tasks that sleep until a deadline and then re-check under the lock whether
//! the round or session they were armed for is still current.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use brook_broker::{GroupClaim, GroupClaims, GroupProtocol};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Shortest and longest session timeout a member may ask for. Kafka's defaults are 6 s and
/// 30 min; the lower floor lets tests (and impatient local runs) notice a dead member sooner.
pub(crate) const SESSION_TIMEOUT_MIN: Duration = Duration::from_millis(1000);
pub(crate) const SESSION_TIMEOUT_MAX: Duration = Duration::from_secs(30 * 60);

/// Where a group is in its rebalance cycle (Kafka's names, as DescribeGroups reports them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
        }
    }
}

/// A JoinGroup request, as the coordinator needs it.
#[derive(Debug, Clone)]
pub(crate) struct Join {
    pub group: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (protocol name, the member's subscription metadata for it), in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a member without an id is given one and asked to join again with it.
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Joined {
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol; empty unless this is the leader.
    pub members: Vec<JoinedMember>,
}

/// A JoinGroup that failed: the error, and the member id to send back with it (the newly
/// issued one for `MEMBER_ID_REQUIRED`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinError {
    pub error: ResponseError,
    pub member_id: String,
}

pub(crate) type JoinResult = Result<Joined, JoinError>;

/// The answer to a SyncGroup: the member's assignment (empty when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Synced {
    pub protocol_type: String,
    pub protocol: String,
    pub assignment: Bytes,
}

pub(crate) type SyncResult = Result<Synced, ResponseError>;

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups and ListGroups report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupSummary {
    pub group: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

#[derive(Debug)]
struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    /// When the session expires unless the member shows up again.
    deadline: Instant,
    /// Joined the round in progress (meaningful in `PreparingRebalance`).
    joined: bool,
    /// Order of arrival in the group: the longest-standing member becomes leader.
    seq: u64,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }
}

#[derive(Debug)]
struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: String,
    protocol: String,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, and when they lapse if never used.
    pending: HashMap<String, Instant>,
    /// Identifies the current rebalance round, so a timer armed for an earlier one does nothing.
    round: u64,
    /// A first round (from `Empty`) does not complete before this, to gather its members.
    not_before: Option<Instant>,
    next_seq: u64,
    /// Static members: `group.instance.id` -> the member id its current incarnation has.
    static_members: HashMap<String, String>,
    /// Keeps gRPC/embedded group subscribers off this group id while it exists here.
    _claim: GroupClaim,
}

impl Group {
    fn new(claim: GroupClaim) -> Self {
        Self {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: String::new(),
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            round: 0,
            not_before: None,
            next_seq: 0,
            static_members: HashMap::new(),
            _claim: claim,
        }
    }

    /// Removes a member (and its instance id, for a static one).
    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        Some(member)
    }

    /// `FENCED_INSTANCE_ID` when `instance` names a static member other than `member_id`.
    fn check_instance(&self, member_id: &str, instance: Option<&str>) -> Result<(), ResponseError> {
        match instance.and_then(|i| self.static_members.get(i)) {
            Some(current) if current != member_id => Err(ResponseError::FencedInstanceId),
            _ => Ok(()),
        }
    }

    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// The protocol (assignor) for the new generation, as Kafka picks it: among the protocols
    /// every member supports, each member votes for the one it lists first; most votes wins,
    /// ties going to the one voted for first (in member-id order).
    fn select_protocol(&self) -> String {
        let supported_by_all = |name: &str| self.members.values().all(|m| m.supports(name));
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for member in self.members.values() {
            let Some((name, _)) = member.protocols.iter().find(|(n, _)| supported_by_all(n)) else {
                continue;
            };
            match votes.iter_mut().find(|(n, _)| n == name) {
                Some((_, count)) => *count += 1,
                None => votes.push((name, 1)),
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, most)| count > most) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_owned()).unwrap_or_default()
    }

    fn joined_answer(&self, member_id: &str) -> Joined {
        let is_leader = self.leader.as_deref() == Some(member_id);
        let members = if is_leader {
            self.members
                .iter()
                .map(|(id, m)| JoinedMember {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata_for(&self.protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        Joined {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            members,
        }
    }

    fn synced_answer(&self, member_id: &str) -> Synced {
        Synced {
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Fails every SyncGroup still waiting (a new round started before the leader synced).
    fn fail_sync_waiters(&mut self, error: ResponseError) {
        for member in self.members.values_mut() {
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(Err(error));
            }
        }
    }
}

/// Tells a timer task what to re-check when it wakes.
#[derive(Debug, Clone)]
enum Timer {
    /// The join phase of round `round` of a group.
    Join { group: String, round: u64 },
    /// The sync phase of round `round`: members that never synced are dropped.
    Sync { group: String, round: u64 },
    /// The session of one member.
    Session { group: String, member_id: String },
    /// A member id handed out with MEMBER_ID_REQUIRED that was never used.
    Pending { group: String, member_id: String },
}

/// Every Kafka-protocol group of one listener.
#[derive(Debug)]
pub(crate) struct Coordinator {
    groups: Mutex<HashMap<String, Group>>,
    initial_delay: Duration,
    /// The broker's claims on group ids: a group here holds a Kafka claim while it exists.
    claims: GroupClaims,
    /// For timer tasks, which must not keep the coordinator alive after the listener stops.
    me: Weak<Coordinator>,
}

impl Coordinator {
    pub(crate) fn new(initial_delay: Duration, claims: GroupClaims) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            groups: Mutex::new(HashMap::new()),
            initial_delay,
            claims,
            me: me.clone(),
        })
    }

    /// JoinGroup: waits until the round this member joins completes.
    pub(crate) async fn join(&self, join: Join) -> JoinResult {
        let waiter = {
            let mut groups = self.groups.lock();
            let outcome = self.join_locked(&mut groups, join.clone());
            // A refused first join must not leave an empty group (and its claim) behind.
            self.forget_if_unused(&mut groups, &join.group);
            match outcome {
                Ok(answer) => return answer,
                Err(waiter) => waiter,
            }
        };
        // The sender is only dropped with the coordinator itself.
        waiter.await.unwrap_or(Err(JoinError {
            error: ResponseError::CoordinatorNotAvailable,
            member_id: join.member_id,
        }))
    }

    /// Answers at once (`Ok`) or hands back the receiver of a later answer (`Err`).
    fn join_locked(
        &self,
        groups: &mut HashMap<String, Group>,
        join: Join,
    ) -> Result<JoinResult, oneshot::Receiver<JoinResult>> {
        let fail = |error: ResponseError, member_id: &str| {
            Ok(Err(JoinError {
                error,
                member_id: member_id.to_owned(),
            }))
        };
        if join.group.is_empty() {
            return fail(ResponseError::InvalidGroupId, &join.member_id);
        }
        if !(SESSION_TIMEOUT_MIN..=SESSION_TIMEOUT_MAX).contains(&join.session_timeout) {
            return fail(ResponseError::InvalidSessionTimeout, &join.member_id);
        }
        if join.protocols.is_empty() || join.protocol_type.is_empty() {
            return fail(ResponseError::InconsistentGroupProtocol, &join.member_id);
        }
        let group = match groups.entry(join.group.clone()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => match self.claims.claim(&join.group, GroupProtocol::Kafka) {
                Ok(claim) => entry.insert(Group::new(claim)),
                Err(error) => {
                    // JoinGroup has no error message: say why where the operator looks.
                    tracing::warn!(%error, client = %join.client_id, "JoinGroup refused");
                    return fail(ResponseError::InconsistentGroupProtocol, &join.member_id);
                }
            },
        };
        if !group.members.is_empty()
            && (group.protocol_type != join.protocol_type
                || !join
                    .protocols
                    .iter()
                    .any(|(name, _)| group.members.values().all(|m| m.supports(name))))
        {
            return fail(ResponseError::InconsistentGroupProtocol, &join.member_id);
        }
        let now = Instant::now();
        if let Some(instance) = join.group_instance_id.clone() {
            match group.static_members.get(&instance).cloned() {
                Some(known) if join.member_id.is_empty() => {
                    return self.replace_static_member(group, &known, join, now);
                }
                Some(known) if known != join.member_id => {
                    return fail(ResponseError::FencedInstanceId, &join.member_id);
                }
                None if join.member_id.is_empty() => {
                    // A new static member is given its id at once (no MEMBER_ID_REQUIRED).
                    let member_id = format!("{instance}-{}", uuid::Uuid::new_v4());
                    group.static_members.insert(instance, member_id.clone());
                    return Err(self.add_member(group, member_id, join, now));
                }
                // The current incarnation, or a known member naming an instance: as any other.
                _ => {}
            }
        }
        if join.member_id.is_empty() {
            let member_id = format!("{}-{}", join.client_id, uuid::Uuid::new_v4());
            if join.require_known_member_id {
                group
                    .pending
                    .insert(member_id.clone(), now + join.session_timeout);
                self.arm(
                    now + join.session_timeout,
                    Timer::Pending {
                        group: join.group.clone(),
                        member_id: member_id.clone(),
                    },
                );
                return fail(ResponseError::MemberIdRequired, &member_id);
            }
            return Err(self.add_member(group, member_id, join, now));
        }
        if group.pending.remove(&join.member_id).is_some() {
            let member_id = join.member_id.clone();
            return Err(self.add_member(group, member_id, join, now));
        }
        let Some(member) = group.members.get_mut(&join.member_id) else {
            return fail(ResponseError::UnknownMemberId, &join.member_id);
        };
        let unchanged = member.protocols == join.protocols;
        member.deadline = now + join.session_timeout;
        member.session_timeout = join.session_timeout;
        member.rebalance_timeout = join.rebalance_timeout;
        member.client_id = join.client_id.clone();
        member.client_host = join.client_host.clone();
        let is_leader = group.leader.as_deref() == Some(join.member_id.as_str());
        match group.state {
            GroupState::CompletingRebalance if unchanged => {
                // A retried JoinGroup of the round being completed: answer it again.
                Ok(Ok(group.joined_answer(&join.member_id)))
            }
            GroupState::Stable if unchanged && !is_leader => {
                Ok(Ok(group.joined_answer(&join.member_id)))
            }
            _ => {
                member.protocols = join.protocols;
                let (tx, rx) = oneshot::channel();
                if let Some(old) = member.join_waiter.replace(tx) {
                    let _ = old.send(Err(JoinError {
                        error: ResponseError::RebalanceInProgress,
                        member_id: join.member_id.clone(),
                    }));
                }
                member.joined = true;
                let group_id = join.group.clone();
                self.prepare_rebalance(&group_id, group, now);
                self.try_complete_join(&group_id, group, now);
                Err(rx)
            }
        }
    }

    /// A static member back without its member id: it takes the old incarnation's place (and
    /// assignment) under a new id. A stable group whose protocol does not change answers at
    /// once with the current generation, naming the leader as it was, so the member does not
    /// think itself the leader and recompute a stable group's assignment; otherwise the group
    /// rebalances as for any join.
    fn replace_static_member(
        &self,
        group: &mut Group,
        old_id: &str,
        join: Join,
        now: Instant,
    ) -> Result<JoinResult, oneshot::Receiver<JoinResult>> {
        let instance = join.group_instance_id.clone().unwrap_or_default();
        let Some(mut member) = group.members.remove(old_id) else {
            group.static_members.remove(&instance);
            let member_id = format!("{instance}-{}", uuid::Uuid::new_v4());
            group.static_members.insert(instance, member_id.clone());
            return Err(self.add_member(group, member_id, join, now));
        };
        let new_id = format!("{instance}-{}", uuid::Uuid::new_v4());
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(Err(JoinError {
                error: ResponseError::FencedInstanceId,
                member_id: old_id.to_owned(),
            }));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(Err(ResponseError::FencedInstanceId));
        }
        member.protocols = join.protocols;
        member.client_id = join.client_id;
        member.client_host = join.client_host;
        member.session_timeout = join.session_timeout;
        member.rebalance_timeout = join.rebalance_timeout;
        member.deadline = now + join.session_timeout;
        let leader_before = group.leader.clone();
        if group.leader.as_deref() == Some(old_id) {
            group.leader = Some(new_id.clone());
        }
        group.members.insert(new_id.clone(), member);
        group
            .static_members
            .insert(instance.clone(), new_id.clone());
        self.arm(
            now + join.session_timeout,
            Timer::Session {
                group: join.group.clone(),
                member_id: new_id.clone(),
            },
        );
        if group.state == GroupState::Stable && group.select_protocol() == group.protocol {
            tracing::info!(group = %join.group, %instance, member = %new_id, "static member rejoined without a rebalance");
            let mut answer = group.joined_answer(&new_id);
            answer.leader = leader_before.unwrap_or_default();
            answer.members = Vec::new();
            return Ok(Ok(answer));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(member) = group.members.get_mut(&new_id) {
            member.join_waiter = Some(tx);
            member.joined = true;
        }
        self.prepare_rebalance(&join.group, group, now);
        self.try_complete_join(&join.group, group, now);
        Err(rx)
    }

    fn add_member(
        &self,
        group: &mut Group,
        member_id: String,
        join: Join,
        now: Instant,
    ) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if group.members.is_empty() {
            group.protocol_type = join.protocol_type.clone();
        }
        let seq = group.next_seq;
        group.next_seq += 1;
        group.members.insert(
            member_id.clone(),
            Member {
                group_instance_id: join.group_instance_id,
                client_id: join.client_id,
                client_host: join.client_host,
                session_timeout: join.session_timeout,
                rebalance_timeout: join.rebalance_timeout,
                protocols: join.protocols,
                assignment: Bytes::new(),
                deadline: now + join.session_timeout,
                joined: true,
                seq,
                join_waiter: Some(tx),
                sync_waiter: None,
            },
        );
        self.arm(
            now + join.session_timeout,
            Timer::Session {
                group: join.group.clone(),
                member_id,
            },
        );
        self.prepare_rebalance(&join.group, group, now);
        self.try_complete_join(&join.group, group, now);
        rx
    }

    /// Starts a new round unless one is already gathering members.
    fn prepare_rebalance(&self, group_id: &str, group: &mut Group, now: Instant) {
        match group.state {
            GroupState::PreparingRebalance => {
                // A member arriving during a first round's delay extends it (Kafka's
                // InitialDelayedJoin), within the rebalance timeout.
                // The round's timer sees the later `not_before` when it wakes.
                if let Some(not_before) = group.not_before {
                    let limit = not_before + group.rebalance_timeout();
                    group.not_before = Some((now + self.initial_delay).min(limit).max(not_before));
                }
                return;
            }
            GroupState::CompletingRebalance => {
                group.fail_sync_waiters(ResponseError::RebalanceInProgress);
            }
            GroupState::Empty | GroupState::Stable => {}
        }
        let first_round = group.state == GroupState::Empty;
        group.state = GroupState::PreparingRebalance;
        group.round += 1;
        for member in group.members.values_mut() {
            if member.join_waiter.is_none() {
                member.joined = false;
            }
        }
        group.not_before =
            (first_round && !self.initial_delay.is_zero()).then(|| now + self.initial_delay);
        let deadline = group.not_before.unwrap_or(now + group.rebalance_timeout());
        self.arm(
            deadline,
            Timer::Join {
                group: group_id.to_owned(),
                round: group.round,
            },
        );
    }

    /// Completes the join phase if every member has joined and no first-round delay holds it.
    fn try_complete_join(&self, group_id: &str, group: &mut Group, now: Instant) {
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        if group.not_before.is_some_and(|t| now < t) {
            return;
        }
        if group.members.values().all(|m| m.joined) {
            self.complete_join(group_id, group, now);
        }
    }

    /// Ends the join phase: members that did not join are dropped, a new generation starts,
    /// and every waiting JoinGroup is answered (the leader with every member's metadata).
    fn complete_join(&self, group_id: &str, group: &mut Group, now: Instant) {
        group.members.retain(|_, m| m.joined);
        let members = &group.members;
        group
            .static_members
            .retain(|_, id| members.contains_key(id));
        group.not_before = None;
        group.generation = group.generation.wrapping_add(1).max(1);
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.protocol.clear();
            group.protocol_type.clear();
            group.leader = None;
            return;
        }
        group.protocol = group.select_protocol();
        if !group
            .leader
            .as_ref()
            .is_some_and(|l| group.members.contains_key(l))
        {
            group.leader = group
                .members
                .iter()
                .min_by_key(|(_, m)| m.seq)
                .map(|(id, _)| id.clone());
        }
        group.state = GroupState::CompletingRebalance;
        group.round += 1;
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in ids {
            let answer = group.joined_answer(&id);
            if let Some(member) = group.members.get_mut(&id) {
                member.assignment = Bytes::new();
                member.deadline = now + member.session_timeout;
                if let Some(waiter) = member.join_waiter.take() {
                    let _ = waiter.send(Ok(answer));
                }
            }
        }
        self.arm(
            now + group.rebalance_timeout(),
            Timer::Sync {
                group: group_id.to_owned(),
                round: group.round,
            },
        );
    }

    /// SyncGroup: the leader brings every member's assignment; each member waits for its own.
    pub(crate) async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let waiter = {
            let mut groups = self.groups.lock();
            let Some(group) = groups.get_mut(group_id) else {
                return Err(ResponseError::UnknownMemberId);
            };
            group.check_instance(member_id, instance)?;
            let is_leader = group.leader.as_deref() == Some(member_id);
            let Some(member) = group.members.get_mut(member_id) else {
                return Err(ResponseError::UnknownMemberId);
            };
            if generation != group.generation {
                return Err(ResponseError::IllegalGeneration);
            }
            member.deadline = Instant::now() + member.session_timeout;
            match group.state {
                GroupState::Empty => return Err(ResponseError::UnknownMemberId),
                GroupState::PreparingRebalance => return Err(ResponseError::RebalanceInProgress),
                GroupState::Stable => return Ok(group.synced_answer(member_id)),
                GroupState::CompletingRebalance => {}
            }
            let (tx, rx) = oneshot::channel();
            if let Some(old) = member.sync_waiter.replace(tx) {
                let _ = old.send(Err(ResponseError::RebalanceInProgress));
            }
            if is_leader {
                let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                for (id, member) in group.members.iter_mut() {
                    member.assignment = assignments.remove(id).unwrap_or_default();
                }
                group.state = GroupState::Stable;
                let ids: Vec<String> = group.members.keys().cloned().collect();
                for id in ids {
                    let answer = group.synced_answer(&id);
                    if let Some(waiter) = group
                        .members
                        .get_mut(&id)
                        .and_then(|m| m.sync_waiter.take())
                    {
                        let _ = waiter.send(Ok(answer));
                    }
                }
            }
            rx
        };
        waiter
            .await
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
    }

    /// Heartbeat: keeps the session alive and tells the member when it must rejoin.
    pub(crate) fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let mut groups = self.groups.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        group.check_instance(member_id, instance)?;
        if group.state == GroupState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        let state = group.state;
        let current = group.generation;
        let member = group
            .members
            .get_mut(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if generation != current {
            return Err(ResponseError::IllegalGeneration);
        }
        member.deadline = Instant::now() + member.session_timeout;
        match state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup: removes each member (one error per member) and rebalances the rest. A member
    /// is named by its member id, or (a static member, v3+) by its instance id, with or without
    /// the member id.
    pub(crate) fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<(), ResponseError>> {
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return members
                .iter()
                .map(|_| Err(ResponseError::UnknownMemberId))
                .collect();
        };
        let now = Instant::now();
        let mut left_any = false;
        let results = members
            .iter()
            .map(|(id, instance)| {
                let id = match instance.as_deref() {
                    Some(instance) => match group.static_members.get(instance) {
                        Some(current) if id.is_empty() || current == id => current.clone(),
                        Some(_) => return Err(ResponseError::FencedInstanceId),
                        None => return Err(ResponseError::UnknownMemberId),
                    },
                    None => id.clone(),
                };
                if group.pending.remove(&id).is_some() {
                    return Ok(());
                }
                match group.remove_member(&id) {
                    Some(member) => {
                        fail_waiters(member, ResponseError::UnknownMemberId);
                        left_any = true;
                        Ok(())
                    }
                    None => Err(ResponseError::UnknownMemberId),
                }
            })
            .collect();
        if left_any {
            self.member_gone(group_id, group, now);
        }
        self.forget_if_unused(&mut groups, group_id);
        results
    }

    /// After a member left or expired: the others must rejoin (or the round may now complete).
    fn member_gone(&self, group_id: &str, group: &mut Group, now: Instant) {
        match group.state {
            GroupState::PreparingRebalance => self.try_complete_join(group_id, group, now),
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group_id, group, now);
                self.try_complete_join(group_id, group, now);
            }
            GroupState::Empty => {}
        }
    }

    /// Drops a group that holds nothing anymore (its committed offsets live in the broker).
    fn forget_if_unused(&self, groups: &mut HashMap<String, Group>, group_id: &str) {
        if groups.get(group_id).is_some_and(|g| {
            g.state == GroupState::Empty && g.members.is_empty() && g.pending.is_empty()
        }) {
            groups.remove(group_id);
        }
    }

    /// Whether an OffsetCommit by `member_id` at `generation` may be applied. Commits with
    /// generation -1 and no member (simple consumers, admin tools) are for groups without
    /// members.
    pub(crate) fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let groups = self.groups.lock();
        if let Some(group) = groups.get(group_id) {
            group.check_instance(member_id, instance)?;
        }
        let Some(group) = groups.get(group_id).filter(|g| !g.members.is_empty()) else {
            return if generation < 0 && member_id.is_empty() {
                Ok(())
            } else if member_id.is_empty() {
                Err(ResponseError::IllegalGeneration)
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        };
        if generation < 0 && member_id.is_empty() {
            // Kafka refuses an anonymous commit while the group has live members.
            return Err(ResponseError::UnknownMemberId);
        }
        if !group.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != group.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Every group with members, or a round in progress.
    pub(crate) fn groups(&self) -> Vec<GroupSummary> {
        let groups = self.groups.lock();
        let mut all: Vec<GroupSummary> = groups.iter().map(|(id, g)| summary(id, g)).collect();
        all.sort_by(|a, b| a.group.cmp(&b.group));
        all
    }

    /// One group, if the coordinator knows it.
    pub(crate) fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        self.groups
            .lock()
            .get(group_id)
            .map(|g| summary(group_id, g))
    }

    /// Starts a task that wakes at `deadline` and re-checks `timer`.
    fn arm(&self, deadline: Instant, timer: Timer) {
        spawn_timer(self.me.clone(), deadline, timer, Self::fire);
    }

    /// Acts on an expired timer; `Some(t)` when it must look again at `t`.
    fn fire(&self, timer: &Timer) -> Option<Instant> {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let group_id = match timer {
            Timer::Join { group, .. }
            | Timer::Sync { group, .. }
            | Timer::Session { group, .. }
            | Timer::Pending { group, .. } => group.clone(),
        };
        let group = groups.get_mut(&group_id)?;
        let again = match timer {
            Timer::Join { round, .. } => {
                if group.round != *round || group.state != GroupState::PreparingRebalance {
                    return None;
                }
                if let Some(not_before) = group.not_before.filter(|t| now < *t) {
                    return Some(not_before);
                }
                // The first round's delay is over, or the rebalance timeout hit: whoever has
                // not joined by now is out.
                self.expire_unjoined(group);
                self.complete_join(&group_id, group, now);
                None
            }
            Timer::Sync { round, .. } => {
                if group.round != *round || group.state != GroupState::CompletingRebalance {
                    return None;
                }
                // The leader never sent the assignment (or members never asked for theirs):
                // drop those that did not sync and start over.
                let gone: Vec<String> = group
                    .members
                    .iter()
                    .filter(|(_, m)| m.sync_waiter.is_none())
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in gone {
                    if let Some(member) = group.remove_member(&id) {
                        fail_waiters(member, ResponseError::UnknownMemberId);
                    }
                }
                self.member_gone(&group_id, group, now);
                None
            }
            Timer::Session { member_id, .. } => {
                let member = group.members.get_mut(member_id)?;
                if member.join_waiter.is_some() {
                    // Waiting in a join round: the rebalance timeout governs it, not the session.
                    return Some(now + member.session_timeout);
                }
                if member.deadline > now {
                    return Some(member.deadline);
                }
                if let Some(member) = group.remove_member(member_id) {
                    tracing::info!(group = %group_id, member = %member_id, "member session expired");
                    fail_waiters(member, ResponseError::UnknownMemberId);
                }
                self.member_gone(&group_id, group, now);
                None
            }
            Timer::Pending { member_id, .. } => {
                if group.pending.get(member_id).is_some_and(|t| *t <= now) {
                    group.pending.remove(member_id);
                }
                None
            }
        };
        self.forget_if_unused(&mut groups, &group_id);
        again
    }

    fn expire_unjoined(&self, group: &mut Group) {
        let gone: Vec<String> = group
            .members
            .iter()
            .filter(|(_, m)| !m.joined)
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(member) = group.remove_member(&id) {
                fail_waiters(member, ResponseError::UnknownMemberId);
            }
        }
    }
}

/// Starts a task that sleeps until `deadline`, then calls `fire` on the coordinator (if it is
/// still alive) with `timer`, and sleeps again until the instant `fire` returns, if any. Both
/// group coordinators arm their timers with it; the task holds the coordinator only weakly.
pub(crate) fn spawn_timer<C, T>(
    me: Weak<C>,
    deadline: Instant,
    timer: T,
    fire: fn(&C, &T) -> Option<Instant>,
) where
    C: Send + Sync + 'static,
    T: Send + 'static,
{
    tokio::spawn(async move {
        let mut deadline = deadline;
        loop {
            tokio::time::sleep_until(deadline).await;
            let Some(coordinator) = me.upgrade() else {
                return;
            };
            match fire(&coordinator, &timer) {
                Some(later) => deadline = later,
                None => return,
            }
        }
    });
}

fn fail_waiters(member: Member, error: ResponseError) {
    if let Some(waiter) = member.join_waiter {
        let _ = waiter.send(Err(JoinError {
            error,
            member_id: String::new(),
        }));
    }
    if let Some(waiter) = member.sync_waiter {
        let _ = waiter.send(Err(error));
    }
}

fn summary(group_id: &str, group: &Group) -> GroupSummary {
    GroupSummary {
        group: group_id.to_owned(),
        state: group.state,
        generation: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol: group.protocol.clone(),
        members: group
            .members
            .iter()
            .map(|(id, m)| MemberSummary {
                member_id: id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(&group.protocol),
                assignment: m.assignment.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_secs(10);

    fn join(member_id: &str, protocols: &[&str]) -> Join {
        Join {
            group: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: SESSION,
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
                .collect(),
            require_known_member_id: true,
        }
    }

    /// Joins the way a v4+ client does: without an id first, then with the one it is given.
    async fn join_new(c: &Coordinator, protocols: &[&str]) -> Joined {
        let err = c.join(join("", protocols)).await.unwrap_err();
        assert_eq!(err.error, ResponseError::MemberIdRequired);
        assert!(err.member_id.starts_with("c-"), "{}", err.member_id);
        c.join(join(&err.member_id, protocols)).await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn lone_member_leads_and_gets_its_own_assignment() {
        let c = Coordinator::new(Duration::ZERO, GroupClaims::default());
        let joined = join_new(&c, &["range"]).await;
        assert_eq!(joined.generation, 1);
        assert_eq!(joined.leader, joined.member_id);
        assert_eq!(joined.protocol, "range");
        assert_eq!(joined.members.len(), 1);
        assert_eq!(joined.members[0].metadata, Bytes::from("meta-range"));
        let synced = c
            .sync(
                "g",
                &joined.member_id,
                None,
                1,
                vec![(joined.member_id.clone(), Bytes::from("a"))],
            )
            .await
            .unwrap();
        assert_eq!(synced.assignment, Bytes::from("a"));
        assert_eq!(c.heartbeat("g", &joined.member_id, None, 1), Ok(()));
        assert_eq!(
            c.heartbeat("g", &joined.member_id, None, 0),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            c.heartbeat("g", "nobody", None, 1),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_member_id_and_bad_session_timeout_are_refused() {
        let c = Coordinator::new(Duration::ZERO, GroupClaims::default());
        let err = c.join(join("made-up", &["range"])).await.unwrap_err();
        assert_eq!(err.error, ResponseError::UnknownMemberId);
        let mut short = join("", &["range"]);
        short.session_timeout = Duration::from_millis(10);
        let err = c.join(short).await.unwrap_err();
        assert_eq!(err.error, ResponseError::InvalidSessionTimeout);
        let mut nothing = join("", &[]);
        nothing.require_known_member_id = false;
        let err = c.join(nothing).await.unwrap_err();
        assert_eq!(err.error, ResponseError::InconsistentGroupProtocol);
    }

    #[tokio::test(start_paused = true)]
    async fn second_member_triggers_a_rebalance_both_rejoin_and_each_gets_its_share() {
        let c = Coordinator::new(Duration::ZERO, GroupClaims::default());
        let first = join_new(&c, &["range", "roundrobin"]).await;
        c.sync(
            "g",
            &first.member_id,
            None,
            1,
            vec![(first.member_id.clone(), Bytes::from("all"))],
        )
        .await
        .unwrap();

        let c2 = Arc::clone(&c);
        let second = tokio::spawn(async move { join_new(&c2, &["roundrobin"]).await });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The first member learns of the rebalance from its heartbeat and rejoins.
        assert_eq!(
            c.heartbeat("g", &first.member_id, None, 1),
            Err(ResponseError::RebalanceInProgress)
        );
        let first2 = c
            .join(join(&first.member_id, &["range", "roundrobin"]))
            .await
            .unwrap();
        let second = second.await.unwrap();
        assert_eq!(first2.generation, 2);
        assert_eq!(second.generation, 2);
        assert_eq!(
            first2.leader, first.member_id,
            "the longest-standing member leads"
        );
        assert_eq!(first2.members.len(), 2);
        assert!(
            second.members.is_empty(),
            "only the leader sees the members"
        );
        // The only protocol both members support, though the first prefers another.
        assert_eq!(first2.protocol, "roundrobin");

        let c2 = Arc::clone(&c);
        let follower = second.member_id.clone();
        let follower_sync =
            tokio::spawn(async move { c2.sync("g", &follower, None, 2, vec![]).await });
        tokio::task::yield_now().await;
        let leader_sync = c
            .sync(
                "g",
                &first.member_id,
                None,
                2,
                vec![
                    (first.member_id.clone(), Bytes::from("p0")),
                    (second.member_id.clone(), Bytes::from("p1")),
                ],
            )
            .await
            .unwrap();
        assert_eq!(leader_sync.assignment, Bytes::from("p0"));
        assert_eq!(
            follower_sync.await.unwrap().unwrap().assignment,
            Bytes::from("p1")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn member_that_stops_heartbeating_is_removed_and_the_group_rebalances() {
        let c = Coordinator::new(Duration::ZERO, GroupClaims::default());
        let a = join_new(&c, &["range"]).await;
        c.sync("g", &a.member_id, None, 1, vec![]).await.unwrap();
        let c2 = Arc::clone(&c);
        let b = tokio::spawn(async move { join_new(&c2, &["range"]).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let a2 = c.join(join(&a.member_id, &["range"])).await.unwrap();
        let b = b.await.unwrap();
        assert_eq!(a2.leader, a.member_id);
        let c2 = Arc::clone(&c);
        let b_id = b.member_id.clone();
        let b_sync = tokio::spawn(async move { c2.sync("g", &b_id, None, 2, vec![]).await });
        tokio::task::yield_now().await;
        c.sync("g", &a.member_id, None, 2, vec![]).await.unwrap();
        assert_eq!(
            b_sync.await.unwrap().unwrap().assignment,
            Bytes::new(),
            "empty, not missing"
        );

        // Only `a` keeps heartbeating; `b`'s session runs out.
        for _ in 0..4 {
            tokio::time::sleep(SESSION / 3).await;
            let _ = c.heartbeat("g", &a.member_id, None, 2);
        }
        assert_eq!(
            c.heartbeat("g", &a.member_id, None, 2),
            Err(ResponseError::RebalanceInProgress)
        );
        assert_eq!(
            c.heartbeat("g", &b.member_id, None, 2),
            Err(ResponseError::UnknownMemberId)
        );
        let a3 = c.join(join(&a.member_id, &["range"])).await.unwrap();
        assert_eq!(a3.generation, 3);
        assert_eq!(a3.members.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_id_held_by_the_other_kind_of_members_is_refused_both_ways() {
        let claims = GroupClaims::default();
        let c = Coordinator::new(Duration::ZERO, claims.clone());
        let brook = claims
            .claim("g", GroupProtocol::Brook)
            .expect("brook claim");
        let refused = c.join(join("", &["range"])).await.unwrap_err();
        assert_eq!(refused.error, ResponseError::InconsistentGroupProtocol);
        assert!(
            c.describe("g").is_none(),
            "a refused join leaves nothing behind"
        );
        drop(brook);
        let a = join_new(&c, &["range"]).await;
        assert!(claims.claim("g", GroupProtocol::Brook).is_err());
        c.leave("g", &[(a.member_id, None)]);
        assert_eq!(
            claims.holder("g"),
            None,
            "the last member's leave frees the id"
        );
        let _brook = claims
            .claim("g", GroupProtocol::Brook)
            .expect("free for brook again");
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_member_ends_the_group_and_commits_are_checked() {
        let c = Coordinator::new(Duration::ZERO, GroupClaims::default());
        let a = join_new(&c, &["range"]).await;
        assert_eq!(
            c.check_commit("g", &a.member_id, None, 1),
            Err(ResponseError::RebalanceInProgress),
            "not before the assignment is known"
        );
        c.sync("g", &a.member_id, None, 1, vec![]).await.unwrap();
        assert_eq!(c.check_commit("g", &a.member_id, None, 1), Ok(()));
        assert_eq!(
            c.check_commit("g", &a.member_id, None, 7),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            c.check_commit("g", "x", None, 1),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            c.check_commit("g", "", None, -1),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            c.leave("g", &[(a.member_id.clone(), None), ("x".into(), None)]),
            vec![Ok(()), Err(ResponseError::UnknownMemberId)]
        );
        assert!(c.describe("g").is_none(), "an empty group is forgotten");
        assert_eq!(
            c.check_commit("g", "", None, -1),
            Ok(()),
            "simple commits to an empty group"
        );
    }

    fn static_join(instance: &str, member_id: &str) -> Join {
        Join {
            group_instance_id: Some(instance.into()),
            ..join(member_id, &["range"])
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_static_member_that_comes_back_takes_its_place_without_a_rebalance() {
        let c = Coordinator::new(Duration::ZERO, GroupClaims::default());
        // A static member needs no MEMBER_ID_REQUIRED round trip.
        let a = c.join(static_join("ia", "")).await.expect("joined");
        assert!(a.member_id.starts_with("ia-"), "{}", a.member_id);
        c.sync("g", &a.member_id, Some("ia"), 1, vec![])
            .await
            .expect("synced");
        let c2 = Arc::clone(&c);
        let b = tokio::spawn(async move { c2.join(static_join("ib", "")).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let a2 = c
            .join(static_join("ia", &a.member_id))
            .await
            .expect("rejoined");
        let b = b.await.expect("task").expect("joined");
        assert_eq!((a2.generation, b.generation), (2, 2));
        let c2 = Arc::clone(&c);
        let b_id = b.member_id.clone();
        let b_sync = tokio::spawn(async move { c2.sync("g", &b_id, Some("ib"), 2, vec![]).await });
        tokio::task::yield_now().await;
        let assignments = vec![
            (a.member_id.clone(), Bytes::from("pa")),
            (b.member_id.clone(), Bytes::from("pb")),
        ];
        c.sync("g", &a.member_id, Some("ia"), 2, assignments)
            .await
            .expect("leader synced");
        b_sync.await.expect("task").expect("synced");

        // `ia` restarts: no member id, same instance. Answered at once, same generation,
        // the leader named as it was (so the new incarnation does not reassign).
        let back = c.join(static_join("ia", "")).await.expect("back");
        assert_ne!(back.member_id, a.member_id);
        assert_eq!(back.generation, 2, "no rebalance");
        assert_eq!(back.leader, a.member_id);
        assert!(back.members.is_empty());
        let synced = c
            .sync("g", &back.member_id, Some("ia"), 2, vec![])
            .await
            .expect("synced");
        assert_eq!(synced.assignment, Bytes::from("pa"), "the old assignment");
        assert_eq!(
            c.heartbeat("g", &b.member_id, Some("ib"), 2),
            Ok(()),
            "b goes on"
        );
        // The old incarnation is fenced.
        assert_eq!(
            c.heartbeat("g", &a.member_id, Some("ia"), 2),
            Err(ResponseError::FencedInstanceId)
        );
        assert_eq!(
            c.heartbeat("g", &a.member_id, None, 2),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            c.join(static_join("ia", &a.member_id))
                .await
                .unwrap_err()
                .error,
            ResponseError::FencedInstanceId
        );
        assert_eq!(c.describe("g").expect("group").members.len(), 2);

        // Leaving by instance id alone (v3+), as an admin tool does.
        assert_eq!(
            c.leave("g", &[(String::new(), Some("ib".into()))]),
            vec![Ok(())]
        );
        assert_eq!(
            c.heartbeat("g", &back.member_id, Some("ia"), 2),
            Err(ResponseError::RebalanceInProgress)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_static_member_back_during_a_rebalance_joins_that_round_in_its_old_place() {
        let c = Coordinator::new(Duration::ZERO, GroupClaims::default());
        let a = c.join(static_join("ia", "")).await.expect("joined");
        c.sync("g", &a.member_id, Some("ia"), 1, vec![])
            .await
            .expect("synced");
        // A dynamic member arrives: the group waits for `a` to rejoin...
        let c2 = Arc::clone(&c);
        let b = tokio::spawn(async move { join_new(&c2, &["range"]).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // ...and `a` comes back as a new process instead: it takes its place in the round.
        let back = c.join(static_join("ia", "")).await.expect("back");
        let b = b.await.expect("task");
        assert_eq!((back.generation, b.generation), (2, 2));
        assert_ne!(back.member_id, a.member_id);
        assert_eq!(
            back.leader, back.member_id,
            "the leader's place, under its new id"
        );
        assert_eq!(back.members.len(), 2, "the leader sees every member");
        assert!(back
            .members
            .iter()
            .any(|m| m.group_instance_id.as_deref() == Some("ia")));
        assert_eq!(
            c.sync("g", &a.member_id, Some("ia"), 2, vec![])
                .await
                .unwrap_err(),
            ResponseError::FencedInstanceId,
            "the old incarnation is fenced"
        );
        // A member id that names another instance's member is fenced too.
        assert_eq!(
            c.leave("g", &[(b.member_id.clone(), Some("ia".into()))]),
            vec![Err(ResponseError::FencedInstanceId)]
        );
        assert_eq!(c.describe("g").expect("group").members.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn first_round_waits_the_initial_delay_to_gather_members() {
        let c = Coordinator::new(Duration::from_secs(3), GroupClaims::default());
        let c2 = Arc::clone(&c);
        let a = tokio::spawn(async move { join_new(&c2, &["range"]).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = join_new(&c, &["range"]).await;
        let a = a.await.unwrap();
        assert_eq!(
            (a.generation, b.generation),
            (1, 1),
            "one generation for both"
        );
        assert_eq!(a.leader, a.member_id);
    }
}
