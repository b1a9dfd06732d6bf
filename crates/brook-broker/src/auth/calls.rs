//! A request-reply call bound to its caller, for the doors: only the caller that made a call
//! can wait for or fetch its reply, even though the request (and its correlation id) is
//! readable by the responders of its topic.
//!
//! The id a door's caller holds (chosen by it, or made for it) is a secret: the request in the
//! log carries not that id but [`caller_bound_id`] of it, a hash of the caller's principal and
//! the id. A third party that reads the request topic sees only the hash; it cannot turn it
//! back into the id, and fetching by the hash as its own id gives another hash. Replies are
//! written to the internal reply topic, which no ordinary client may write, so none can be
//! forged either (docs/security.md, "Request-reply").
//!
//! The same caller gets the same bound id for the same id, so a retry after a timeout or a
//! restart is still idempotent. With authentication off every caller is `User:ANONYMOUS`: an id
//! a caller chose that others can guess (`order-42`) can be fetched by them, so a caller that
//! wants its reply private leaves the id to brook (16 random bytes) or picks one as random.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Principal;
use crate::backend::Backend;
use crate::error::{BrokerError, Result};
use crate::reqreply::{Call, CorrelationId, Reply};

/// Bytes of a bound id (as many as brook's own random ids).
const BOUND_ID_BYTES: usize = 16;

/// The id a call of `caller` with the caller's id `id` carries in the log.
pub fn caller_bound_id(caller: &Principal, id: &CorrelationId) -> CorrelationId {
    let mut hash = Sha256::new();
    hash.update(b"brook call v1\0");
    let principal = caller.to_string();
    hash.update((principal.len() as u64).to_be_bytes());
    hash.update(principal.as_bytes());
    hash.update(id.as_bytes());
    let digest = hash.finalize();
    CorrelationId::from_bytes(bytes::Bytes::copy_from_slice(&digest[..BOUND_ID_BYTES]))
        .expect("16 bytes is a valid correlation id")
}

impl Backend {
    /// [`Backend::call`] as `caller`: the call's id (its own, or a new random one) stays the
    /// caller's, and the log carries [`caller_bound_id`] of it. The reply and every error name
    /// the caller's id.
    pub async fn call_as(&self, caller: &Principal, topic: &str, mut call: Call) -> Result<Reply> {
        let id = call
            .correlation_id
            .take()
            .unwrap_or_else(CorrelationId::random);
        let bound = caller_bound_id(caller, &id);
        let answer = self.call(topic, call.with_correlation_id(bound)).await;
        unbind(answer, &id)
    }

    /// [`Backend::reply`] as `caller`, for an id the caller holds.
    pub async fn reply_as(
        &self,
        caller: &Principal,
        topic: &str,
        id: &CorrelationId,
        wait: Duration,
    ) -> Result<Reply> {
        let answer = self.reply(topic, &caller_bound_id(caller, id), wait).await;
        unbind(answer, id)
    }
}

/// Puts the caller's id back where the bound one is named.
fn unbind(answer: Result<Reply>, id: &CorrelationId) -> Result<Reply> {
    match answer {
        Ok(mut reply) => {
            reply.correlation_id = id.clone();
            Ok(reply)
        }
        Err(mut error) => {
            if let BrokerError::CallTimeout { correlation_id, .. }
            | BrokerError::HandlerFailed { correlation_id, .. }
            | BrokerError::UnknownCall { correlation_id, .. }
            | BrokerError::CallAborted { correlation_id, .. } = &mut error
            {
                *correlation_id = id.to_text();
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_id_depends_on_the_caller_and_the_id_and_hides_both() {
        let alice = Principal::user("alice").expect("name");
        let bob = Principal::user("bob").expect("name");
        let id = CorrelationId::parse("order-42").expect("id");
        let bound = caller_bound_id(&alice, &id);
        assert_eq!(
            bound,
            caller_bound_id(&alice, &id),
            "stable: retries stay idempotent"
        );
        assert_ne!(bound, caller_bound_id(&bob, &id));
        assert_ne!(
            bound,
            caller_bound_id(&alice, &CorrelationId::parse("order-43").expect("id"))
        );
        assert_ne!(
            caller_bound_id(&alice, &bound),
            bound,
            "fetching by the bound id gives another"
        );
        assert_eq!(bound.as_bytes().len(), BOUND_ID_BYTES);
    }
}
