//! The broker's memory of calls: for each correlation id, where its request and its reply sit
//! in the log, and who is waiting for the reply.
//!
//! It holds positions, never values (a reply is read back from the log when asked for), and it
//! is bounded twice: an id is forgotten once it is older than the window, or when more than
//! `index_entries_max` ids are held (oldest first), whichever comes first. Forgetting an id
//! costs its guarantees, not data: a retry with it appends a new request, and its reply can no
//! longer be fetched by id (it is still in the reply topic until retention removes it).
//! Waiters are removed by whoever stops waiting (timeout, cancellation), so nothing stays
//! pending after its caller has gone. An id with a waiter is never forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::id::CorrelationId;
use crate::error::{BrokerError, Result};
use crate::types::ConsumerRecord;

/// What a waiter receives.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// The reply record.
    Reply(Arc<ConsumerRecord>),
    /// No reply will come through this broker: why.
    Aborted(&'static str),
    /// The call's own request could not be appended: the produce's error (to the waiter of
    /// the call that appended it; the others get `Aborted`).
    Failed(BrokerError),
}

/// A waiter's receiving end and its number (to remove it).
pub(crate) type Ticket = (u64, oneshot::Receiver<Delivery>);

/// Where a call's request was appended.
#[derive(Debug, Clone)]
pub(crate) struct RequestAt {
    pub(crate) topic: Arc<str>,
    /// `(partition, offset)`; `None` while the append is in flight.
    pub(crate) position: Option<(u32, u64)>,
}

/// Where a call's reply was appended, in the reply topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplyAt {
    pub(crate) partition: u32,
    pub(crate) offset: u64,
}

#[derive(Debug)]
struct Entry {
    /// Matches the entry's slot in `order` (an id removed and added again gets a new one).
    seq: u64,
    request: Option<RequestAt>,
    reply: Option<ReplyAt>,
}

/// What [`Index::begin_call`] and [`Index::begin_wait`] found.
#[derive(Debug)]
pub(crate) enum Begin {
    /// The reply is already in the log, here.
    Replied(ReplyAt),
    /// Wait on the ticket; `append` says whether this caller must append the request.
    Wait { ticket: Ticket, append: bool },
    /// Nothing is known of the id.
    Unknown,
}

/// What [`Index::reply_found`] made of a reply.
#[derive(Debug)]
pub(crate) enum Found {
    /// The call's reply: wake these waiters.
    First(Vec<oneshot::Sender<Delivery>>),
    /// The very reply already known (reported by its responder, then read from the log).
    Again,
    /// Another reply for a call that has one: the first stands, this one is ignored.
    Duplicate,
}

/// The index itself. Not synchronised: the caller holds it behind a short mutex.
#[derive(Debug)]
pub(crate) struct Index {
    entries: HashMap<CorrelationId, Entry>,
    /// `(born ms, seq, id)` in insertion order: what to forget first.
    order: VecDeque<(i64, u64, CorrelationId)>,
    waiters: HashMap<CorrelationId, Vec<(u64, oneshot::Sender<Delivery>)>>,
    next_seq: u64,
    window_ms: i64,
    entries_max: usize,
}

impl Index {
    pub(crate) fn new(window_ms: u64, entries_max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            waiters: HashMap::new(),
            next_seq: 0,
            window_ms: i64::try_from(window_ms).unwrap_or(i64::MAX),
            entries_max,
        }
    }

    /// Ids held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Callers waiting for a reply.
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.values().map(Vec::len).sum()
    }

    /// A call on `topic` with `id` starts: answered already, or wait (appending the request
    /// unless another call with the same id already did). `InvalidRequest` when the id belongs
    /// to a call on another topic.
    pub(crate) fn begin_call(
        &mut self,
        id: &CorrelationId,
        topic: &str,
        now: i64,
    ) -> Result<Begin> {
        self.forget_old(now);
        match self.entries.get(id) {
            Some(entry) => {
                check_topic(entry, id, topic)?;
                if let Some(reply) = entry.reply {
                    return Ok(Begin::Replied(reply));
                }
                Ok(Begin::Wait {
                    ticket: self.add_waiter(id),
                    append: false,
                })
            }
            None => {
                let request = RequestAt {
                    topic: Arc::from(topic),
                    position: None,
                };
                self.insert(id, now, Some(request), None);
                Ok(Begin::Wait {
                    ticket: self.add_waiter(id),
                    append: true,
                })
            }
        }
    }

    /// Someone asks for the reply of the call with `id` on `topic`, without calling.
    pub(crate) fn begin_wait(&mut self, id: &CorrelationId, topic: &str, now: i64) -> Begin {
        self.forget_old(now);
        let Some(entry) = self.entries.get(id) else {
            return Begin::Unknown;
        };
        if check_topic(entry, id, topic).is_err() {
            return Begin::Unknown;
        }
        match (entry.reply, &entry.request) {
            (Some(reply), _) => Begin::Replied(reply),
            (None, Some(_)) => Begin::Wait {
                ticket: self.add_waiter(id),
                append: false,
            },
            (None, None) => Begin::Unknown,
        }
    }

    /// The request of the call with `id` was appended at `partition`/`offset`.
    pub(crate) fn appended(&mut self, id: &CorrelationId, partition: u32, offset: u64) {
        if let Some(request) = self.entries.get_mut(id).and_then(|e| e.request.as_mut()) {
            request.position = Some((partition, offset));
        }
    }

    /// The request of the call with `id` could not be appended: forget the call, and return
    /// its waiters (the call that appended it and others with the same id), numbered, to be
    /// told.
    pub(crate) fn append_failed(
        &mut self,
        id: &CorrelationId,
    ) -> Vec<(u64, oneshot::Sender<Delivery>)> {
        if self.entries.get(id).is_some_and(|e| e.reply.is_none()) {
            self.entries.remove(id);
        }
        self.waiters.remove(id).unwrap_or_default()
    }

    /// A request with `id` was found in `topic` (scanning the log on open).
    pub(crate) fn request_found(
        &mut self,
        id: &CorrelationId,
        topic: &Arc<str>,
        position: (u32, u64),
        born: i64,
    ) {
        let found = RequestAt {
            topic: Arc::clone(topic),
            position: Some(position),
        };
        match self.entries.get_mut(id) {
            Some(entry) => {
                entry.request.get_or_insert(found);
            }
            None => self.insert(id, born, Some(found), None),
        }
    }

    /// A reply with `id` was appended at `at` (seen by the responder that appended it, or by
    /// the reply topic's reader: the same reply may be reported twice).
    pub(crate) fn reply_found(&mut self, id: &CorrelationId, at: ReplyAt, born: i64) -> Found {
        match self.entries.get_mut(id) {
            Some(entry) => match entry.reply {
                Some(first) if first == at => return Found::Again,
                Some(_) => return Found::Duplicate,
                None => entry.reply = Some(at),
            },
            None => self.insert(id, born, None, Some(at)),
        }
        Found::First(self.take_waiters(id))
    }

    /// Whether the call with `id` has its reply.
    pub(crate) fn has_reply(&self, id: &CorrelationId) -> bool {
        self.entries.get(id).is_some_and(|e| e.reply.is_some())
    }

    /// Stops waiter `waiter` of `id` waiting.
    pub(crate) fn remove_waiter(&mut self, id: &CorrelationId, waiter: u64) {
        if let Some(list) = self.waiters.get_mut(id) {
            list.retain(|(n, _)| *n != waiter);
            if list.is_empty() {
                self.waiters.remove(id);
            }
        }
    }

    /// Every waiter, to be told no reply will come (the reply topic went away).
    pub(crate) fn drain_waiters(&mut self) -> Vec<oneshot::Sender<Delivery>> {
        self.waiters
            .drain()
            .flat_map(|(_, list)| list.into_iter().map(|(_, tx)| tx))
            .collect()
    }

    fn add_waiter(&mut self, id: &CorrelationId) -> Ticket {
        let (tx, rx) = oneshot::channel();
        let n = self.next_seq;
        self.next_seq += 1;
        self.waiters.entry(id.clone()).or_default().push((n, tx));
        (n, rx)
    }

    fn take_waiters(&mut self, id: &CorrelationId) -> Vec<oneshot::Sender<Delivery>> {
        self.waiters
            .remove(id)
            .map(|list| list.into_iter().map(|(_, tx)| tx).collect())
            .unwrap_or_default()
    }

    /// Adds a new id, forgetting the oldest when that makes too many.
    fn insert(
        &mut self,
        id: &CorrelationId,
        born: i64,
        request: Option<RequestAt>,
        reply: Option<ReplyAt>,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((born, seq, id.clone()));
        self.entries.insert(
            id.clone(),
            Entry {
                seq,
                request,
                reply,
            },
        );
        // By count only: the new id is last, so it stays.
        self.forget_old(i64::MIN);
    }

    /// Forgets ids past the window or beyond the count limit, oldest first; an id someone is
    /// waiting on moves to the back instead.
    fn forget_old(&mut self, now: i64) {
        let horizon = now.saturating_sub(self.window_ms);
        let mut kept = 0;
        while let Some(&(born, _, _)) = self.order.front() {
            if self.order.len() <= self.entries_max && born >= horizon {
                break;
            }
            // Only waited-on ids go back, and each at most once per pass.
            if kept > self.waiters.len() {
                break;
            }
            let Some((born, seq, id)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&id).is_none_or(|e| e.seq != seq) {
                continue;
            }
            if self.waiters.contains_key(&id) {
                kept += 1;
                self.order.push_back((born.max(horizon), seq, id));
                continue;
            }
            self.entries.remove(&id);
        }
    }
}

/// `InvalidRequest` when `entry` is a call on another topic than `topic`.
fn check_topic(entry: &Entry, id: &CorrelationId, topic: &str) -> Result<()> {
    match &entry.request {
        Some(request) if &*request.topic != topic => Err(BrokerError::invalid(format!(
            "correlation id {id} belongs to a call on topic {:?}, not {topic:?}",
            request.topic
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> CorrelationId {
        CorrelationId::from_bytes(n.to_be_bytes().to_vec()).expect("id")
    }

    fn appends(begin: Begin) -> bool {
        matches!(begin, Begin::Wait { append: true, .. })
    }

    #[test]
    fn a_second_call_with_an_id_waits_for_the_first_and_gets_the_same_reply() {
        let mut index = Index::new(60_000, 100);
        assert!(appends(index.begin_call(&id(1), "t", 0).expect("first")));
        index.appended(&id(1), 0, 5);
        let Begin::Wait {
            append: false,
            ticket: (_, mut rx),
        } = index.begin_call(&id(1), "t", 1).expect("retry")
        else {
            panic!("a retry waits without appending");
        };
        let at = ReplyAt {
            partition: 0,
            offset: 9,
        };
        let Found::First(waiters) = index.reply_found(&id(1), at, 2) else {
            panic!("the first reply");
        };
        assert_eq!(waiters.len(), 2, "both calls wait");
        assert!(matches!(index.reply_found(&id(1), at, 3), Found::Again));
        let other = ReplyAt {
            partition: 0,
            offset: 10,
        };
        assert!(matches!(
            index.reply_found(&id(1), other, 3),
            Found::Duplicate
        ));
        assert!(matches!(index.begin_call(&id(1), "t", 4), Ok(Begin::Replied(r)) if r == at));
        assert!(
            index.begin_call(&id(1), "other", 4).is_err(),
            "another topic's id"
        );
        for tx in waiters {
            let _ = tx.send(Delivery::Aborted("test"));
        }
        assert!(matches!(rx.try_recv(), Ok(Delivery::Aborted(_))));
        assert_eq!(index.waiting(), 0);
    }

    #[test]
    fn ids_are_forgotten_by_age_and_count_but_not_while_waited_on() {
        let mut index = Index::new(1_000, 3);
        for n in 0..3 {
            index.reply_found(
                &id(n),
                ReplyAt {
                    partition: 0,
                    offset: n.into(),
                },
                0,
            );
        }
        assert_eq!(index.len(), 3);
        let Begin::Wait {
            ticket: (waiter, _rx),
            ..
        } = index.begin_call(&id(9), "t", 10).expect("call")
        else {
            panic!("new call");
        };
        assert_eq!(index.len(), 3, "the oldest went to make room");
        assert!(!index.has_reply(&id(0)));
        let Begin::Wait {
            ticket: (second, _rx2),
            append: false,
        } = index.begin_wait(&id(9), "t", 5_000)
        else {
            panic!("a known call is waited on");
        };
        assert_eq!(
            index.len(),
            1,
            "past the window, only the waited-on id is left"
        );
        assert_eq!(index.waiting(), 2);
        index.remove_waiter(&id(9), waiter);
        assert_eq!(index.waiting(), 1);
        index.remove_waiter(&id(9), second);
        assert_eq!(index.waiting(), 0);
        assert!(matches!(
            index.begin_wait(&id(7), "t", 5_000),
            Begin::Unknown
        ));
    }

    #[test]
    fn a_failed_append_forgets_the_call_and_hands_back_its_waiters() {
        let mut index = Index::new(60_000, 100);
        assert!(appends(index.begin_call(&id(1), "t", 0).expect("call")));
        let _retry = index.begin_call(&id(1), "t", 0).expect("retry");
        assert_eq!(index.append_failed(&id(1)).len(), 2);
        assert_eq!(index.len(), 0);
        assert!(appends(index.begin_call(&id(1), "t", 0).expect("again")));
    }
}
