//! Groups coordinated outside the broker, as the broker's admin calls show them.
//!
//! The Kafka door runs Kafka's classic group protocol itself (client-side assignment), so the
//! broker does not know those groups' members. A coordinator like that registers a
//! [`GroupObserver`]; `list_groups` and `describe_group` (and so every door's admin API) then
//! merge its live groups with the broker's own, beside the committed offsets they share. The
//! broker keeps observers weakly: a coordinator that goes away (its listener stopped) simply
//! stops being asked.

use std::fmt;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use crate::broker::Broker;
use crate::types::{GroupListing, MemberDescription};

/// The live part of a group: what its coordinator knows now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGroup {
    /// The coordinator's name for where the group is (`"Stable"`, `"PreparingRebalance"`...).
    pub state: &'static str,
    /// Bumped at every rebalance.
    pub generation: u64,
    pub members: Vec<MemberDescription>,
}

/// A coordinator of groups the broker does not run; answers under its own lock, quickly (the
/// broker calls it from synchronous admin calls).
pub trait GroupObserver: Send + Sync {
    /// Its groups that have live members (or a rebalance in progress), with member counts.
    fn list_groups(&self) -> Vec<GroupListing>;
    /// One of its groups; `None` when it does not coordinate `group`.
    fn describe_group(&self, group: &str) -> Option<LiveGroup>;
}

/// The registered observers.
#[derive(Default)]
pub(crate) struct Observers {
    list: RwLock<Vec<Weak<dyn GroupObserver>>>,
}

impl fmt::Debug for Observers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observers")
            .field("count", &self.list.read().len())
            .finish()
    }
}

impl Observers {
    fn add(&self, observer: Weak<dyn GroupObserver>) {
        let mut list = self.list.write();
        list.retain(|o| o.strong_count() > 0);
        list.push(observer);
    }

    fn live(&self) -> Vec<Arc<dyn GroupObserver>> {
        self.list.read().iter().filter_map(Weak::upgrade).collect()
    }

    /// Every observed group with live members.
    pub(crate) fn list_groups(&self) -> Vec<GroupListing> {
        self.live().iter().flat_map(|o| o.list_groups()).collect()
    }

    /// The first observer's answer for `group`.
    pub(crate) fn describe_group(&self, group: &str) -> Option<LiveGroup> {
        self.live().iter().find_map(|o| o.describe_group(group))
    }
}

impl Broker {
    /// Registers a coordinator whose groups `list_groups` and `describe_group` should show. Held
    /// weakly: dropping the last `Arc` unregisters it.
    pub fn add_group_observer<O: GroupObserver + 'static>(&self, observer: &Arc<O>) {
        let weak: Weak<dyn GroupObserver> = Arc::downgrade(observer) as Weak<dyn GroupObserver>;
        self.inner.groups.observers.add(weak);
    }
}
