//! Consumer groups of subscribers: who is in a group, which partitions each member is assigned,
//! and which member is serving each partition right now.
//!
//! The broker is the coordinator: a member is an open group subscription over a set of topics;
//! each join or leave (and each change of a subscribed topic's partitions) bumps the group's
//! generation and recomputes the assignment with Kafka's range assignor, per topic. Assignment
//! alone does not hand a partition over: a partition is *owned* by at most one member at a time,
//! and a member only takes ownership of an assigned partition once the previous owner has
//! released it (which it does the next time it looks, before delivering anything more from it).
//! So each partition is delivered by one member at a time, and the new owner resumes from the
//! group's committed offset. A member that does not release within the release timeout (it is
//! not being polled) has the partition taken from it, as Kafka's rebalance timeout does.
//!
//! Every change is announced on a per-group `watch` channel carrying an epoch counter; members
//! wait on it (and on their partitions' high watermarks), never poll.
//!
//! This module owns group *state*; committed offsets are in [`crate::offsets`]. The Kafka
//! door's coordinator (JoinGroup/SyncGroup with client-side assignment) runs its own groups over
//! the same offsets; [`crate::group_claim`] keeps a group id to one of the two at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::group_claim::GroupClaims;
use crate::group_observer::{LiveGroup, Observers};
use crate::types::{MemberDescription, TopicPartition};

/// Partition count of a topic; 0 when it does not exist.
pub(crate) type PartitionCounts<'a> = &'a dyn Fn(&str) -> u32;

#[derive(Debug)]
struct Member {
    client_id: String,
    topics: Vec<String>,
}

#[derive(Debug)]
struct Group {
    generation: u64,
    members: BTreeMap<String, Member>,
    assignment: BTreeMap<String, Vec<TopicPartition>>,
    owners: HashMap<TopicPartition, String>,
    /// When the last rebalance happened: an owner that has not released a partition it lost
    /// `release_timeout` after this has it taken away.
    rebalanced_at: Instant,
    /// Epoch bumped on every rebalance and every release.
    changed: watch::Sender<u64>,
}

impl Group {
    fn new() -> Self {
        Self {
            generation: 0,
            members: BTreeMap::new(),
            assignment: BTreeMap::new(),
            owners: HashMap::new(),
            rebalanced_at: Instant::now(),
            changed: watch::Sender::new(0),
        }
    }

    fn rebalance(&mut self, counts: PartitionCounts<'_>) {
        self.generation += 1;
        self.rebalanced_at = Instant::now();
        self.assignment = range_assign(&self.members, counts);
        // Ownership moves only when the owner releases (see `Groups::sync`); a member that
        // left owns nothing.
        let members = &self.members;
        self.owners
            .retain(|_, owner| members.contains_key(owner.as_str()));
        self.bump();
    }

    fn bump(&self) {
        self.changed.send_modify(|epoch| *epoch += 1);
    }
}

/// Kafka's `RangeAssignor`: per topic, the members subscribed to it in member-id order each take
/// a contiguous range of partitions; the first `partitions % members` take one extra.
fn range_assign(
    members: &BTreeMap<String, Member>,
    counts: PartitionCounts<'_>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut by_topic: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, member) in members {
        for topic in &member.topics {
            by_topic.entry(topic).or_default().push(id);
        }
    }
    let mut assignment: BTreeMap<String, Vec<TopicPartition>> =
        members.keys().map(|id| (id.clone(), Vec::new())).collect();
    for (topic, subscribers) in by_topic {
        let partitions = counts(topic);
        let n = subscribers.len() as u32;
        let (per, extra) = (partitions / n, partitions % n);
        for (i, member) in subscribers.iter().enumerate() {
            let i = i as u32;
            let start = i * per + i.min(extra);
            let len = per + u32::from(i < extra);
            if let Some(tps) = assignment.get_mut(*member) {
                tps.extend((start..start + len).map(|p| TopicPartition::new(topic, p)));
            }
        }
    }
    assignment
}

/// A member's ownership after [`Groups::sync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settled {
    pub(crate) generation: u64,
    /// The partitions it owns now, in assignment order.
    pub(crate) owned: Vec<TopicPartition>,
    /// When it is assigned partitions another member still holds: when to take them anyway.
    pub(crate) wait_until: Option<Instant>,
}

/// A member's handle: its id and the channel that announces changes of its group.
#[derive(Debug)]
pub(crate) struct Membership {
    pub(crate) group: String,
    pub(crate) member_id: String,
    pub(crate) changes: watch::Receiver<u64>,
}

/// The coordinator of every subscriber group.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    groups: Mutex<HashMap<String, Group>>,
    next_member: AtomicU64,
    /// Claims on group ids, shared with the Kafka door's coordinator.
    pub(crate) claims: GroupClaims,
    /// Coordinators outside the broker whose groups admin calls show too.
    pub(crate) observers: Observers,
}

impl Groups {
    /// Adds a member subscribed to `topics` and rebalances the group.
    pub(crate) fn join(
        &self,
        group: &str,
        client_id: &str,
        topics: Vec<String>,
        counts: PartitionCounts<'_>,
    ) -> Membership {
        let seq = self.next_member.fetch_add(1, Ordering::Relaxed);
        // Zero-padded, so member-id order (the range assignor's) is join order.
        let member_id = format!("{client_id}-{seq:016}");
        let mut groups = self.groups.lock();
        let state = groups.entry(group.to_owned()).or_insert_with(Group::new);
        state.members.insert(
            member_id.clone(),
            Member {
                client_id: client_id.to_owned(),
                topics,
            },
        );
        state.rebalance(counts);
        Membership {
            group: group.to_owned(),
            member_id,
            changes: state.changed.subscribe(),
        }
    }

    /// Removes a member (its stream ended or was dropped), releasing what it owned, and
    /// rebalances the rest. A group left with no members is forgotten (its offsets stay).
    pub(crate) fn leave(&self, group: &str, member_id: &str, counts: PartitionCounts<'_>) {
        let mut groups = self.groups.lock();
        let Some(state) = groups.get_mut(group) else {
            return;
        };
        if state.members.remove(member_id).is_none() {
            return;
        }
        if state.members.is_empty() {
            groups.remove(group);
        } else {
            state.rebalance(counts);
        }
    }

    /// Settles `member_id`'s ownership against its assignment: releases what it owns but is no
    /// longer assigned, takes what it is assigned and nobody owns, and takes what another member
    /// still holds `release_timeout` after the rebalance (a member that stopped polling must not
    /// hold partitions forever; Kafka's rebalance timeout). `None` when it is no longer a member.
    pub(crate) fn sync(
        &self,
        group: &str,
        member_id: &str,
        release_timeout: Duration,
    ) -> Option<Settled> {
        let mut groups = self.groups.lock();
        let state = groups.get_mut(group)?;
        let assigned = state.assignment.get(member_id)?.clone();
        let before = state.owners.len();
        state
            .owners
            .retain(|tp, owner| owner != member_id || assigned.contains(tp));
        let mut changed = state.owners.len() != before;
        let deadline = state.rebalanced_at + release_timeout;
        let overdue = Instant::now() >= deadline;
        let mut owned = Vec::with_capacity(assigned.len());
        let mut waiting = false;
        for tp in assigned {
            let owner = state
                .owners
                .entry(tp.clone())
                .or_insert_with(|| member_id.to_owned());
            if owner != member_id && overdue {
                tracing::warn!(
                    group, partition = %tp, from = %owner, to = member_id,
                    "a member did not release a partition within the release timeout; taking it"
                );
                member_id.clone_into(owner);
                changed = true;
            }
            if owner == member_id {
                owned.push(tp);
            } else {
                waiting = true;
            }
        }
        if changed {
            // Someone may be waiting for what was released, or must notice what was taken.
            state.bump();
        }
        Some(Settled {
            generation: state.generation,
            owned,
            wait_until: waiting.then_some(deadline),
        })
    }

    /// Rebalances every group subscribed to `topic` (it was created, deleted or resized).
    pub(crate) fn topic_changed(&self, topic: &str, counts: PartitionCounts<'_>) {
        let mut groups = self.groups.lock();
        for state in groups.values_mut() {
            let subscribed = state
                .members
                .values()
                .any(|m| m.topics.iter().any(|t| t == topic));
            if subscribed {
                state.rebalance(counts);
            }
        }
    }

    /// Groups with members, and how many each has.
    pub(crate) fn list(&self) -> Vec<(String, usize)> {
        self.groups
            .lock()
            .iter()
            .map(|(name, state)| (name.clone(), state.members.len()))
            .collect()
    }

    /// The members and assignment of `group`; `None` when it has no members.
    pub(crate) fn snapshot(&self, group: &str) -> Option<LiveGroup> {
        let groups = self.groups.lock();
        let state = groups.get(group)?;
        let members = state
            .members
            .iter()
            .map(|(id, member)| MemberDescription {
                member_id: id.clone(),
                client_id: member.client_id.clone(),
                topics: member.topics.clone(),
                assignment: state.assignment.get(id).cloned().unwrap_or_default(),
            })
            .collect();
        Some(LiveGroup {
            // A group here has members, and its assignment is settled at once.
            state: "Stable",
            generation: state.generation,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    fn four_and_three(topic: &str) -> u32 {
        match topic {
            "a" => 4,
            "b" => 3,
            _ => 0,
        }
    }

    fn owned(groups: &Groups, member: &Membership) -> Vec<TopicPartition> {
        groups
            .sync("g", &member.member_id, LONG)
            .expect("a member")
            .owned
    }

    fn tps(list: &[(&str, u32)]) -> Vec<TopicPartition> {
        list.iter()
            .map(|(t, p)| TopicPartition::new(*t, *p))
            .collect()
    }

    #[test]
    fn range_assignment_matches_kafka() {
        let groups = Groups::default();
        let counts: PartitionCounts<'_> = &four_and_three;
        let m1 = groups.join("g", "c", vec!["a".into(), "b".into()], counts);
        let m2 = groups.join("g", "c", vec!["a".into()], counts);
        let m3 = groups.join("g", "c", vec!["a".into(), "b".into()], counts);
        // Topic a (4 partitions) over m1, m2, m3: 2, 1, 1. Topic b (3) over m1, m3: 2, 1.
        assert_eq!(
            owned(&groups, &m1),
            tps(&[("a", 0), ("a", 1), ("b", 0), ("b", 1)])
        );
        assert_eq!(owned(&groups, &m2), tps(&[("a", 2)]));
        assert_eq!(owned(&groups, &m3), tps(&[("a", 3), ("b", 2)]));
        assert_eq!(groups.snapshot("g").expect("group").generation, 3);
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_releases_it() {
        let groups = Groups::default();
        let counts: PartitionCounts<'_> = &four_and_three;
        let mut m1 = groups.join("g", "c", vec!["b".into()], counts);
        assert_eq!(owned(&groups, &m1).len(), 3);
        m1.changes.borrow_and_update();

        let m2 = groups.join("g", "c", vec!["b".into()], counts);
        assert!(m1.changes.has_changed().expect("open"), "m1 is told");
        // m2 is assigned b-2 but m1 still owns it until m1 looks again.
        assert_eq!(owned(&groups, &m2), vec![]);
        assert_eq!(owned(&groups, &m1), tps(&[("b", 0), ("b", 1)]));
        assert_eq!(owned(&groups, &m2), tps(&[("b", 2)]));

        // m2 leaves: m1 takes everything at once (nobody else owns it).
        groups.leave("g", &m2.member_id, counts);
        assert_eq!(owned(&groups, &m1).len(), 3);
        assert_eq!(groups.sync("g", &m2.member_id, LONG), None);
        groups.leave("g", &m1.member_id, counts);
        assert!(
            groups.snapshot("g").is_none(),
            "an empty group is forgotten"
        );
        assert!(groups.list().is_empty());
    }

    #[test]
    fn a_member_that_does_not_release_loses_the_partition_after_the_timeout() {
        let groups = Groups::default();
        let counts: PartitionCounts<'_> = &|_| 2;
        let mut stuck = groups.join("g", "c", vec!["t".into()], counts);
        assert_eq!(owned(&groups, &stuck).len(), 2);
        stuck.changes.borrow_and_update();
        let newcomer = groups.join("g", "c", vec!["t".into()], counts);
        let waiting = groups.sync("g", &newcomer.member_id, LONG).expect("member");
        assert!(waiting.owned.is_empty());
        assert!(waiting.wait_until.is_some(), "told when to take it anyway");
        stuck.changes.borrow_and_update();
        let taken = groups
            .sync("g", &newcomer.member_id, Duration::ZERO)
            .expect("member");
        assert_eq!(taken.owned, tps(&[("t", 1)]));
        assert_eq!(taken.wait_until, None);
        assert!(
            stuck.changes.has_changed().expect("open"),
            "the old owner is told"
        );
        assert_eq!(owned(&groups, &stuck), tps(&[("t", 0)]));
    }

    #[test]
    fn more_members_than_partitions_leaves_some_idle() {
        let groups = Groups::default();
        let counts: PartitionCounts<'_> = &|_| 1;
        let m1 = groups.join("g", "c", vec!["t".into()], counts);
        let m2 = groups.join("g", "c", vec!["t".into()], counts);
        assert_eq!(owned(&groups, &m1).len(), 1);
        assert_eq!(owned(&groups, &m2).len(), 0);
        let listed = groups.list();
        assert_eq!(listed, [("g".to_owned(), 2)]);
    }
}
