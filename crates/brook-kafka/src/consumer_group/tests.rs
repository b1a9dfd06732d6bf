//! The consumer-protocol coordinator's state machine, driven directly (no sockets): joins,
//! revocation before assignment, leaving, static members, fencing, timeouts and the claims that
//! keep a group id to one protocol.

use std::cell::Cell;

use super::*;

const T: TopicId = [7; 16];
const SESSION: Duration = Duration::from_secs(10);
const INTERVAL: Duration = Duration::from_secs(1);
const REBALANCE_MS: i32 = 5_000;

fn coordinator() -> Arc<ConsumerGroups> {
    ConsumerGroups::new(GroupClaims::default(), SESSION, INTERVAL)
}

fn owned(partitions: &[i32]) -> Assignment {
    if partitions.is_empty() {
        return Assignment::new();
    }
    Assignment::from([(T, partitions.iter().copied().collect())])
}

fn parts(a: &Option<Assignment>) -> Option<Vec<i32>> {
    a.as_ref().map(|a| {
        a.get(&T)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    })
}

/// A first heartbeat of `member` subscribing to topic `t`.
fn join(member: &str) -> Heartbeat {
    Heartbeat {
        group: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: REBALANCE_MS,
        subscribed_topics: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        version: 1,
        ..Heartbeat::default()
    }
}

/// A later heartbeat: `owning` what it owns now (`None`: unchanged).
fn beat(member: &str, epoch: i32, owning: Option<&[i32]>) -> Heartbeat {
    Heartbeat {
        group: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: owning.map(owned),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        version: 1,
        ..Heartbeat::default()
    }
}

struct Topics {
    partitions: Cell<u32>,
}

impl Topics {
    fn new(partitions: u32) -> Self {
        Self {
            partitions: Cell::new(partitions),
        }
    }

    fn lookup(&self) -> impl Fn(&str) -> Option<TopicMeta> + '_ {
        |name| {
            (name == "t").then(|| TopicMeta {
                id: T,
                partitions: self.partitions.get(),
            })
        }
    }
}

fn send(c: &ConsumerGroups, topics: &Topics, hb: Heartbeat) -> HeartbeatAnswer {
    c.heartbeat(hb, &topics.lookup())
        .expect("heartbeat answered")
}

fn refused(c: &ConsumerGroups, topics: &Topics, hb: Heartbeat) -> ResponseError {
    c.heartbeat(hb, &topics.lookup())
        .expect_err("refused")
        .error
}

#[tokio::test(start_paused = true)]
async fn a_second_member_gets_partitions_only_after_the_first_revokes_them() {
    let (c, topics) = (coordinator(), Topics::new(4));
    let a = send(&c, &topics, join("a"));
    assert_eq!(
        (a.member_epoch, parts(&a.assignment)),
        (1, Some(vec![0, 1, 2, 3]))
    );
    assert_eq!(a.heartbeat_interval, INTERVAL);
    assert_eq!(c.describe("g").expect("group").state, "Stable");

    // b joins: the group moves to epoch 2, but everything is still a's.
    let b = send(&c, &topics, join("b"));
    assert_eq!((b.member_epoch, parts(&b.assignment)), (2, Some(vec![])));
    let view = c.describe("g").expect("group");
    assert_eq!(
        (view.epoch, view.assignment_epoch, view.state),
        (2, 2, "Reconciling")
    );

    // a learns it must give up two: it keeps epoch 1 and is told only what it keeps.
    let a = send(&c, &topics, beat("a", 1, Some(&[0, 1, 2, 3])));
    assert_eq!(a.member_epoch, 1);
    let kept = parts(&a.assignment).expect("assignment sent");
    assert_eq!(kept.len(), 2);
    // Until a says it no longer owns them, b gets nothing and a stays put.
    let b = send(&c, &topics, beat("b", 2, None));
    assert_eq!((b.member_epoch, parts(&b.assignment)), (2, None));
    let a = send(&c, &topics, beat("a", 1, Some(&[0, 1, 2, 3])));
    assert_eq!(
        (a.member_epoch, parts(&a.assignment)),
        (1, Some(kept.clone()))
    );
    // a has revoked: it moves to epoch 2, and then b receives the other two.
    let a = send(&c, &topics, beat("a", 1, Some(&kept)));
    assert_eq!(
        (a.member_epoch, parts(&a.assignment)),
        (2, Some(kept.clone()))
    );
    let b = send(&c, &topics, beat("b", 2, None));
    let given = parts(&b.assignment).expect("b's partitions");
    assert_eq!(given.len(), 2);
    assert!(given.iter().all(|p| !kept.contains(p)));
    assert_eq!(c.describe("g").expect("group").state, "Stable");
}

#[tokio::test(start_paused = true)]
async fn a_member_that_leaves_hands_its_partitions_to_the_others() {
    let (c, topics) = (coordinator(), Topics::new(2));
    send(&c, &topics, join("a"));
    send(&c, &topics, join("b"));
    let a = send(&c, &topics, beat("a", 1, Some(&[0, 1])));
    let kept = parts(&a.assignment).expect("kept");
    send(&c, &topics, beat("a", 1, Some(&kept)));
    let b = send(&c, &topics, beat("b", 2, None));
    assert_eq!(parts(&b.assignment).map(|p| p.len()), Some(1));
    let left = send(&c, &topics, beat("a", LEAVE_EPOCH, None));
    assert_eq!(left.member_epoch, LEAVE_EPOCH);
    let b = send(&c, &topics, beat("b", 2, None));
    assert_eq!(
        (b.member_epoch, parts(&b.assignment)),
        (3, Some(vec![0, 1]))
    );
    // The last one leaving ends the group (and its claim).
    send(&c, &topics, beat("b", LEAVE_EPOCH, None));
    assert!(c.describe("g").is_none());
    assert_eq!(
        refused(&c, &topics, beat("b", 3, None)),
        ResponseError::UnknownMemberId
    );
}

#[tokio::test(start_paused = true)]
async fn a_static_member_back_under_a_new_id_takes_its_old_place_without_a_rebalance() {
    let (c, topics) = (coordinator(), Topics::new(2));
    let mut first = join("s1");
    first.instance_id = Some("i".into());
    assert_eq!(
        parts(&send(&c, &topics, first.clone()).assignment),
        Some(vec![0, 1])
    );
    // Another member with the same instance id while s1 is active: refused.
    let mut twin = first.clone();
    twin.member_id = "s2".into();
    assert_eq!(
        refused(&c, &topics, twin.clone()),
        ResponseError::UnreleasedInstanceId
    );
    // s1 leaves for now (-2): it keeps its place; s2 (the restarted process) takes it.
    let mut leave = beat("s1", LEAVE_STATIC_EPOCH, None);
    leave.instance_id = Some("i".into());
    assert_eq!(send(&c, &topics, leave).member_epoch, LEAVE_STATIC_EPOCH);
    let epoch = c.describe("g").expect("kept").epoch;
    let back = send(&c, &topics, twin);
    assert_eq!(
        (back.member_epoch, parts(&back.assignment)),
        (epoch, Some(vec![0, 1]))
    );
    let view = c.describe("g").expect("group");
    assert_eq!(view.epoch, epoch, "no rebalance");
    assert_eq!(view.members.len(), 1);
    assert_eq!(view.members[0].member_id, "s2");
    // The old incarnation is gone.
    assert_eq!(
        refused(&c, &topics, beat("s1", epoch, None)),
        ResponseError::UnknownMemberId
    );
    // A static member that never comes back is dropped at its session timeout.
    let mut leave = beat("s2", LEAVE_STATIC_EPOCH, None);
    leave.instance_id = Some("i".into());
    send(&c, &topics, leave);
    tokio::time::sleep(SESSION + Duration::from_millis(10)).await;
    assert!(c.describe("g").is_none());
}

#[tokio::test(start_paused = true)]
async fn epochs_are_checked_and_a_lost_answer_is_forgiven() {
    let (c, topics) = (coordinator(), Topics::new(2));
    send(&c, &topics, join("a"));
    assert_eq!(
        refused(&c, &topics, beat("a", 2, None)),
        ResponseError::FencedMemberEpoch
    );
    assert_eq!(
        refused(&c, &topics, beat("x", 1, None)),
        ResponseError::UnknownMemberId
    );
    // a grows the topic's subscription count: b joins, a moves to epoch 2 after revoking.
    send(&c, &topics, join("b"));
    let a = send(&c, &topics, beat("a", 1, Some(&[0, 1])));
    let kept = parts(&a.assignment).expect("kept");
    let a = send(&c, &topics, beat("a", 1, Some(&kept)));
    assert_eq!(a.member_epoch, 2);
    // The answer was lost: a heartbeats again at epoch 1 owning what it may own. Accepted.
    let a = send(&c, &topics, beat("a", 1, Some(&kept)));
    assert_eq!(a.member_epoch, 2);
    // At epoch 1 claiming partitions it may not own: fenced.
    assert_eq!(
        refused(&c, &topics, beat("a", 1, Some(&[0, 1]))),
        ResponseError::FencedMemberEpoch
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_that_does_not_revoke_in_its_rebalance_timeout_is_fenced() {
    let (c, topics) = (coordinator(), Topics::new(2));
    send(&c, &topics, join("a"));
    send(&c, &topics, join("b"));
    let a = send(&c, &topics, beat("a", 1, Some(&[0, 1])));
    assert_eq!(a.member_epoch, 1);
    // a never acknowledges (keeps heartbeating without saying what it owns).
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        send(&c, &topics, beat("a", 1, None));
        send(&c, &topics, beat("b", 2, None));
    }
    tokio::time::sleep(Duration::from_millis(REBALANCE_MS as u64)).await;
    assert_eq!(
        refused(&c, &topics, beat("a", 1, None)),
        ResponseError::UnknownMemberId
    );
    let b = send(&c, &topics, beat("b", 2, None));
    assert_eq!(
        (b.member_epoch, parts(&b.assignment)),
        (3, Some(vec![0, 1]))
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_member_is_removed_at_its_session_timeout() {
    let (c, topics) = (coordinator(), Topics::new(2));
    send(&c, &topics, join("a"));
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        send(&c, &topics, beat("a", 1, None));
    }
    assert!(c.describe("g").is_some(), "heartbeats keep it");
    tokio::time::sleep(SESSION + Duration::from_millis(10)).await;
    assert!(c.describe("g").is_none());
}

#[tokio::test(start_paused = true)]
async fn new_partitions_of_a_subscribed_topic_are_assigned_at_the_next_heartbeat() {
    let (c, topics) = (coordinator(), Topics::new(1));
    send(&c, &topics, join("a"));
    topics.partitions.set(3);
    let a = send(&c, &topics, beat("a", 1, None));
    assert_eq!(
        (a.member_epoch, parts(&a.assignment)),
        (2, Some(vec![0, 1, 2]))
    );
}

#[tokio::test(start_paused = true)]
async fn assignors_are_chosen_by_name_and_unknown_ones_refused() {
    let (c, topics) = (coordinator(), Topics::new(3));
    let mut bad = join("a");
    bad.assignor = Some("cooperative-sticky".into());
    let refusal = c.heartbeat(bad, &topics.lookup()).unwrap_err();
    assert_eq!(refusal.error, ResponseError::UnsupportedAssignor);
    assert!(
        refusal.message.contains("uniform, range"),
        "{}",
        refusal.message
    );
    assert!(
        c.describe("g").is_none(),
        "a refused first join leaves nothing behind"
    );
    let mut a = join("a");
    a.assignor = Some("range".into());
    send(&c, &topics, a);
    assert_eq!(c.describe("g").expect("group").assignor, "range");
    for (hb, why) in [
        (
            Heartbeat {
                subscribed_topics: None,
                ..join("b")
            },
            "no subscription",
        ),
        (
            Heartbeat {
                member_id: String::new(),
                ..join("b")
            },
            "no member id at v1",
        ),
        (
            Heartbeat {
                subscribed_regex: Some("t.*".into()),
                ..join("b")
            },
            "regex",
        ),
        (
            beat("b", LEAVE_STATIC_EPOCH, None),
            "-2 without an instance id",
        ),
    ] {
        assert_eq!(
            refused(&c, &topics, hb),
            ResponseError::InvalidRequest,
            "{why}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn commits_and_fetches_are_checked_against_member_epochs() {
    let (c, topics) = (coordinator(), Topics::new(1));
    assert_eq!(
        c.check_commit("g", "a", 1, Some(9)),
        None,
        "not a consumer group"
    );
    send(&c, &topics, join("a"));
    assert_eq!(c.check_commit("g", "a", 1, Some(9)), Some(Ok(())));
    assert_eq!(
        c.check_commit("g", "a", 0, Some(9)),
        Some(Err(ResponseError::StaleMemberEpoch))
    );
    assert_eq!(
        c.check_commit("g", "x", 1, Some(9)),
        Some(Err(ResponseError::UnknownMemberId))
    );
    assert_eq!(
        c.check_commit("g", "", -1, Some(9)),
        Some(Err(ResponseError::UnknownMemberId))
    );
    assert_eq!(
        c.check_commit("g", "a", 1, Some(8)),
        Some(Err(ResponseError::UnsupportedVersion))
    );
    assert_eq!(
        c.check_fetch("g", None, -1),
        None,
        "an admin fetch is not checked"
    );
    assert_eq!(c.check_fetch("g", Some("a"), 1), Some(Ok(())));
    assert_eq!(
        c.check_fetch("g", Some("a"), 2),
        Some(Err(ResponseError::StaleMemberEpoch))
    );
    assert_eq!(
        c.check_fetch("g", Some("x"), 1),
        Some(Err(ResponseError::UnknownMemberId))
    );
}

#[tokio::test(start_paused = true)]
async fn a_group_id_is_classic_or_consumer_never_both() {
    let claims = GroupClaims::default();
    let c = ConsumerGroups::new(claims.clone(), SESSION, INTERVAL);
    let topics = Topics::new(1);
    let classic = claims
        .claim("g", GroupProtocol::Kafka)
        .expect("classic member");
    let refusal = c.heartbeat(join("a"), &topics.lookup()).unwrap_err();
    assert_eq!(refusal.error, ResponseError::GroupIdNotFound);
    assert!(
        refusal.message.contains("not a consumer group"),
        "{}",
        refusal.message
    );
    drop(classic);
    send(&c, &topics, join("a"));
    assert!(matches!(
        claims.claim("g", GroupProtocol::Kafka),
        Err(BrokerError::GroupInUse {
            holder: GroupProtocol::KafkaConsumer,
            ..
        })
    ));
    send(&c, &topics, beat("a", LEAVE_EPOCH, None));
    let _classic = claims.claim("g", GroupProtocol::Kafka).expect("free again");
}
