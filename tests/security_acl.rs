//! ACLs on the Kafka door, end to end (docs/security.md, "Authorization"): `brook::server`
//! with `auth` on and `User:admin` a superuser; users log in with SASL PLAIN. The superuser
//! manages ACLs with librdkafka's own admin calls (CreateAcls, DescribeAcls, DeleteAcls,
//! through rdkafka-sys: the rdkafka crate wraps none of them) and with kafka-python's admin
//! client; then, for each resource type, one principal an ACL allows succeeds and one it does
//! not is refused with Kafka's error for that type (TOPIC_ / GROUP_ / CLUSTER_ /
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED). A user with no ACL sees and may do nothing (deny by
//! default); ACL changes take effect on the next request and survive a restart.

// librdkafka's ACL admin calls are reached through its C API (rdkafka-sys): the rdkafka crate
// wraps none of them. Every unsafe block below is one such call on a handle the test owns.
#![allow(unsafe_code)]

mod kafka_support;
mod security_support;

use std::ffi::{CStr, CString};
use std::path::Path;
use std::time::Duration;

use brook::server::{DoorKind, ServeConfig, Server};
use kafka_support::{python, PATIENCE};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, TopicPartitionList};

const USERS: [&str; 4] = ["admin", "alice", "bob", "carol"];

/// Creates the users offline, as `brook user create --data-dir` does; each user's password is
/// `<name>-pw`.
async fn create_users(data_dir: &Path) {
    security_support::create_users(data_dir, &USERS).await;
}

/// A server on `data` with authentication on and `User:admin` a superuser.
async fn start(data: &Path) -> Server {
    start_with(data, |_| {}).await
}

/// [`start`] with `change` made to its settings.
async fn start_with(data: &Path, change: impl FnOnce(&mut ServeConfig)) -> Server {
    let mut config = security_support::auth_config(data);
    change(&mut config);
    Server::start(&config).await.expect("server starts")
}

/// librdkafka settings for `user` over SASL_PLAINTEXT PLAIN.
fn as_user(bootstrap: &str, user: &str) -> ClientConfig {
    let mut config = kafka_support::client_config(bootstrap);
    config
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", format!("{user}-pw"));
    config
}

/// One ACL as librdkafka takes it: (resource type, name, pattern, principal, operation,
/// permission), host `*`.
type Rule = (
    rd::rd_kafka_ResourceType_t,
    &'static str,
    rd::rd_kafka_ResourcePatternType_t,
    &'static str,
    rd::rd_kafka_AclOperation_t,
    rd::rd_kafka_AclPermissionType_t,
);

use rd::rd_kafka_AclOperation_t as Op;
use rd::rd_kafka_AclPermissionType_t as Perm;
use rd::rd_kafka_ResourcePatternType_t as Pat;
use rd::rd_kafka_ResourceType_t as Res;

/// librdkafka's admin calls for ACLs, over a client's handle. Each call waits for its result
/// event on a queue of its own (blocking: run it off the async workers).
struct AclAdmin {
    admin: AdminClient<DefaultClientContext>,
}

/// A raw pointer that crosses into a blocking task.
struct Ptr<T>(*mut T);
// SAFETY: the pointer is only used by the one blocking task it is moved into; librdkafka's
// event objects may be used from any thread.
unsafe impl<T> Send for Ptr<T> {}

impl AclAdmin {
    fn rk(&self) -> *mut rd::rd_kafka_t {
        self.admin.inner().native_ptr()
    }

    /// Runs `call` with a fresh queue and returns the event it produced.
    fn await_event(
        &self,
        call: impl FnOnce(*mut rd::rd_kafka_t, *mut rd::rd_kafka_queue_t),
    ) -> Ptr<rd::rd_kafka_event_t> {
        // SAFETY: librdkafka C calls on handles this test created and still owns (the client's
        // rd_kafka_t lives as long as `self.admin`); every returned pointer is read before the
        // event that owns it is destroyed, and each object is destroyed once.
        unsafe {
            let queue = rd::rd_kafka_queue_new(self.rk());
            call(self.rk(), queue);
            let event = rd::rd_kafka_queue_poll(queue, 20_000);
            rd::rd_kafka_queue_destroy(queue);
            assert!(!event.is_null(), "no admin result within 20 s");
            let err = rd::rd_kafka_event_error(event);
            assert_eq!(
                err,
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
                "admin request failed: {}",
                CStr::from_ptr(rd::rd_kafka_event_error_string(event)).to_string_lossy()
            );
            Ptr(event)
        }
    }

    /// CreateAcls: each rule's error name, or `None`.
    fn create(&self, rules: &[Rule]) -> Vec<Option<String>> {
        let strings: Vec<(CString, CString)> = rules.iter().map(|r| (c(r.1), c(r.3))).collect();
        let star = c("*");
        let mut bindings: Vec<*mut rd::rd_kafka_AclBinding_t> = rules
            .iter()
            .zip(&strings)
            // SAFETY: librdkafka C calls on handles this test created and still owns (the client's
            // rd_kafka_t lives as long as `self.admin`); every returned pointer is read before the
            // event that owns it is destroyed, and each object is destroyed once.
            .map(|(r, (name, principal))| unsafe {
                let mut errstr = [0 as std::os::raw::c_char; 256];
                let binding = rd::rd_kafka_AclBinding_new(
                    r.0,
                    name.as_ptr(),
                    r.2,
                    principal.as_ptr(),
                    star.as_ptr(),
                    r.4,
                    r.5,
                    errstr.as_mut_ptr(),
                    errstr.len(),
                );
                assert!(!binding.is_null(), "{:?}", CStr::from_ptr(errstr.as_ptr()));
                binding
            })
            .collect();
        // SAFETY: librdkafka C calls on handles this test created and still owns (the client's
        // rd_kafka_t lives as long as `self.admin`); every returned pointer is read before the
        // event that owns it is destroyed, and each object is destroyed once.
        let event = self.await_event(|rk, queue| unsafe {
            rd::rd_kafka_CreateAcls(
                rk,
                bindings.as_mut_ptr(),
                bindings.len(),
                std::ptr::null(),
                queue,
            )
        });
        // SAFETY: librdkafka C calls on handles this test created and still owns (the client's
        // rd_kafka_t lives as long as `self.admin`); every returned pointer is read before the
        // event that owns it is destroyed, and each object is destroyed once.
        unsafe {
            let result = rd::rd_kafka_event_CreateAcls_result(event.0);
            let mut n = 0;
            let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut n);
            let errors = (0..n)
                .map(|i| error_name(rd::rd_kafka_acl_result_error(*results.add(i))))
                .collect();
            rd::rd_kafka_event_destroy(event.0);
            for b in bindings {
                rd::rd_kafka_AclBinding_destroy(b);
            }
            errors
        }
    }

    /// A filter for every ACL of `principal` (all of them: `None`).
    fn filter(&self, principal: Option<&str>) -> *mut rd::rd_kafka_AclBindingFilter_t {
        let principal = principal.map(c);
        // SAFETY: librdkafka C calls on handles this test created and still owns (the client's
        // rd_kafka_t lives as long as `self.admin`); every returned pointer is read before the
        // event that owns it is destroyed, and each object is destroyed once.
        unsafe {
            let mut errstr = [0 as std::os::raw::c_char; 256];
            let filter = rd::rd_kafka_AclBindingFilter_new(
                Res::RD_KAFKA_RESOURCE_ANY,
                std::ptr::null(),
                Pat::RD_KAFKA_RESOURCE_PATTERN_ANY,
                principal.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                std::ptr::null(),
                Op::RD_KAFKA_ACL_OPERATION_ANY,
                Perm::RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            assert!(!filter.is_null(), "{:?}", CStr::from_ptr(errstr.as_ptr()));
            filter
        }
    }

    /// DescribeAcls of every rule: `(principal, resource name, operation)` each, or the
    /// request's error name.
    fn describe(&self) -> Result<Vec<(String, String, Op)>, String> {
        let filter = self.filter(None);
        // SAFETY: librdkafka C calls on handles this test created and still owns (the client's
        // rd_kafka_t lives as long as `self.admin`); every returned pointer is read before the
        // event that owns it is destroyed, and each object is destroyed once.
        unsafe {
            let queue = rd::rd_kafka_queue_new(self.rk());
            rd::rd_kafka_DescribeAcls(self.rk(), filter, std::ptr::null(), queue);
            let event = rd::rd_kafka_queue_poll(queue, 20_000);
            rd::rd_kafka_queue_destroy(queue);
            rd::rd_kafka_AclBinding_destroy(filter);
            assert!(!event.is_null(), "no DescribeAcls result within 20 s");
            let err = rd::rd_kafka_event_error(event);
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                rd::rd_kafka_event_destroy(event);
                return Err(format!("{err:?}"));
            }
            let result = rd::rd_kafka_event_DescribeAcls_result(event);
            let mut n = 0;
            let acls = rd::rd_kafka_DescribeAcls_result_acls(result, &mut n);
            let found = (0..n).map(|i| binding(*acls.add(i))).collect();
            rd::rd_kafka_event_destroy(event);
            Ok(found)
        }
    }

    /// DeleteAcls of every rule of `principal`: the rules removed.
    fn delete(&self, principal: &str) -> Vec<(String, String, Op)> {
        let mut filters = [self.filter(Some(principal))];
        // SAFETY: librdkafka C calls on handles this test created and still owns (the client's
        // rd_kafka_t lives as long as `self.admin`); every returned pointer is read before the
        // event that owns it is destroyed, and each object is destroyed once.
        let event = self.await_event(|rk, queue| unsafe {
            rd::rd_kafka_DeleteAcls(rk, filters.as_mut_ptr(), 1, std::ptr::null(), queue)
        });
        // SAFETY: librdkafka C calls on handles this test created and still owns (the client's
        // rd_kafka_t lives as long as `self.admin`); every returned pointer is read before the
        // event that owns it is destroyed, and each object is destroyed once.
        unsafe {
            let result = rd::rd_kafka_event_DeleteAcls_result(event.0);
            let mut n = 0;
            let responses = rd::rd_kafka_DeleteAcls_result_responses(result, &mut n);
            assert_eq!(n, 1);
            let response = *responses;
            assert_eq!(
                error_name(rd::rd_kafka_DeleteAcls_result_response_error(response)),
                None
            );
            let mut m = 0;
            let acls = rd::rd_kafka_DeleteAcls_result_response_matching_acls(response, &mut m);
            let removed = (0..m).map(|i| binding(*acls.add(i))).collect();
            rd::rd_kafka_event_destroy(event.0);
            rd::rd_kafka_AclBinding_destroy(filters[0]);
            removed
        }
    }
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

unsafe fn error_name(error: *const rd::rd_kafka_error_t) -> Option<String> {
    (!error.is_null()).then(|| {
        CStr::from_ptr(rd::rd_kafka_error_name(error))
            .to_string_lossy()
            .into_owned()
    })
}

unsafe fn binding(acl: *const rd::rd_kafka_AclBinding_t) -> (String, String, Op) {
    (
        CStr::from_ptr(rd::rd_kafka_AclBinding_principal(acl))
            .to_string_lossy()
            .into_owned(),
        CStr::from_ptr(rd::rd_kafka_AclBinding_name(acl))
            .to_string_lossy()
            .into_owned(),
        rd::rd_kafka_AclBinding_operation(acl),
    )
}

/// Runs a blocking librdkafka call off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// The code of a librdkafka error.
fn code(err: &KafkaError) -> Option<RDKafkaErrorCode> {
    err.rdkafka_error_code()
}

/// Produces one record to `topic` as `user`: the broker's answer.
async fn produce(bootstrap: &str, user: &str, topic: &str) -> Result<(), RDKafkaErrorCode> {
    let producer: FutureProducer = as_user(bootstrap, user)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    producer
        .send(FutureRecord::to(topic).key("k").payload("v"), PATIENCE)
        .await
        .map(|_| ())
        .map_err(|(e, _)| code(&e).unwrap_or(RDKafkaErrorCode::Unknown))
}

/// The topics Metadata shows `user`.
async fn visible_topics(bootstrap: &str, user: &str) -> Vec<String> {
    let consumer: BaseConsumer = as_user(bootstrap, user).create().expect("client");
    blocking(move || {
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        let mut names: Vec<String> = metadata
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .collect();
        names.sort();
        names
    })
    .await
}

/// Commits offset 1 of `topic`/0 in `group` as `user` (OffsetCommit), then reads it back
/// (OffsetFetch): the first refusal.
async fn committed(
    bootstrap: &str,
    user: &str,
    group: &str,
    topic: &str,
) -> Result<(), RDKafkaErrorCode> {
    let consumer: BaseConsumer = as_user(bootstrap, user)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(1))
        .expect("offset");
    let mut asked = TopicPartitionList::new();
    asked.add_partition(topic, 0);
    let failed = |e: KafkaError| code(&e).unwrap_or(RDKafkaErrorCode::Unknown);
    blocking(move || {
        consumer
            .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
            .map_err(failed)?;
        let list = consumer
            .committed_offsets(asked, Duration::from_secs(10))
            .map_err(failed)?;
        let element = list.elements().into_iter().next().expect("listed");
        assert_eq!(element.offset(), rdkafka::Offset::Offset(1));
        Ok(())
    })
    .await
}

/// InitProducerId for `transactional_id` as `user`.
async fn init_transactions(
    bootstrap: &str,
    user: &str,
    transactional_id: &str,
) -> Result<(), RDKafkaErrorCode> {
    let producer: FutureProducer = as_user(bootstrap, user)
        .set("transactional.id", transactional_id)
        .create()
        .expect("transactional producer");
    blocking(move || {
        producer
            .init_transactions(Duration::from_secs(10))
            .map_err(|e| code(&e).unwrap_or(RDKafkaErrorCode::Unknown))
    })
    .await
}

/// Creates `topic` as `user` with the admin client: the topic's result.
async fn create_topic(bootstrap: &str, user: &str, topic: &str) -> Result<(), RDKafkaErrorCode> {
    let admin: AdminClient<DefaultClientContext> =
        as_user(bootstrap, user).create().expect("admin");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(PATIENCE)),
        )
        .await
        .expect("CreateTopics answered");
    results[0].clone().map(|_| ()).map_err(|(_, code)| code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_manages_acls_and_each_resource_type_allows_one_principal_and_refuses_another() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    create_users(&data).await;
    let server = start(&data).await;
    let bootstrap = server.addr(DoorKind::Kafka).expect("on").to_string();
    let b = bootstrap.as_str();

    // The superuser needs no ACL: it creates the topics.
    for topic in ["orders", "payments"] {
        create_topic(b, "admin", topic)
            .await
            .expect("superuser creates");
    }
    produce(b, "admin", "payments")
        .await
        .expect("superuser writes anywhere");

    // Deny by default: without an ACL a user sees no topic and may write none.
    assert_eq!(visible_topics(b, "carol").await, Vec::<String>::new());
    assert_eq!(
        produce(b, "carol", "orders").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );

    // The superuser grants, with librdkafka's CreateAcls.
    let admin = AclAdmin {
        admin: as_user(b, "admin").create().expect("admin client"),
    };
    let allow = Perm::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW;
    let literal = Pat::RD_KAFKA_RESOURCE_PATTERN_LITERAL;
    let rules: Vec<Rule> = vec![
        (
            Res::RD_KAFKA_RESOURCE_TOPIC,
            "orders",
            literal,
            "User:alice",
            Op::RD_KAFKA_ACL_OPERATION_WRITE,
            allow,
        ),
        (
            Res::RD_KAFKA_RESOURCE_TOPIC,
            "ord",
            Pat::RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
            "User:alice",
            Op::RD_KAFKA_ACL_OPERATION_READ,
            allow,
        ),
        (
            Res::RD_KAFKA_RESOURCE_TOPIC,
            "orders",
            literal,
            "User:bob",
            Op::RD_KAFKA_ACL_OPERATION_READ,
            allow,
        ),
        (
            Res::RD_KAFKA_RESOURCE_GROUP,
            "billing",
            literal,
            "User:alice",
            Op::RD_KAFKA_ACL_OPERATION_READ,
            allow,
        ),
        (
            Res::RD_KAFKA_RESOURCE_TRANSACTIONAL_ID,
            "tx-alice",
            literal,
            "User:alice",
            Op::RD_KAFKA_ACL_OPERATION_WRITE,
            allow,
        ),
        (
            Res::RD_KAFKA_RESOURCE_BROKER,
            "kafka-cluster",
            literal,
            "User:alice",
            Op::RD_KAFKA_ACL_OPERATION_CREATE,
            allow,
        ),
        // Deny wins over the prefixed allow.
        (
            Res::RD_KAFKA_RESOURCE_TOPIC,
            "orders",
            literal,
            "User:bob",
            Op::RD_KAFKA_ACL_OPERATION_WRITE,
            Perm::RD_KAFKA_ACL_PERMISSION_TYPE_DENY,
        ),
    ];
    let rules_for_admin = rules.clone();
    let (admin, created) = blocking(move || {
        let created = admin.create(&rules_for_admin);
        (admin, created)
    })
    .await;
    assert_eq!(created, vec![None; rules.len()], "every ACL created");
    let (admin, described) = blocking(move || {
        let described = admin.describe();
        (admin, described)
    })
    .await;
    let described = described.expect("the superuser describes ACLs");
    assert_eq!(described.len(), rules.len(), "{described:?}");
    assert!(described.contains(&(
        "User:alice".into(),
        "tx-alice".into(),
        Op::RD_KAFKA_ACL_OPERATION_WRITE
    )));

    // Topic: alice writes, bob is denied (an explicit DENY), carol still nothing.
    produce(b, "alice", "orders")
        .await
        .expect("alice may write");
    assert_eq!(
        produce(b, "bob", "orders").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // Describe is implied by READ/WRITE: Metadata lists what each may describe.
    assert_eq!(visible_topics(b, "alice").await, vec!["orders"]);
    assert_eq!(visible_topics(b, "bob").await, vec!["orders"]);
    assert_eq!(visible_topics(b, "admin").await, vec!["orders", "payments"]);

    // Group: alice commits and reads the group's offsets, bob (who may read the topic) may not.
    assert_eq!(
        committed(b, "alice", "billing", "orders").await,
        Ok(()),
        "alice may use the group"
    );
    // FindCoordinator already refuses bob the group (Describe): librdkafka then reports
    // either the refusal or that it never got a coordinator.
    let bob = committed(b, "bob", "billing", "orders").await;
    assert!(
        matches!(
            bob,
            Err(RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::WaitingForCoordinator)
        ),
        "{bob:?}"
    );

    // Transactional id: alice's, not bob's.
    init_transactions(b, "alice", "tx-alice")
        .await
        .expect("alice may use tx-alice");
    assert_eq!(
        init_transactions(b, "bob", "tx-alice").await,
        Err(RDKafkaErrorCode::TransactionalIdAuthorizationFailed)
    );

    // Cluster: alice may create topics, bob may not (Kafka answers it per topic).
    create_topic(b, "alice", "alice-new")
        .await
        .expect("alice creates");
    assert_eq!(
        create_topic(b, "bob", "bob-new").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // ... and only the superuser may read or change ACLs.
    let bob_admin = AclAdmin {
        admin: as_user(b, "bob").create().expect("bob's admin client"),
    };
    let (bob_admin, bob_described) = blocking(move || {
        let d = bob_admin.describe();
        (bob_admin, d)
    })
    .await;
    // librdkafka 2.12 reads DescribeAcls' error code but never reports it (rdkafka_admin.c,
    // DescribeAclsResponse_parse): bob sees an empty list, not the rules. The door does send
    // CLUSTER_AUTHORIZATION_FAILED (a_refused_describe_acls_carries_..., off the wire), and
    // kafka-python shows it (security_acl.py, `bob_describe_acls`).
    assert_eq!(bob_described, Ok(Vec::new()), "nothing is shown to bob");
    let bob_created = blocking(move || bob_admin.create(&[rules[0]])).await;
    assert_eq!(
        bob_created,
        vec![Some("CLUSTER_AUTHORIZATION_FAILED".to_owned())]
    );

    // DeleteAcls takes effect at once: alice's rules go, alice is refused.
    let (admin, removed) = blocking(move || {
        let removed = admin.delete("User:alice");
        (admin, removed)
    })
    .await;
    assert_eq!(removed.len(), 5, "{removed:?}");
    assert_eq!(
        produce(b, "alice", "orders").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    drop(admin);
    server.stop().await.expect("stops");

    // The ACLs are in the data directory: bob's survive a restart.
    let server = start(&data).await;
    let bootstrap = server.addr(DoorKind::Kafka).expect("on").to_string();
    assert_eq!(visible_topics(&bootstrap, "bob").await, vec!["orders"]);
    assert_eq!(
        produce(&bootstrap, "bob", "orders").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    let acls = server
        .auth()
        .expect("auth on")
        .acls(&brook_broker::auth::AclFilter::default());
    assert_eq!(acls.len(), 2, "bob's READ and DENY WRITE: {acls:?}");
    server.stop().await.expect("stops");
}

/// A refused DescribeAcls carries its error at every version brook serves (1-3), as Kafka
/// answers it (`DescribeAclsRequest.getErrorResponse`): the top-level error code
/// CLUSTER_AUTHORIZATION_FAILED, the door's message, no resources. Read off the wire here,
/// because librdkafka 2.12 (which sends v1) parses that code and then drops it: its
/// `rd_kafka_DescribeAclsResponse_parse` reports success with an empty list (the librdkafka
/// test above); kafka-python (v3) raises it (the kafka-python test below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_describe_acls_carries_cluster_authorization_failed_at_every_version() {
    use brook_broker::auth::{AclBinding, Operation, PatternType, Permission, ResourceType};
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::{ApiKey, DescribeAclsRequest, DescribeAclsResponse};
    use kafka_support::raw::Raw;

    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    create_users(&data).await;
    let server = start(&data).await;
    let rule = AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: "orders".into(),
        pattern_type: PatternType::Literal,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: Operation::Read,
        permission: Permission::Allow,
    };
    let auth = server.auth().expect("on").clone();
    auth.create_acls(vec![rule]).await.expect("ACL");
    // Every rule: resource type, pattern type, operation and permission "any" (code 1), no
    // name, principal or host filter (null).
    let every = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let addr = server.addr(DoorKind::Kafka).expect("on");
    for version in 1..=3 {
        let mut bob = Raw::connect_to(addr).await;
        assert_eq!(bob.sasl_plain("bob", "bob-pw").await.error_code, 0);
        let refused: DescribeAclsResponse = bob.call(ApiKey::DescribeAcls, version, &every).await;
        assert_eq!(
            refused.error_code,
            ResponseError::ClusterAuthorizationFailed.code(),
            "v{version}"
        );
        assert_eq!(
            refused.error_message.as_deref(),
            Some("not authorized: ACLs need Describe on the cluster"),
            "v{version}"
        );
        assert!(refused.resources.is_empty(), "v{version}");

        let mut admin = Raw::connect_to(addr).await;
        assert_eq!(admin.sasl_plain("admin", "admin-pw").await.error_code, 0);
        let shown: DescribeAclsResponse = admin.call(ApiKey::DescribeAcls, version, &every).await;
        assert_eq!(shown.error_code, 0, "v{version}");
        let names: Vec<&str> = shown.resources.iter().map(|r| &*r.resource_name).collect();
        assert_eq!(names, ["orders"], "v{version}");
    }
    drop(auth);
    server.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_manages_acls_with_its_admin_client_and_is_refused_without_one() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    create_users(&data).await;
    let server = start(&data).await;
    let bootstrap = server.addr(DoorKind::Kafka).expect("on").to_string();
    create_topic(&bootstrap, "admin", "py-orders")
        .await
        .expect("superuser creates");
    let output = python::run_script("security_acl.py", &bootstrap, &[]);
    let lines = python::json_lines(&output);
    let step = |name: &str| {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {lines:?}"))
            .clone()
    };
    assert_eq!(
        step("denied_before")["error"],
        "TopicAuthorizationFailedError"
    );
    assert_eq!(step("created")["errors"], serde_json::json!([]));
    assert_eq!(step("described")["count"], 2);
    assert_eq!(step("produced")["ok"], true);
    // kafka-python (DescribeAcls v3) shows the top-level error code and the door's message.
    let bob_described = step("bob_describe_acls");
    assert_eq!(bob_described["error"], "ClusterAuthorizationFailedError");
    let message = bob_described["message"].as_str().expect("a message");
    assert!(
        message.contains("ACLs need Describe on the cluster"),
        "{message}"
    );
    assert_eq!(
        step("bob_create_acls")["error"],
        "ClusterAuthorizationFailedError"
    );
    assert_eq!(step("deleted")["count"], 2);
    assert_eq!(
        step("denied_after")["error"],
        "TopicAuthorizationFailedError"
    );
    assert!(server
        .auth()
        .expect("on")
        .acls(&Default::default())
        .is_empty());
    server.stop().await.expect("stops");
}

/// `authorization: Basic` for `user` (password `<user>-pw`).
fn basic(user: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{user}-pw"))
    )
}

/// The code of a refused gRPC call.
fn denied<T>(answer: Result<T, tonic::Status>) -> Result<(), tonic::Code> {
    answer.map(drop).map_err(|s| s.code())
}

/// A gRPC request as `user`.
fn grpc_as<T>(user: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", basic(user).parse().expect("ASCII"));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_authorize_each_call_with_the_same_acls() {
    use brook_broker::auth::{AclBinding, Operation, PatternType, Permission, ResourceType};
    use brook_proto::v1 as pb;
    use brook_proto::v1::brook_client::BrookClient;
    use tonic::Code;

    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    create_users(&data).await;
    let server = start(&data).await;
    let auth = server.auth().expect("on").clone();
    for topic in ["orders", "payments"] {
        server
            .broker()
            .expect("a local broker")
            .create_topic(brook_broker::NewTopic::new(topic, 1))
            .await
            .expect("topic");
    }
    let rule = |kind, name: &str, principal: &str, operation| AclBinding {
        resource_type: kind,
        resource_name: name.into(),
        pattern_type: PatternType::Literal,
        principal: principal.into(),
        host: "*".into(),
        operation,
        permission: Permission::Allow,
    };
    auth.create_acls(vec![
        rule(
            ResourceType::Topic,
            "orders",
            "User:alice",
            Operation::Write,
        ),
        rule(
            ResourceType::Group,
            "billing",
            "User:alice",
            Operation::Read,
        ),
        rule(ResourceType::Topic, "orders", "User:bob", Operation::Read),
    ])
    .await
    .expect("ACLs");

    // gRPC: PERMISSION_DENIED for what no ACL allows; listings filtered.
    let url = format!("http://{}", server.addr(DoorKind::Grpc).expect("on"));
    let mut grpc = BrookClient::connect(url).await.expect("gRPC connects");
    let produce = |user: &str, topic: &str| {
        grpc_as(
            user,
            pb::ProduceRequest {
                topic: topic.into(),
                records: vec![pb::ProducerRecord {
                    value: Some(bytes::Bytes::from_static(b"v")),
                    ..Default::default()
                }],
                raw_batch: None,
            },
        )
    };
    grpc.produce(produce("alice", "orders"))
        .await
        .expect("alice writes orders");
    assert_eq!(
        denied(grpc.produce(produce("bob", "orders")).await),
        Err(Code::PermissionDenied),
        "bob may only read"
    );
    assert_eq!(
        denied(grpc.produce(produce("alice", "payments")).await),
        Err(Code::PermissionDenied)
    );
    let fetch = |user: &str| {
        grpc_as(
            user,
            pb::FetchRequest {
                topic: "orders".into(),
                ..Default::default()
            },
        )
    };
    grpc.fetch(fetch("bob")).await.expect("bob reads orders");
    assert_eq!(
        denied(grpc.fetch(fetch("carol")).await),
        Err(Code::PermissionDenied),
        "deny by default"
    );
    let listed = grpc
        .list_topics(grpc_as("bob", pb::ListTopicsRequest {}))
        .await
        .expect("list")
        .into_inner()
        .topics;
    assert_eq!(
        listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["orders"]
    );
    let delete = |user: &str| {
        grpc_as(
            user,
            pb::DeleteTopicRequest {
                topic: "payments".into(),
            },
        )
    };
    assert_eq!(
        denied(grpc.delete_topic(delete("bob")).await),
        Err(Code::PermissionDenied)
    );
    let describe_group = |user: &str| {
        grpc_as(
            user,
            pb::DescribeGroupRequest {
                group_id: "billing".into(),
            },
        )
    };
    assert_ne!(
        denied(grpc.describe_group(describe_group("alice")).await),
        Err(Code::PermissionDenied),
        "READ implies DESCRIBE"
    );
    assert_eq!(
        denied(grpc.describe_group(describe_group("bob")).await),
        Err(Code::PermissionDenied)
    );
    let create = |user: &str| {
        grpc_as(
            user,
            pb::CreateTopicRequest {
                topic: "new-one".into(),
                ..Default::default()
            },
        )
    };
    assert_eq!(
        denied(grpc.create_topic(create("alice")).await),
        Err(Code::PermissionDenied)
    );
    grpc.create_topic(create("admin"))
        .await
        .expect("the superuser creates");

    // HTTP: 403 `forbidden`, the same rules.
    let base = format!("http://{}", server.addr(DoorKind::Http).expect("on"));
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, user: &str| {
        http.request(method, format!("{base}{path}"))
            .header("authorization", basic(user))
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    let records = serde_json::json!({"records": [{"value": "v"}]});
    assert_eq!(
        status(
            send(reqwest::Method::POST, "/v1/topics/orders/records", "alice")
                .json(&records)
                .send()
                .await
                .expect("send")
        ),
        200
    );
    let refused = send(reqwest::Method::POST, "/v1/topics/orders/records", "bob")
        .json(&records)
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status().as_u16(), 403);
    let body: serde_json::Value = refused.json().await.expect("JSON");
    assert_eq!(body["error_code"], "forbidden", "{body}");
    for (method, path, user, expected) in [
        (
            reqwest::Method::GET,
            "/v1/topics/orders/partitions/0/records?offset=0&max_wait_ms=0",
            "bob",
            200,
        ),
        (
            reqwest::Method::GET,
            "/v1/topics/orders/partitions/0/records?offset=0&max_wait_ms=0",
            "carol",
            403,
        ),
        (reqwest::Method::GET, "/v1/topics/payments", "bob", 403),
        (reqwest::Method::DELETE, "/v1/topics/payments", "alice", 403),
        (reqwest::Method::GET, "/v1/groups/billing", "bob", 403),
        (reqwest::Method::GET, "/metrics", "bob", 403),
        (reqwest::Method::GET, "/metrics", "admin", 200),
        (reqwest::Method::GET, "/healthz", "carol", 200),
    ] {
        let got = status(send(method.clone(), path, user).send().await.expect("send"));
        assert_eq!(got, expected, "{method} {path} as {user}");
    }
    let listed: serde_json::Value = send(reqwest::Method::GET, "/v1/topics", "alice")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    let names: Vec<&str> = listed["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, vec!["orders"]);
    // The ACL admin calls: gRPC ListAcls / CreateAcls and HTTP /v1/acls, for the superuser
    // only (bob has no Describe or Alter on the cluster).
    assert_eq!(
        denied(
            grpc.list_acls(grpc_as("bob", pb::ListAclsRequest::default()))
                .await
        ),
        Err(Code::PermissionDenied)
    );
    let listed = grpc
        .list_acls(grpc_as("admin", pb::ListAclsRequest::default()))
        .await
        .expect("the superuser lists")
        .into_inner()
        .acls;
    assert_eq!(listed.len(), 3, "{listed:?}");
    let carol_reads = pb::Acl {
        resource_type: "topic".into(),
        resource_name: "payments".into(),
        principal: "User:carol".into(),
        operation: "read".into(),
        ..Default::default()
    };
    assert_eq!(
        denied(
            grpc.create_acls(grpc_as(
                "bob",
                pb::CreateAclsRequest {
                    acls: vec![carol_reads.clone()]
                }
            ))
            .await
        ),
        Err(Code::PermissionDenied)
    );
    let created = grpc
        .create_acls(grpc_as(
            "admin",
            pb::CreateAclsRequest {
                acls: vec![carol_reads],
            },
        ))
        .await
        .expect("created")
        .into_inner()
        .acls;
    assert_eq!(created[0].permission, "Allow", "defaults filled in");
    assert_eq!(
        status(
            send(
                reqwest::Method::GET,
                "/v1/topics/payments/partitions/0/records?offset=0&max_wait_ms=0",
                "carol"
            )
            .send()
            .await
            .expect("send")
        ),
        200,
        "carol's new grant is in force at once"
    );
    let all: serde_json::Value = send(reqwest::Method::GET, "/v1/acls", "admin")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("JSON");
    assert_eq!(all["acls"].as_array().expect("acls").len(), 4, "{all}");
    assert_eq!(
        status(
            send(reqwest::Method::POST, "/v1/acls", "bob")
                .json(&serde_json::json!({"acls": [{"resource_type": "cluster",
                    "resource_name": "kafka-cluster", "principal": "User:bob",
                    "operation": "alter"}]}))
                .send()
                .await
                .expect("send")
        ),
        403,
        "bob cannot grant himself the cluster"
    );
    let bad = send(reqwest::Method::POST, "/v1/acls", "admin")
        .json(
            &serde_json::json!({"acls": [{"resource_type": "topic", "resource_name": "x",
            "principal": "alice", "operation": "read"}]}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status().as_u16(), 400, "a principal is User:NAME");
    let removed: serde_json::Value = send(
        reqwest::Method::DELETE,
        "/v1/acls?principal=User:carol",
        "admin",
    )
    .send()
    .await
    .expect("send")
    .json()
    .await
    .expect("JSON");
    assert_eq!(removed["acls"][0]["resource_name"], "payments", "{removed}");
    assert_eq!(auth.acls(&Default::default()).len(), 3);

    let created = send(reqwest::Method::POST, "/v1/topics", "bob")
        .json(&serde_json::json!({"name": "bobs"}))
        .send()
        .await
        .expect("send");
    assert_eq!(created.status().as_u16(), 403);
    server.stop().await.expect("stops");
}

/// Runs the `brook` binary with `args`: (success, stdout, stderr).
fn brook_cli(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_brook"))
        .args(args)
        .output()
        .expect("run brook");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brook_acl_adds_lists_and_removes_rules_offline_and_the_broker_enforces_them() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    create_users(&data).await;
    let d = data.to_str().expect("utf-8");
    let (ok, out, err) = brook_cli(&[
        "acl",
        "add",
        "--data-dir",
        d,
        "--principal",
        "User:alice",
        "--operation",
        "write",
        "--topic",
        "ord",
        "--prefixed",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("User:alice Allow Write on Prefixed Topic \"ord\""),
        "{out}"
    );
    let (ok, _, _) = brook_cli(&[
        "acl",
        "add",
        "--data-dir",
        d,
        "--principal",
        "User:bob",
        "--operation",
        "read",
        "--group",
        "billing",
        "--deny",
    ]);
    assert!(ok);
    // Bad input is refused and changes nothing.
    for bad in [
        vec![
            "--principal",
            "alice",
            "--operation",
            "write",
            "--topic",
            "t",
        ],
        vec![
            "--principal",
            "User:alice",
            "--operation",
            "fly",
            "--topic",
            "t",
        ],
        vec!["--principal", "User:alice", "--operation", "write"],
        vec![
            "--principal",
            "User:a",
            "--operation",
            "read",
            "--topic",
            "t",
            "--group",
            "g",
        ],
    ] {
        let mut args = vec!["acl", "add", "--data-dir", d];
        args.extend(bad.iter().copied());
        let (ok, out, err) = brook_cli(&args);
        assert!(!ok, "{bad:?} must be refused: {out}");
        assert!(!err.is_empty());
    }
    let (ok, listed, _) = brook_cli(&["acl", "list", "--data-dir", d]);
    assert!(ok);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let (ok, only_bob, _) = brook_cli(&["acl", "list", "--data-dir", d, "--principal", "User:bob"]);
    assert!(ok);
    assert!(
        only_bob.contains("Deny Read on Literal Group \"billing\""),
        "{only_bob}"
    );
    let (ok, _, err) = brook_cli(&["acl", "remove", "--data-dir", d]);
    assert!(
        !ok && err.contains("say which"),
        "a bare remove is refused: {err}"
    );

    // The broker enforces what the CLI stored; while it runs the CLI is refused.
    let server = start_with(&data, |c| c.http.metrics_public = true).await;
    // (metrics_public: /metrics needs no credentials, where by default it needs the cluster.)
    let metrics = reqwest::Client::new()
        .get(format!(
            "http://{}/metrics",
            server.addr(DoorKind::Http).expect("on")
        ))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(metrics.status().as_u16(), 200);
    let bootstrap = server.addr(DoorKind::Kafka).expect("on").to_string();
    create_topic(&bootstrap, "admin", "orders")
        .await
        .expect("topic");
    produce(&bootstrap, "alice", "orders")
        .await
        .expect("the prefixed grant from brook acl");
    let (ok, _, err) = brook_cli(&["acl", "list", "--data-dir", d]);
    assert!(!ok && err.contains("running broker"), "{err}");
    server.stop().await.expect("stops");

    let (ok, out, _) = brook_cli(&[
        "acl",
        "remove",
        "--data-dir",
        d,
        "--principal",
        "User:alice",
    ]);
    assert!(ok && out.contains("removed: User:alice"), "{out}");
    let (_, listed, _) = brook_cli(&["acl", "list", "--data-dir", d]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
}
