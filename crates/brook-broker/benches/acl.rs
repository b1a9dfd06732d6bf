//! What an ACL check costs a request: [`Auth::allowed`], the one decision every door asks
//! before it acts (docs/security.md, "Authorization"), timed in the cases a request meets:
//!
//! - **auth off**: the check every request still makes (only internal topics are refused);
//! - **superuser**: auth on, a principal in `--superusers`;
//! - **allowed / denied, N rules**: auth on, an ordinary principal, with N ACLs in the store
//!   (other principals' rules on other topics, plus the one that grants it): the store's size,
//!   which an indexed check should not pay for;
//! - **prefixed, N rules**: the same with the others' rules prefixed (`t{i}-`), so a check
//!   looks up one name per distinct prefix length;
//! - **same topic, N rules**: the others' rules all on the topic checked, so every rule is a
//!   candidate: what a check costs when the rules do match the resource.
//!
//! Each case runs `CHECKS` decisions in a loop; the median of `ROUNDS` rounds, in nanoseconds
//! per check, is printed. A plain program that prints figures (no criterion):
//! `cargo bench -p brook-broker --bench acl` (a few seconds).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use brook_broker::auth::{
    AclBinding, Auth, AuthConfig, Identity, Operation, PatternType, Permission, Principal,
    Resource, ResourceType,
};

const CHECKS: u32 = 20_000;
const ROUNDS: usize = 21;

fn rule(principal: &str, topic: &str, operation: Operation) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: topic.into(),
        pattern_type: if topic.ends_with('-') {
            PatternType::Prefixed
        } else {
            PatternType::Literal
        },
        principal: principal.into(),
        host: "*".into(),
        operation,
        permission: Permission::Allow,
    }
}

/// An auth-on handle with `others` rules for other principals, on the topic `topic(i)`, and
/// alice's write on "orders".
fn with_rules(
    runtime: &tokio::runtime::Runtime,
    others: usize,
    topic: impl Fn(usize) -> String,
) -> Auth {
    let auth = Auth::in_memory(AuthConfig::enabled(vec![
        Principal::user("admin").expect("name")
    ]));
    let mut acls: Vec<AclBinding> = (0..others)
        .map(|i| rule(&format!("User:u{i}"), &topic(i), Operation::Read))
        .collect();
    acls.push(rule("User:alice", "orders", Operation::Write));
    runtime
        .block_on(auth.create_acls(acls))
        .expect("rules stored");
    auth
}

/// A case of rules: its name, and the topic of the `i`th other principal's rule.
type Case = (&'static str, fn(usize) -> String);

/// Median nanoseconds per check of `who` writing "orders" on `auth`, and the answer.
fn time(auth: &Auth, who: &Identity) -> (f64, bool) {
    let topic = Resource::topic("orders");
    let mut answer = false;
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CHECKS {
                answer = black_box(auth.allowed(black_box(who), Operation::Write, topic));
            }
            start.elapsed().as_nanos() as f64 / f64::from(CHECKS)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    (rounds[ROUNDS / 2], answer)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let as_user = |name: &str| Identity::new(Principal::user(name).expect("name"), host);
    println!("case\trules\tns/check\tallowed");
    let off = Auth::disabled();
    let (ns, ok) = time(&off, &Identity::anonymous(host));
    println!("auth off\t0\t{ns:.0}\t{ok}");
    for others in [0, 10, 100, 1_000] {
        let auth = with_rules(&runtime, others, |i| format!("t{i}"));
        let rules = others + 1;
        let (ns, ok) = time(&auth, &as_user("admin"));
        println!("superuser\t{rules}\t{ns:.0}\t{ok}");
        let (ns, ok) = time(&auth, &as_user("alice"));
        println!("allowed\t{rules}\t{ns:.0}\t{ok}");
        let (ns, ok) = time(&auth, &as_user("mallory"));
        println!("denied\t{rules}\t{ns:.0}\t{ok}");
    }
    let cases: [Case; 2] = [
        ("prefixed", |i| format!("t{i}-")),
        ("same topic", |_| "orders".to_owned()),
    ];
    for (case, topic) in cases {
        let auth = with_rules(&runtime, 1_000, topic);
        let (ns, ok) = time(&auth, &as_user("alice"));
        println!("{case} allowed\t1001\t{ns:.0}\t{ok}");
        let (ns, ok) = time(&auth, &as_user("mallory"));
        println!("{case} denied\t1001\t{ns:.0}\t{ok}");
    }
}
