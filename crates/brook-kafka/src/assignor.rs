//! The server-side assignors of Kafka's consumer group protocol (KIP-848): given each member's
//! subscribed topics and the partitions those topics have, which partitions each member should
//! own (the group's *target assignment*). The coordinator (`consumer_group`) runs them whenever
//! the group epoch moves; moving members from what they own to their target is its job, not
//! this module's.
//!
//! - `uniform` (the default, as in Kafka): every partition of every subscribed topic goes to one
//!   member subscribed to its topic, keeping the counts as even as possible and leaving a
//!   partition with the member that had it in the previous target where balance allows (sticky),
//!   so a rebalance moves few partitions. With identical subscriptions no two members differ by
//!   more than one partition; with different subscriptions the balance is a greedy best effort.
//! - `range`: per topic, the members subscribed to it (in member-id order) each take a
//!   contiguous range, the first `partitions % members` one partition more, as Kafka's range
//!   assignor does.

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// A topic's id (Kafka's topic UUID, which assignments carry instead of names).
pub(crate) type TopicId = [u8; 16];

/// Partitions by topic id.
pub(crate) type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// The assignor names a member may ask for (`group.remote.assignor`), the default first.
pub(crate) const ASSIGNOR_NAMES: &[&str] = &["uniform", "range"];

/// One of the server-side assignors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Assignor {
    Uniform,
    Range,
}

/// A member as the assignor sees it.
#[derive(Debug)]
pub(crate) struct Subscriber<'a> {
    pub member_id: &'a str,
    /// Subscribed topics that exist.
    pub topics: BTreeSet<TopicId>,
    /// What the previous target gave it (for stickiness).
    pub previous: Option<&'a Assignment>,
}

impl Assignor {
    /// The assignor called `name`; `None` for a name brook does not have.
    pub(crate) fn named(name: &str) -> Option<Self> {
        match name {
            "uniform" => Some(Self::Uniform),
            "range" => Some(Self::Range),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::Range => "range",
        }
    }

    /// The target assignment of `members` over `topics` (partition counts by topic id); every
    /// member gets an entry, empty when it gets nothing.
    pub(crate) fn assign(
        self,
        members: &[Subscriber<'_>],
        topics: &BTreeMap<TopicId, u32>,
    ) -> BTreeMap<String, Assignment> {
        let mut result: Vec<Assignment> = vec![Assignment::new(); members.len()];
        match self {
            Self::Uniform => uniform(members, topics, &mut result),
            Self::Range => range(members, topics, &mut result),
        }
        members
            .iter()
            .zip(result)
            .map(|(m, a)| (m.member_id.to_owned(), a))
            .collect()
    }
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

fn uniform(members: &[Subscriber<'_>], topics: &BTreeMap<TopicId, u32>, out: &mut [Assignment]) {
    let subscribed: BTreeSet<TopicId> = members.iter().flat_map(|m| m.topics.clone()).collect();
    let partitions: Vec<(TopicId, i32)> = subscribed
        .iter()
        .filter_map(|t| topics.get(t).map(|n| (*t, *n)))
        .flat_map(|(t, n)| (0..n as i32).map(move |p| (t, p)))
        .collect();
    if members.is_empty() || partitions.is_empty() {
        return;
    }
    let quota = partitions.len() / members.len();
    let mut one_more = partitions.len() % members.len();
    let mut taken: HashSet<(TopicId, i32)> = HashSet::new();
    // A previously held partition that is still valid for the member.
    let still_valid = |m: &Subscriber<'_>, t: &TopicId, p: i32| {
        m.topics.contains(t) && topics.get(t).is_some_and(|n| (0..*n as i32).contains(&p))
    };
    // Sticky passes: first up to the quota, then one more for as many members as the
    // remainder allows.
    for (i, m) in members.iter().enumerate() {
        let Some(previous) = m.previous else { continue };
        for (t, ps) in previous {
            for &p in ps {
                if count(&out[i]) < quota && still_valid(m, t, p) && taken.insert((*t, p)) {
                    out[i].entry(*t).or_default().insert(p);
                }
            }
        }
    }
    for (i, m) in members.iter().enumerate() {
        if one_more == 0 {
            break;
        }
        let Some(previous) = m.previous else { continue };
        let extra = previous.iter().find_map(|(t, ps)| {
            ps.iter()
                .find(|&&p| still_valid(m, t, p) && !taken.contains(&(*t, p)))
                .map(|&p| (*t, p))
        });
        if let Some((t, p)) = extra {
            taken.insert((t, p));
            out[i].entry(t).or_default().insert(p);
            one_more -= 1;
        }
    }
    // The rest, each to the least-loaded member subscribed to its topic.
    for (t, p) in partitions {
        if taken.contains(&(t, p)) {
            continue;
        }
        let least = members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.topics.contains(&t))
            .min_by_key(|(i, _)| (count(&out[*i]), *i))
            .map(|(i, _)| i);
        if let Some(i) = least {
            out[i].entry(t).or_default().insert(p);
        }
    }
}

fn range(members: &[Subscriber<'_>], topics: &BTreeMap<TopicId, u32>, out: &mut [Assignment]) {
    for (t, n) in topics {
        // `members` is in member-id order (the coordinator keeps them sorted).
        let takers: Vec<usize> = (0..members.len())
            .filter(|i| members[*i].topics.contains(t))
            .collect();
        if takers.is_empty() {
            continue;
        }
        let n = *n as usize;
        let (each, extra) = (n / takers.len(), n % takers.len());
        let mut start = 0;
        for (j, i) in takers.into_iter().enumerate() {
            let len = each + usize::from(j < extra);
            if len > 0 {
                out[i]
                    .entry(*t)
                    .or_default()
                    .extend((start..start + len).map(|p| p as i32));
            }
            start += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: TopicId = [1; 16];
    const B: TopicId = [2; 16];

    fn sub<'a>(
        id: &'a str,
        topics: &[TopicId],
        previous: Option<&'a Assignment>,
    ) -> Subscriber<'a> {
        Subscriber {
            member_id: id,
            topics: topics.iter().copied().collect(),
            previous,
        }
    }

    fn parts(a: &Assignment, t: TopicId) -> Vec<i32> {
        a.get(&t)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    #[test]
    fn uniform_spreads_evenly_and_keeps_what_it_can() {
        let topics = BTreeMap::from([(A, 4), (B, 3)]);
        let first = Assignor::Uniform.assign(&[sub("m1", &[A, B], None)], &topics);
        assert_eq!(count(&first["m1"]), 7);
        let second = Assignor::Uniform.assign(
            &[
                sub("m1", &[A, B], Some(&first["m1"])),
                sub("m2", &[A, B], None),
            ],
            &topics,
        );
        let (c1, c2) = (count(&second["m1"]), count(&second["m2"]));
        assert_eq!(c1 + c2, 7);
        assert!(c1.abs_diff(c2) <= 1, "{second:?}");
        // m1 kept only partitions it had: nothing moved that did not have to.
        for (t, ps) in &second["m1"] {
            assert!(ps.is_subset(&first["m1"][t]));
        }
        // Three members, then one leaves: the two left keep all they had.
        let third = Assignor::Uniform.assign(
            &[
                sub("m1", &[A, B], Some(&second["m1"])),
                sub("m2", &[A, B], Some(&second["m2"])),
                sub("m3", &[A, B], None),
            ],
            &topics,
        );
        let counts: Vec<usize> = third.values().map(count).collect();
        assert!(counts.iter().all(|c| (2..=3).contains(c)), "{counts:?}");
        let fourth = Assignor::Uniform.assign(
            &[
                sub("m1", &[A, B], Some(&third["m1"])),
                sub("m3", &[A, B], Some(&third["m3"])),
            ],
            &topics,
        );
        for id in ["m1", "m3"] {
            for (t, ps) in &third[id] {
                assert!(ps.is_subset(&fourth[id][t]), "{id} lost a partition");
            }
        }
        assert_eq!(count(&fourth["m1"]) + count(&fourth["m3"]), 7);
    }

    #[test]
    fn uniform_gives_a_topic_only_to_its_subscribers() {
        let topics = BTreeMap::from([(A, 2), (B, 2)]);
        let out =
            Assignor::Uniform.assign(&[sub("m1", &[A], None), sub("m2", &[B], None)], &topics);
        assert_eq!(parts(&out["m1"], A), vec![0, 1]);
        assert_eq!(parts(&out["m2"], B), vec![0, 1]);
        assert!(parts(&out["m1"], B).is_empty());
    }

    #[test]
    fn range_splits_each_topic_in_contiguous_ranges() {
        let topics = BTreeMap::from([(A, 5), (B, 1)]);
        let out =
            Assignor::Range.assign(&[sub("a", &[A, B], None), sub("b", &[A, B], None)], &topics);
        assert_eq!(parts(&out["a"], A), vec![0, 1, 2]);
        assert_eq!(parts(&out["b"], A), vec![3, 4]);
        assert_eq!(parts(&out["a"], B), vec![0]);
        assert!(parts(&out["b"], B).is_empty());
    }

    #[test]
    fn names() {
        for name in ASSIGNOR_NAMES {
            assert_eq!(Assignor::named(name).map(Assignor::name), Some(*name));
        }
        assert_eq!(Assignor::named("cooperative-sticky"), None);
    }
}
