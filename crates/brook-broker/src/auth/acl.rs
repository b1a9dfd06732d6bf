//! Kafka's ACL model: who (principal, host) may or may not do what (operation) to which
//! resource (a topic, group, transactional id or the cluster, by literal name or prefix), and
//! the one decision made from a set of such rules.
//!
//! The numbers are Kafka's wire codes (`AclOperation`, `ResourceType`, `PatternType`,
//! `AclPermissionType`), so the Kafka door passes them through and `kafka-acls` output reads
//! the same. The decision is Kafka's `AclAuthorizer`'s:
//!
//! 1. a rule applies when its resource matches (literal name equal, or `*`; prefixed: the name
//!    starts with it), its principal matches (equal, or `User:*`) and its host matches (equal,
//!    or `*`);
//! 2. a `Deny` rule for the operation (or for `All`) denies;
//! 3. else an `Allow` rule for the operation, for `All`, or for an operation that implies it
//!    (`Read`, `Write`, `Delete`, `Alter` imply `Describe`; `AlterConfigs` implies
//!    `DescribeConfigs`) allows;
//! 4. else it is denied (deny by default).
//!
//! Internal topics (names starting `__`) are matched only by rules that name them: `*` and a
//! prefix that does not start with `__` never grant them, so a broad grant never opens the
//! reply topic of request-reply to an ordinary principal.
//!
//! A check costs what the rules that may apply cost, not what the store holds: `AclIndex`
//! files the rules by resource type, then literal name (`*` under its own name) and prefix, so
//! a check looks up the resource's name, `*`, and each stored prefix length the name is long
//! enough for, and decides over those rules alone.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};

/// The literal resource name that matches every name (of its type).
pub const WILDCARD: &str = "*";
/// The principal that matches every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The resource name of the cluster, Kafka's.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// How a topic name marks itself internal.
pub const INTERNAL_PREFIX: &str = "__";

/// Defines a Kafka enum with its wire codes, its names (as `kafka-acls` prints them) and a
/// parser that takes either, case-insensitively.
macro_rules! kafka_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal, $text:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)+
                }
            }

            /// The value of a wire code.
            pub fn from_code(code: i8) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The name `kafka-acls` prints (`Read`, `Topic`, `Prefixed`).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = BrokerError;

            fn from_str(text: &str) -> Result<Self> {
                let wanted = text.replace(['-', '_'], "");
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name().replace(['-', '_'], "").eq_ignore_ascii_case(&wanted))
                    .ok_or_else(|| BrokerError::InvalidRequest {
                        reason: format!(
                            "{text:?} is not a {}: one of {}",
                            stringify!($name),
                            Self::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
                        ),
                    })
            }
        }
    };
}

kafka_enum!(
    /// What an ACL is about.
    ResourceType {
        Topic = 2, "Topic";
        Group = 3, "Group";
        Cluster = 4, "Cluster";
        TransactionalId = 5, "TransactionalId";
    }
);

kafka_enum!(
    /// How an ACL's resource name matches.
    PatternType {
        /// The name itself (or `*`, every name).
        Literal = 3, "Literal";
        /// Every name starting with it.
        Prefixed = 4, "Prefixed";
    }
);

kafka_enum!(
    /// What may be done.
    Operation {
        All = 2, "All";
        Read = 3, "Read";
        Write = 4, "Write";
        Create = 5, "Create";
        Delete = 6, "Delete";
        Alter = 7, "Alter";
        Describe = 8, "Describe";
        ClusterAction = 9, "ClusterAction";
        DescribeConfigs = 10, "DescribeConfigs";
        AlterConfigs = 11, "AlterConfigs";
        IdempotentWrite = 12, "IdempotentWrite";
    }
);

kafka_enum!(
    /// Whether a rule allows or denies.
    Permission {
        Deny = 2, "Deny";
        Allow = 3, "Allow";
    }
);

impl ResourceType {
    /// The operations Kafka defines on this type of resource (its `AclEntry.supportedOperations`),
    /// in code order: what an ACL about it can grant, and what Kafka's `authorized_operations`
    /// fields report on.
    pub fn operations(self) -> &'static [Operation] {
        use Operation as O;
        match self {
            ResourceType::Topic => &[
                O::Read,
                O::Write,
                O::Create,
                O::Delete,
                O::Alter,
                O::Describe,
                O::DescribeConfigs,
                O::AlterConfigs,
            ],
            ResourceType::Group => &[O::Read, O::Delete, O::Describe],
            ResourceType::Cluster => &[
                O::Create,
                O::Alter,
                O::Describe,
                O::ClusterAction,
                O::DescribeConfigs,
                O::AlterConfigs,
                O::IdempotentWrite,
            ],
            ResourceType::TransactionalId => &[O::Write, O::Describe],
        }
    }
}

impl Operation {
    /// Whether an `Allow` rule for `self` allows `wanted` (Kafka's implied operations).
    fn allows(self, wanted: Operation) -> bool {
        use Operation as O;
        self == wanted
            || self == O::All
            || (wanted == O::Describe && matches!(self, O::Read | O::Write | O::Delete | O::Alter))
            || (wanted == O::DescribeConfigs && self == O::AlterConfigs)
    }
}

/// A resource an operation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub kind: ResourceType,
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    pub fn topic(name: &'a str) -> Self {
        Self {
            kind: ResourceType::Topic,
            name,
        }
    }

    pub fn group(name: &'a str) -> Self {
        Self {
            kind: ResourceType::Group,
            name,
        }
    }

    pub fn transactional_id(name: &'a str) -> Self {
        Self {
            kind: ResourceType::TransactionalId,
            name,
        }
    }

    pub fn cluster() -> Resource<'static> {
        Resource {
            kind: ResourceType::Cluster,
            name: CLUSTER_NAME,
        }
    }

    /// Whether this is an internal topic (`__` names): refused to clients with auth off, and
    /// granted only by rules that name it with auth on.
    pub fn is_internal_topic(&self) -> bool {
        self.kind == ResourceType::Topic && self.name.starts_with(INTERNAL_PREFIX)
    }
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:NAME` or `User:*`.
    pub principal: String,
    /// An IP address, or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Checks the rule can be stored: a name, a `User:` principal, `*` or an IP as host, the
    /// cluster named `kafka-cluster` literally.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(BrokerError::InvalidRequest { reason });
        if self.resource_name.is_empty() || self.resource_name.len() > 1024 {
            return bad("an ACL's resource name must be 1 to 1024 bytes".into());
        }
        if self.resource_type == ResourceType::Cluster
            && (self.resource_name != CLUSTER_NAME || self.pattern_type != PatternType::Literal)
        {
            return bad(format!(
                "a cluster ACL names the cluster literally: {CLUSTER_NAME:?}"
            ));
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == WILDCARD {
            return bad("a prefixed ACL cannot be `*`: use a literal `*` for every name".into());
        }
        if self.principal != WILDCARD_PRINCIPAL {
            super::Principal::parse(&self.principal)?;
        }
        if self.host != WILDCARD && self.host.parse::<IpAddr>().is_err() {
            return bad(format!(
                "an ACL's host is `*` or an IP address, not {:?}",
                self.host
            ));
        }
        Ok(())
    }

    /// Whether this rule is about `resource`.
    fn matches_resource(&self, resource: &Resource<'_>) -> bool {
        if self.resource_type != resource.kind {
            return false;
        }
        let internal = resource.is_internal_topic();
        match self.pattern_type {
            PatternType::Literal => {
                self.resource_name == resource.name || (self.resource_name == WILDCARD && !internal)
            }
            PatternType::Prefixed => {
                resource.name.starts_with(&self.resource_name)
                    && (!internal || self.resource_name.starts_with(INTERNAL_PREFIX))
            }
        }
    }

    /// Whether this rule is about the user named `user` (its principal is `User:<user>`) at
    /// `host` (the address as text).
    fn matches_identity(&self, user: &str, host: &str) -> bool {
        (self.principal == WILDCARD_PRINCIPAL || self.principal.strip_prefix("User:") == Some(user))
            && (self.host == host || self.host == WILDCARD)
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} on {} {} {:?} from {}",
            self.principal,
            self.permission,
            self.operation,
            self.pattern_type,
            self.resource_type,
            self.resource_name,
            self.host
        )
    }
}

/// A rule or a filter in words, as the HTTP and gRPC admin calls and `brook acl` take it:
/// each field one of the names `kafka-acls` prints (any case, `-`/`_` ignored), `None` for a
/// field left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclText<'a> {
    pub resource_type: Option<&'a str>,
    pub resource_name: Option<&'a str>,
    /// `literal` (a rule's default), `prefixed`; in a filter also `any` (its default), `match`.
    pub pattern_type: Option<&'a str>,
    pub principal: Option<&'a str>,
    /// `*` (a rule's default) or an IP address.
    pub host: Option<&'a str>,
    pub operation: Option<&'a str>,
    /// `allow` (a rule's default) or `deny`.
    pub permission: Option<&'a str>,
}

impl AclText<'_> {
    /// The rule these words name, checked ([`AclBinding::validate`]).
    pub fn binding(&self) -> Result<AclBinding> {
        fn needed<'f>(field: Option<&'f str>, what: &str) -> Result<&'f str> {
            field.ok_or_else(|| BrokerError::InvalidRequest {
                reason: format!("an ACL needs its {what}"),
            })
        }
        let acl = AclBinding {
            resource_type: needed(self.resource_type, "resource type")?.parse()?,
            resource_name: needed(self.resource_name, "resource name")?.to_owned(),
            pattern_type: self.pattern_type.unwrap_or("literal").parse()?,
            principal: needed(self.principal, "principal (User:NAME)")?.to_owned(),
            host: self.host.unwrap_or(WILDCARD).to_owned(),
            operation: needed(self.operation, "operation")?.parse()?,
            permission: self.permission.unwrap_or("allow").parse()?,
        };
        acl.validate()?;
        Ok(acl)
    }

    /// The filter these words name: a field left out matches anything.
    pub fn filter(&self) -> Result<AclFilter> {
        let pattern = match self.pattern_type.map(str::to_ascii_lowercase).as_deref() {
            None | Some("any") => PatternFilter::Any,
            Some("match") => PatternFilter::Match,
            Some(other) => PatternFilter::Only(other.parse()?),
        };
        Ok(AclFilter {
            resource_type: self.resource_type.map(str::parse).transpose()?,
            resource_name: self.resource_name.map(str::to_owned),
            pattern,
            principal: self.principal.map(str::to_owned),
            host: self.host.map(str::to_owned),
            operation: self.operation.map(str::parse).transpose()?,
            permission: self.permission.map(str::parse).transpose()?,
        })
    }
}

/// How a filter matches resource names (Kafka's `PatternType` in a filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PatternFilter {
    /// Any rule whatever its pattern, by its stored name.
    #[default]
    Any,
    /// The rules that would apply to the named resource: literal equal or `*`, and prefixes of
    /// it.
    Match,
    /// Only this pattern type.
    Only(PatternType),
}

impl PatternFilter {
    /// Kafka's wire code: 1 any, 2 match, 3 literal, 4 prefixed.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(Self::Any),
            2 => Some(Self::Match),
            other => PatternType::from_code(other).map(Self::Only),
        }
    }
}

/// Which rules a listing or a removal is about; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// Whether `acl` is one of the rules this filter selects.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let name_matches = match (&self.resource_name, self.pattern) {
            (None, PatternFilter::Only(p)) => acl.pattern_type == p,
            (None, _) => true,
            (Some(name), PatternFilter::Any) => acl.resource_name == *name,
            (Some(name), PatternFilter::Only(p)) => {
                acl.pattern_type == p && acl.resource_name == *name
            }
            (Some(name), PatternFilter::Match) => match acl.pattern_type {
                PatternType::Literal => acl.resource_name == *name || acl.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&acl.resource_name),
            },
        };
        name_matches
            && self.resource_type.is_none_or(|t| t == acl.resource_type)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}

/// The rules filed for checks ([`decide`] asks it for the rules that may apply to a resource):
/// derived from the stored set, rebuilt whole when it changes (rarely: an admin call).
#[derive(Debug, Clone, Default)]
pub(crate) struct AclIndex {
    /// One per resource type, in [`ResourceType::ALL`] order.
    kinds: [KindRules; 4],
}

/// The rules of one resource type.
#[derive(Debug, Clone, Default)]
struct KindRules {
    /// Literal rules by their name (`*` among them).
    literal: HashMap<String, Vec<AclBinding>>,
    /// Prefixed rules by their prefix.
    prefixed: HashMap<String, Vec<AclBinding>>,
    /// The lengths (bytes) of the prefixes in `prefixed`, ascending, each once.
    prefix_lengths: Vec<usize>,
    /// Every rule of the type, for [`decide_any`].
    all: Vec<AclBinding>,
}

impl AclIndex {
    /// Files `acls`.
    pub(crate) fn new<'a>(acls: impl IntoIterator<Item = &'a AclBinding>) -> Self {
        let mut index = Self::default();
        for acl in acls {
            let rules = index.kind_mut(acl.resource_type);
            let by_name = match acl.pattern_type {
                PatternType::Literal => &mut rules.literal,
                PatternType::Prefixed => {
                    rules.prefix_lengths.push(acl.resource_name.len());
                    &mut rules.prefixed
                }
            };
            by_name
                .entry(acl.resource_name.clone())
                .or_default()
                .push(acl.clone());
            rules.all.push(acl.clone());
        }
        for rules in &mut index.kinds {
            rules.prefix_lengths.sort_unstable();
            rules.prefix_lengths.dedup();
        }
        index
    }

    fn slot(kind: ResourceType) -> usize {
        ResourceType::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default()
    }

    fn kind(&self, kind: ResourceType) -> &KindRules {
        &self.kinds[Self::slot(kind)]
    }

    fn kind_mut(&mut self, kind: ResourceType) -> &mut KindRules {
        &mut self.kinds[Self::slot(kind)]
    }

    /// The rules that may apply to `resource`: literal ones naming it or `*`, prefixed ones
    /// whose prefix starts its name. [`decide`] still matches each, so this may over-select
    /// (it never under-selects).
    pub(crate) fn candidates<'s>(
        &'s self,
        resource: &Resource<'s>,
    ) -> impl Iterator<Item = &'s AclBinding> + 's {
        let rules = self.kind(resource.kind);
        let name: &'s str = resource.name;
        let literal = rules.literal.get(name).into_iter().flatten();
        let wildcard = (name != WILDCARD)
            .then(|| rules.literal.get(WILDCARD))
            .flatten()
            .into_iter()
            .flatten();
        let prefixed = rules
            .prefix_lengths
            .iter()
            .take_while(move |len| **len <= name.len())
            .filter_map(move |len| {
                let prefix = name.get(..*len)?;
                rules.prefixed.get(prefix)
            })
            .flatten();
        literal.chain(wildcard).chain(prefixed)
    }

    /// Every rule about resources of `kind`.
    pub(crate) fn of_kind(&self, kind: ResourceType) -> &[AclBinding] {
        &self.kind(kind).all
    }
}

/// Kafka's decision over `acls` for the user named `user` at `host` doing `operation` on
/// `resource` (see the module docs): `true` when allowed.
pub(crate) fn decide<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding>,
    user: &str,
    host: &IpAddr,
    operation: Operation,
    resource: &Resource<'_>,
) -> bool {
    let mut text = HostText::default();
    let host = text.of(host);
    let mut allowed = false;
    for acl in acls
        .into_iter()
        .filter(|acl| acl.matches_resource(resource) && acl.matches_identity(user, host))
    {
        match acl.permission {
            Permission::Deny if acl.operation == operation || acl.operation == Operation::All => {
                return false;
            }
            Permission::Allow if acl.operation.allows(operation) => allowed = true,
            _ => {}
        }
    }
    allowed
}

/// Whether any rule lets the user named `user` at `host` do `operation` on some resource of `kind`,
/// and no rule denies it on every one (a literal `*`): Kafka's `authorizeByResourceType`, which
/// InitProducerId asks for an idempotent producer (`Write` on some topic).
pub(crate) fn decide_any<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding> + Clone,
    user: &str,
    host: &IpAddr,
    operation: Operation,
    kind: ResourceType,
) -> bool {
    let mut text = HostText::default();
    let host = text.of(host);
    let applies = |acl: &&AclBinding| {
        acl.resource_type == kind
            && acl.matches_identity(user, host)
            && !(acl.resource_name.starts_with(INTERNAL_PREFIX))
    };
    let denied_everywhere = acls.clone().into_iter().filter(applies).any(|acl| {
        acl.permission == Permission::Deny
            && (acl.operation == operation || acl.operation == Operation::All)
            && acl.pattern_type == PatternType::Literal
            && acl.resource_name == WILDCARD
    });
    !denied_everywhere
        && acls
            .into_iter()
            .filter(applies)
            .any(|acl| acl.permission == Permission::Allow && acl.operation.allows(operation))
}

/// An IP address as text without a heap allocation (a check makes one per request).
struct HostText {
    buf: [u8; 48],
}

impl Default for HostText {
    fn default() -> Self {
        Self { buf: [0; 48] }
    }
}

impl HostText {
    /// `host` as text (`127.0.0.1`, `::1`): at most 45 bytes, as Rust prints addresses.
    fn of(&mut self, host: &IpAddr) -> &str {
        use std::io::Write;
        let mut cursor = std::io::Cursor::new(&mut self.buf[..]);
        let written = write!(cursor, "{host}").is_ok();
        let len = usize::try_from(cursor.position()).unwrap_or(0);
        if !written {
            return "";
        }
        std::str::from_utf8(&self.buf[..len]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        kind: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: kind,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation,
            permission,
        }
    }

    const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn deny_wins_allow_implies_describe_and_nothing_is_allowed_by_default() {
        use Operation as O;
        let topic = Resource::topic("orders");
        let rules = vec![
            acl(
                ResourceType::Topic,
                "ord",
                PatternType::Prefixed,
                "User:alice",
                O::Read,
                Permission::Allow,
            ),
            acl(
                ResourceType::Topic,
                "orders",
                PatternType::Literal,
                "User:alice",
                O::Write,
                Permission::Deny,
            ),
            acl(
                ResourceType::Topic,
                "*",
                PatternType::Literal,
                "User:*",
                O::Describe,
                Permission::Allow,
            ),
        ];
        assert!(decide(&rules, "alice", &HOST, O::Read, &topic));
        assert!(
            !decide(&rules, "alice", &HOST, O::Write, &topic),
            "deny wins"
        );
        assert!(
            decide(&rules, "bob", &HOST, O::Describe, &topic),
            "wildcards"
        );
        assert!(
            !decide(&rules, "bob", &HOST, O::Read, &topic),
            "deny by default"
        );
        assert!(!decide(&[], "alice", &HOST, O::Describe, &topic));
        let read_only = [acl(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            "User:c",
            O::Read,
            Permission::Allow,
        )];
        assert!(
            decide(&read_only, "c", &HOST, O::Describe, &topic),
            "read implies describe"
        );
        assert!(!decide(&read_only, "c", &HOST, O::Delete, &topic));
    }

    #[test]
    fn internal_topics_are_granted_only_by_rules_that_name_them() {
        use Operation as O;
        let everything = [
            acl(
                ResourceType::Topic,
                "*",
                PatternType::Literal,
                "User:*",
                O::All,
                Permission::Allow,
            ),
            acl(
                ResourceType::Topic,
                "_",
                PatternType::Prefixed,
                "User:*",
                O::All,
                Permission::Allow,
            ),
        ];
        let replies = Resource::topic("__brook_replies");
        assert!(!decide(&everything, "a", &HOST, O::Read, &replies));
        let named = [acl(
            ResourceType::Topic,
            "__brook",
            PatternType::Prefixed,
            "User:a",
            O::Write,
            Permission::Allow,
        )];
        assert!(decide(&named, "a", &HOST, O::Write, &replies));
    }

    #[test]
    fn the_index_decides_as_a_scan_of_every_rule_does() {
        use Operation as O;
        let names = [
            "orders",
            "ord",
            "o",
            "*",
            "__brook_replies",
            "__b",
            "x",
            "ordersé",
        ];
        let mut rules = Vec::new();
        for (i, kind) in [ResourceType::Topic, ResourceType::Group]
            .into_iter()
            .enumerate()
        {
            for (j, name) in names.iter().enumerate() {
                for pattern in PatternType::ALL {
                    if *pattern == PatternType::Prefixed && *name == WILDCARD {
                        continue;
                    }
                    let op = [O::Read, O::Write, O::All, O::Describe][(i + j) % 4];
                    let permission = if (i + j) % 5 == 0 {
                        Permission::Deny
                    } else {
                        Permission::Allow
                    };
                    let who = ["User:a", "User:*"][j % 2];
                    rules.push(acl(kind, name, *pattern, who, op, permission));
                }
            }
        }
        rules.push(acl(
            ResourceType::Cluster,
            CLUSTER_NAME,
            PatternType::Literal,
            "User:a",
            O::Alter,
            Permission::Allow,
        ));
        let index = AclIndex::new(&rules);
        let mut checked = 0;
        for kind in ResourceType::ALL {
            for name in names.iter().chain(&["orders-2", "", "é", "kafka-cluster"]) {
                let resource = Resource { kind: *kind, name };
                for op in Operation::ALL {
                    for who in ["a", "b"] {
                        assert_eq!(
                            decide(index.candidates(&resource), who, &HOST, *op, &resource),
                            decide(&rules, who, &HOST, *op, &resource),
                            "{who} {op} {resource}"
                        );
                        checked += 1;
                    }
                }
            }
            for op in Operation::ALL {
                assert_eq!(
                    decide_any(index.of_kind(*kind), "a", &HOST, *op, *kind),
                    decide_any(&rules, "a", &HOST, *op, *kind)
                );
            }
        }
        assert!(checked > 300);
        let orders = Resource::topic("orders");
        assert_eq!(
            index.candidates(&orders).count(),
            5,
            "orders, *, and the prefixes o, ord, orders: not the other rules"
        );
    }

    #[test]
    fn hosts_restrict_a_rule() {
        let mut rule = acl(
            ResourceType::Group,
            "g",
            PatternType::Literal,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        rule.host = "10.0.0.1".into();
        let group = Resource::group("g");
        assert!(!decide(
            std::slice::from_ref(&rule),
            "User:a",
            &HOST,
            Operation::Read,
            &group
        ));
        let there: IpAddr = "10.0.0.1".parse().expect("ip");
        assert!(decide(&[rule], "a", &there, Operation::Read, &group));
    }

    #[test]
    fn filters_select_rules_by_any_field_or_by_what_would_match() {
        let rule = acl(
            ResourceType::Topic,
            "ord",
            PatternType::Prefixed,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        assert!(AclFilter::default().matches(&rule));
        let matching = AclFilter {
            resource_name: Some("orders".into()),
            pattern: PatternFilter::Match,
            ..AclFilter::default()
        };
        assert!(matching.matches(&rule));
        let exact = AclFilter {
            resource_name: Some("orders".into()),
            ..AclFilter::default()
        };
        assert!(!exact.matches(&rule));
        let other_principal = AclFilter {
            principal: Some("User:b".into()),
            ..AclFilter::default()
        };
        assert!(!other_principal.matches(&rule));
    }

    #[test]
    fn rules_and_filters_read_from_words() {
        let text = AclText {
            resource_type: Some("topic"),
            resource_name: Some("orders"),
            principal: Some("User:alice"),
            operation: Some("write"),
            ..AclText::default()
        };
        let acl = text.binding().expect("a rule");
        assert_eq!(acl.pattern_type, PatternType::Literal);
        assert_eq!(acl.permission, Permission::Allow);
        assert_eq!(acl.host, "*");
        let filter = AclText {
            principal: Some("User:alice"),
            pattern_type: Some("match"),
            ..AclText::default()
        }
        .filter()
        .expect("a filter");
        assert!(filter.matches(&acl));
        assert!(AclText::default().binding().is_err(), "fields are needed");
        let bad = AclText {
            operation: Some("fly"),
            ..text
        };
        assert!(bad.binding().is_err());
    }

    #[test]
    fn names_and_codes_read_back() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_code(op.code()), Some(*op));
            assert_eq!(op.name().parse::<Operation>().expect("name"), *op);
        }
        assert_eq!(
            "transactional-id".parse::<ResourceType>().expect("dash"),
            ResourceType::TransactionalId
        );
        assert!("Bogus".parse::<Operation>().is_err());
        let mut bad = acl(
            ResourceType::Cluster,
            "x",
            PatternType::Literal,
            "User:a",
            Operation::Alter,
            Permission::Allow,
        );
        assert!(bad.validate().is_err());
        bad.resource_name = CLUSTER_NAME.into();
        bad.validate().expect("the cluster, literally");
        bad.host = "not-an-ip".into();
        assert!(bad.validate().is_err());
    }
}
