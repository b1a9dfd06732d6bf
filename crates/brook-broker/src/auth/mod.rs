//! Who may do what: users, bearer tokens, ACLs and the one authorizer every door asks before
//! it acts (docs/security.md).
//!
//! [`Auth`] is the handle the doors share. It holds:
//!
//! - **users** as salted SCRAM credentials ([`scram`]), checked by a SASL exchange (Kafka's
//!   SCRAM-SHA-256/512) or against a password (SASL PLAIN, `authorization: Basic`); an unknown
//!   user is checked against a decoy, so it costs the same time and gets the same answer as a
//!   wrong password;
//! - **bearer tokens** ([`tokens`]), stored hashed, each acting as its user until it expires
//!   or is revoked;
//! - **ACLs** in Kafka's model ([`acl`]), and [`Auth::authorize`], the decision: superusers may
//!   do anything; with authentication on, everyone else only what an `Allow` rule grants and no
//!   `Deny` rule refuses (deny by default). With it off, every client is `User:ANONYMOUS` and may
//!   do anything but touch an internal topic (`__` names: request-reply's reply topic, ...),
//!   which only describing is allowed on.
//!
//! Everything is kept in the data directory (`store`) and changed through this handle (the
//! Kafka door's ACL and SCRAM APIs, the gRPC and HTTP admin calls, `brook user|token|acl`);
//! each change is written durably before it answers, on the blocking pool, and is seen by the
//! next request on every door. With no data directory (an ephemeral broker, tests) the handle
//! lives in memory only.
//!
//! The embedded API ([`crate::Broker`]) is never authorized: an application that links the
//! broker is trusted with it. The doors authorize every request before calling the broker.

pub mod acl;
mod calls;
mod principal;
pub mod scram;
mod store;
pub mod tokens;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};

pub use acl::{
    AclBinding, AclFilter, AclText, Operation, PatternFilter, PatternType, Permission, Resource,
    ResourceType,
};
pub use calls::caller_bound_id;
pub use principal::{Identity, Principal, ANONYMOUS, PRINCIPAL_NAME_BYTES_MAX};
pub use scram::{ScramCredential, ScramMechanism, ScramPending};
pub use store::SECURITY_DIR;
pub use tokens::{TokenRecord, TOKEN_TTL_MS};

use crate::broker::blocking;
use crate::error::{BrokerError, Result};
use store::{Files, State, User};

/// Passwords verified lately, so `Basic` on every HTTP request does not cost a PBKDF2 each:
/// at most this many, all forgotten at any change of users or tokens.
const VERIFIED_MAX: usize = 4096;

/// How the broker authenticates and authorizes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthConfig {
    /// Whether clients must authenticate and are held to ACLs (`--auth on`).
    pub enabled: bool,
    /// Principals that bypass ACLs (`--superusers User:admin,...`).
    pub superusers: Vec<Principal>,
    /// SCRAM iterations of new credentials (4096 to 16384).
    pub iterations: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            superusers: Vec::new(),
            iterations: scram::ITERATIONS_DEFAULT,
        }
    }
}

impl AuthConfig {
    /// Authentication on, with `superusers`.
    pub fn enabled(superusers: Vec<Principal>) -> Self {
        Self {
            enabled: true,
            superusers,
            ..Self::default()
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        scram::check_iterations(self.iterations)
    }
}

/// A user as listed: its name and the mechanisms (with iterations) it has credentials for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub mechanisms: Vec<(ScramMechanism, u32)>,
}

impl UserInfo {
    /// Its mechanisms as every admin surface shows them: `SCRAM-SHA-256(8192)`.
    pub fn mechanism_names(&self) -> Vec<String> {
        self.mechanisms
            .iter()
            .map(|(mechanism, iterations)| format!("{mechanism}({iterations})"))
            .collect()
    }
}

/// The security state the doors share. Clone it freely.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    config: AuthConfig,
    state: RwLock<State>,
    /// `None`: kept in memory only.
    files: Option<Files>,
    /// One change at a time, so two admin calls never lose each other's write.
    changes: tokio::sync::Mutex<()>,
    /// SHA-256 of (user, password) pairs verified since the last change, with their user.
    verified: Mutex<HashMap<[u8; 32], String>>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("enabled", &self.inner.config.enabled)
            .field("superusers", &self.inner.config.superusers)
            .field("persisted", &self.inner.files.is_some())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Auth {
    /// The same handle.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Auth {}

impl Default for Auth {
    /// Authentication off, nothing kept: [`Auth::disabled`].
    fn default() -> Self {
        Self::disabled()
    }
}

impl Auth {
    /// Authentication off and nothing stored: every client is anonymous and may do anything
    /// but touch internal topics.
    pub fn disabled() -> Self {
        Self::in_memory(AuthConfig::default())
    }

    /// A handle that keeps users, tokens and ACLs in memory only (tests, ephemeral brokers).
    pub fn in_memory(config: AuthConfig) -> Self {
        Self::from_parts(config, None, State::new())
    }

    /// Opens the store of the data directory `data_dir` (creating it), locking it for this
    /// process; see [`store`](self#). Fails with the broker's storage error when another
    /// process holds it or it is damaged.
    pub async fn open(data_dir: &Path, config: AuthConfig) -> Result<Self> {
        config.validate()?;
        let data_dir = data_dir.to_path_buf();
        let (files, state) = blocking(move || Files::open(&data_dir)).await?;
        Ok(Self::from_parts(config, Some(files), state))
    }

    /// [`Auth::open`] for a tool that has no runtime (the offline `brook user create`).
    pub fn open_blocking(data_dir: &Path, config: AuthConfig) -> Result<Self> {
        config.validate()?;
        let (files, state) = Files::open(data_dir)?;
        Ok(Self::from_parts(config, Some(files), state))
    }

    fn from_parts(config: AuthConfig, files: Option<Files>, mut state: State) -> Self {
        state.reindex();
        Self {
            inner: Arc::new(Inner {
                config,
                state: RwLock::new(state),
                files,
                changes: tokio::sync::Mutex::new(()),
                verified: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether clients must authenticate and are held to ACLs.
    pub fn enabled(&self) -> bool {
        self.inner.config.enabled
    }

    /// The settings.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// Whether `principal` bypasses ACLs.
    pub fn is_superuser(&self, principal: &Principal) -> bool {
        self.inner.config.superusers.contains(principal)
    }

    /// The decision: may `who` do `operation` on `resource`? `Denied` (the door's
    /// authorization error) when not; see the module docs.
    pub fn authorize(
        &self,
        who: &Identity,
        operation: Operation,
        resource: Resource<'_>,
    ) -> Result<()> {
        if self.allowed(who, operation, resource) {
            return Ok(());
        }
        Err(BrokerError::Denied {
            principal: who.principal.to_string(),
            operation,
            resource_type: resource.kind,
            resource: resource.name.to_owned(),
            internal: resource.is_internal_topic(),
        })
    }

    /// [`Auth::authorize`] as a yes or no, for filtering a listing.
    pub fn allowed(&self, who: &Identity, operation: Operation, resource: Resource<'_>) -> bool {
        if !self.enabled() {
            return !resource.is_internal_topic() || operation == Operation::Describe;
        }
        if self.is_superuser(&who.principal) {
            return true;
        }
        let state = self.inner.state.read();
        acl::decide(
            state.index.candidates(&resource),
            who.principal.name(),
            &who.host,
            operation,
            &resource,
        )
    }

    /// Whether `who` may create the topic `name`: `Create` on the cluster, which covers every
    /// topic but the internal ones, or `Create` on the topic itself (Kafka's CreateTopics rule;
    /// every door asks this one).
    pub fn may_create_topic(&self, who: &Identity, name: &str) -> bool {
        let topic = Resource::topic(name);
        (!topic.is_internal_topic() && self.allowed(who, Operation::Create, Resource::cluster()))
            || self.allowed(who, Operation::Create, topic)
    }

    /// Whether `who` may do `operation` on at least one resource of `kind` (see
    /// [`acl`]'s `decide_any`): what Kafka asks of an idempotent producer that has no
    /// `IdempotentWrite` on the cluster.
    pub fn allowed_on_some(
        &self,
        who: &Identity,
        operation: Operation,
        kind: ResourceType,
    ) -> bool {
        if !self.enabled() || self.is_superuser(&who.principal) {
            return true;
        }
        let state = self.inner.state.read();
        acl::decide_any(
            state.index.of_kind(kind),
            who.principal.name(),
            &who.host,
            operation,
            kind,
        )
    }

    // ---- authentication -----------------------------------------------------------------

    /// The principal of `user` if `password` is theirs (SASL PLAIN, `Basic`), else `None`,
    /// after the same work for an unknown user as for a wrong password. Costs one PBKDF2 on
    /// the blocking pool, unless this pair was verified since the last change.
    pub async fn verify_password(&self, user: &str, password: &[u8]) -> Option<Principal> {
        let key = pair_key(user, password);
        if let Some(name) = self.inner.verified.lock().get(&key) {
            return Principal::user(name.clone()).ok();
        }
        let credential = self.password_credential(user);
        let password = password.to_vec();
        let checked = tokio::task::spawn_blocking(move || credential.verify_password(&password))
            .await
            .unwrap_or(false);
        if !checked || !self.has_user(user) {
            return None;
        }
        let mut verified = self.inner.verified.lock();
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(key, user.to_owned());
        Principal::user(user).ok()
    }

    /// The credential a password is checked against: the user's strongest, or a decoy.
    fn password_credential(&self, user: &str) -> ScramCredential {
        let state = self.inner.state.read();
        state
            .users
            .get(user)
            .and_then(|u| {
                ScramMechanism::ALL
                    .iter()
                    .find_map(|m| u.credentials.get(m).cloned())
            })
            .unwrap_or_else(|| ScramCredential::decoy(ScramMechanism::Sha512, user, &state.secret))
    }

    fn has_user(&self, user: &str) -> bool {
        self.inner.state.read().users.contains_key(user)
    }

    /// The first step of a SCRAM exchange: the server-first message for the client-first one
    /// (an unknown user gets a decoy's; the exchange fails at its end).
    pub fn scram_start(
        &self,
        mechanism: ScramMechanism,
        client_first: &[u8],
    ) -> std::result::Result<(ScramPending, Vec<u8>), scram::ScramError> {
        let user = scram::client_first_user(client_first)?;
        let (credential, secret) = {
            let state = self.inner.state.read();
            let credential = state
                .users
                .get(&user)
                .and_then(|u| u.credentials.get(&mechanism).cloned());
            (credential, state.secret)
        };
        scram::server_first(mechanism, client_first, credential, &secret)
    }

    /// The last step of a SCRAM exchange: the principal and the server-final message.
    pub fn scram_finish(
        &self,
        pending: ScramPending,
        client_final: &[u8],
    ) -> std::result::Result<(Principal, Vec<u8>), scram::ScramError> {
        let (user, answer) = scram::server_final(pending, client_final)?;
        let principal = Principal::user(user.clone())
            .map_err(|_| scram::ScramError::InvalidCredentials { user })?;
        Ok((principal, answer))
    }

    /// The principal a bearer token acts as, if it is valid now (not expired, not revoked, its
    /// user still there).
    pub fn verify_token(&self, token: &str) -> Option<Principal> {
        let (id, hash) = tokens::parse(token)?;
        let state = self.inner.state.read();
        let record = state.tokens.get(id)?;
        (tokens::matches(record, &hash)
            && !record.expired(now_ms())
            && state.users.contains_key(&record.user))
        .then(|| Principal::user(record.user.clone()).ok())
        .flatten()
    }

    // ---- users ----------------------------------------------------------------------------

    /// Creates `name` with `password`, with credentials for both SCRAM mechanisms.
    /// `UserExists` when it exists.
    pub async fn create_user(&self, name: &str, password: &[u8]) -> Result<()> {
        principal::check_name(name)?;
        check_password(password)?;
        let user = self.new_credentials(password).await?;
        let name = name.to_owned();
        self.change(move |state| {
            if state.users.contains_key(&name) {
                return Err(BrokerError::UserExists { user: name });
            }
            state.users.insert(name, user);
            Ok(())
        })
        .await
    }

    /// Replaces `name`'s password (both mechanisms). `UnknownUser` when there is no such user.
    pub async fn set_password(&self, name: &str, password: &[u8]) -> Result<()> {
        check_password(password)?;
        let user = self.new_credentials(password).await?;
        let name = name.to_owned();
        self.change(move |state| match state.users.get_mut(&name) {
            Some(existing) => {
                *existing = user;
                Ok(())
            }
            None => Err(BrokerError::UnknownUser { user: name }),
        })
        .await
    }

    /// Deletes `name` and revokes its tokens. `UnknownUser` when there is no such user.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.change(move |state| {
            if state.users.remove(&name).is_none() {
                return Err(BrokerError::UnknownUser { user: name });
            }
            state.tokens.retain(|_, token| token.user != name);
            Ok(())
        })
        .await
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<UserInfo> {
        let state = self.inner.state.read();
        state
            .users
            .iter()
            .map(|(name, user)| UserInfo {
                name: name.clone(),
                mechanisms: user
                    .credentials
                    .values()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect(),
            })
            .collect()
    }

    /// Sets `name`'s credential for its mechanism (creating the user): Kafka's
    /// `AlterUserScramCredentials` upsertion.
    pub async fn upsert_scram(&self, name: &str, credential: ScramCredential) -> Result<()> {
        principal::check_name(name)?;
        let name = name.to_owned();
        self.change(move |state| {
            let user = state.users.entry(name).or_default();
            user.credentials.insert(credential.mechanism, credential);
            Ok(())
        })
        .await
    }

    /// Removes `name`'s credential for `mechanism`; a user left with none is deleted (and its
    /// tokens revoked). `UnknownUser` when it had no such credential.
    pub async fn delete_scram(&self, name: &str, mechanism: ScramMechanism) -> Result<()> {
        let name = name.to_owned();
        self.change(move |state| {
            let Some(user) = state.users.get_mut(&name) else {
                return Err(BrokerError::UnknownUser { user: name });
            };
            if user.credentials.remove(&mechanism).is_none() {
                return Err(BrokerError::UnknownUser { user: name });
            }
            if user.credentials.is_empty() {
                state.users.remove(&name);
                state.tokens.retain(|_, token| token.user != name);
            }
            Ok(())
        })
        .await
    }

    async fn new_credentials(&self, password: &[u8]) -> Result<User> {
        let iterations = self.inner.config.iterations;
        let password = password.to_vec();
        blocking(move || {
            let mut user = User::default();
            for mechanism in ScramMechanism::ALL {
                let credential = ScramCredential::new(mechanism, &password, iterations)?;
                user.credentials.insert(mechanism, credential);
            }
            Ok(user)
        })
        .await
    }

    // ---- tokens ---------------------------------------------------------------------------

    /// A new token for `user`, valid `ttl_ms`: its record and its text (shown once; only its
    /// hash is kept). `UnknownUser` when there is no such user.
    pub async fn create_token(&self, user: &str, ttl_ms: u64) -> Result<(TokenRecord, String)> {
        TOKEN_TTL_MS
            .check("ttl", ttl_ms)
            .map_err(|reason| BrokerError::InvalidRequest { reason })?;
        let user = user.to_owned();
        self.change(move |state| {
            if !state.users.contains_key(&user) {
                return Err(BrokerError::UnknownUser { user });
            }
            let now = now_ms();
            state.tokens.retain(|_, token| !token.expired(now));
            if state.tokens.len() >= tokens::TOKENS_MAX {
                return Err(BrokerError::InvalidRequest {
                    reason: format!(
                        "{} tokens exist already: revoke some first",
                        tokens::TOKENS_MAX
                    ),
                });
            }
            let (record, text) = tokens::mint(&user, now, ttl_ms);
            state.tokens.insert(record.id.clone(), record.clone());
            Ok((record, text))
        })
        .await
    }

    /// Revokes the token `id`: the next request with it is refused. `UnknownToken` when there
    /// is no such token.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenRecord> {
        let id = id.to_owned();
        self.change(move |state| {
            state
                .tokens
                .remove(&id)
                .ok_or(BrokerError::UnknownToken { id })
        })
        .await
    }

    /// The tokens (of `user`, or all), never their secrets.
    pub fn tokens(&self, user: Option<&str>) -> Vec<TokenRecord> {
        let state = self.inner.state.read();
        state
            .tokens
            .values()
            .filter(|t| user.is_none_or(|u| t.user == u))
            .cloned()
            .collect()
    }

    // ---- ACLs -----------------------------------------------------------------------------

    /// Adds `acls` (each checked first; none is added if one is bad). Adding a rule that
    /// exists is no change.
    pub async fn create_acls(&self, acls: Vec<AclBinding>) -> Result<()> {
        for acl in &acls {
            acl.validate()?;
        }
        self.change(move |state| {
            state.acls.extend(acls);
            Ok(())
        })
        .await
    }

    /// Removes the rules each filter selects; returns them, per filter.
    pub async fn delete_acls(&self, filters: Vec<AclFilter>) -> Result<Vec<Vec<AclBinding>>> {
        self.change(move |state| {
            let mut removed = Vec::with_capacity(filters.len());
            for filter in &filters {
                let gone: Vec<AclBinding> = state
                    .acls
                    .iter()
                    .filter(|acl| filter.matches(acl))
                    .cloned()
                    .collect();
                for acl in &gone {
                    state.acls.remove(acl);
                }
                removed.push(gone);
            }
            Ok(removed)
        })
        .await
    }

    /// The rules `filter` selects.
    pub fn acls(&self, filter: &AclFilter) -> Vec<AclBinding> {
        let state = self.inner.state.read();
        state
            .acls
            .iter()
            .filter(|acl| filter.matches(acl))
            .cloned()
            .collect()
    }

    /// Applies `change` to a copy of the state, writes the copy durably (on the blocking
    /// pool), then makes it the state: a change that fails to persist changes nothing.
    async fn change<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _one_at_a_time = self.inner.changes.lock().await;
        let mut next = self.inner.state.read().clone();
        let inner = Arc::clone(&self.inner);
        let (answer, next) = blocking(move || {
            let answer = change(&mut next)?;
            next.reindex();
            if let Some(files) = &inner.files {
                files.save(&next)?;
            }
            Ok((answer, next))
        })
        .await?;
        *self.inner.state.write() = next;
        self.inner.verified.lock().clear();
        Ok(answer)
    }
}

/// A password is 1 to 1024 bytes.
fn check_password(password: &[u8]) -> Result<()> {
    if password.is_empty() || password.len() > 1024 {
        return Err(BrokerError::InvalidRequest {
            reason: "a password must be 1 to 1024 bytes".into(),
        });
    }
    Ok(())
}

fn pair_key(user: &str, password: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update((user.len() as u64).to_be_bytes());
    hash.update(user.as_bytes());
    hash.update(password);
    hash.finalize().into()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn who(name: &str) -> Identity {
        Identity::new(
            Principal::user(name).expect("name"),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        )
    }

    #[tokio::test]
    async fn with_auth_off_only_internal_topics_are_refused() {
        let auth = Auth::disabled();
        let anyone = Identity::local();
        auth.authorize(&anyone, Operation::Write, Resource::topic("orders"))
            .expect("open");
        auth.authorize(
            &anyone,
            Operation::Describe,
            Resource::topic("__brook_replies"),
        )
        .expect("describing is allowed");
        for op in [
            Operation::Read,
            Operation::Write,
            Operation::Delete,
            Operation::Create,
        ] {
            let denied = auth
                .authorize(&anyone, op, Resource::topic("__brook_replies"))
                .expect_err("internal");
            assert!(denied.to_string().contains("internal"), "{denied}");
        }
    }

    #[tokio::test]
    async fn with_auth_on_superusers_pass_and_others_need_a_rule() {
        let auth = Auth::in_memory(AuthConfig::enabled(vec![
            Principal::user("admin").expect("name")
        ]));
        let topic = Resource::topic("orders");
        auth.authorize(
            &who("admin"),
            Operation::Delete,
            Resource::topic("__brook_replies"),
        )
        .expect("superuser");
        let denied = auth
            .authorize(&who("alice"), Operation::Write, topic)
            .expect_err("deny by default");
        assert_eq!(denied.kind(), crate::ErrorKind::PermissionDenied);
        auth.create_acls(vec![AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "orders".into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Write,
            permission: Permission::Allow,
        }])
        .await
        .expect("create");
        auth.authorize(&who("alice"), Operation::Write, topic)
            .expect("granted");
        assert!(!auth.allowed(&who("bob"), Operation::Write, topic));
        let removed = auth
            .delete_acls(vec![AclFilter {
                principal: Some("User:alice".into()),
                ..AclFilter::default()
            }])
            .await
            .expect("delete");
        assert_eq!(removed[0].len(), 1);
        assert!(!auth.allowed(&who("alice"), Operation::Write, topic));
    }

    #[tokio::test]
    async fn passwords_and_tokens_authenticate_until_changed_or_revoked() {
        let auth = Auth::in_memory(AuthConfig::enabled(Vec::new()));
        auth.create_user("alice", b"pw").await.expect("create");
        assert!(matches!(
            auth.create_user("alice", b"x").await,
            Err(BrokerError::UserExists { .. })
        ));
        assert_eq!(
            auth.verify_password("alice", b"pw")
                .await
                .map(|p| p.to_string()),
            Some("User:alice".into())
        );
        assert_eq!(auth.verify_password("alice", b"no").await, None);
        assert_eq!(auth.verify_password("ghost", b"pw").await, None);
        // Cached now; a password change forgets it.
        auth.set_password("alice", b"new").await.expect("passwd");
        assert_eq!(auth.verify_password("alice", b"pw").await, None);
        assert!(auth.verify_password("alice", b"new").await.is_some());

        let (record, token) = auth.create_token("alice", 3_600_000).await.expect("token");
        assert_eq!(auth.verify_token(&token), Principal::user("alice").ok());
        assert_eq!(auth.tokens(Some("alice")).len(), 1);
        auth.revoke_token(&record.id).await.expect("revoke");
        assert_eq!(auth.verify_token(&token), None, "revoked at once");
        let (_, token) = auth.create_token("alice", 3_600_000).await.expect("token");
        auth.delete_user("alice").await.expect("delete");
        assert_eq!(auth.verify_token(&token), None, "its user is gone");
        assert!(auth.tokens(None).is_empty());
        assert!(auth.create_token("alice", 3_600_000).await.is_err());
        assert!(auth.create_token("ghost", 1).await.is_err(), "ttl bound");
    }

    #[tokio::test]
    async fn the_store_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = Auth::open(dir.path(), AuthConfig::default())
            .await
            .expect("open");
        auth.create_user("alice", b"pw").await.expect("create");
        assert!(
            Auth::open(dir.path(), AuthConfig::default()).await.is_err(),
            "locked"
        );
        drop(auth);
        let back = Auth::open(dir.path(), AuthConfig::default())
            .await
            .expect("reopen");
        assert!(back.verify_password("alice", b"pw").await.is_some());
        assert_eq!(back.users()[0].mechanisms.len(), 2);
    }
}
