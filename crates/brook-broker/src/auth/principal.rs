//! Who is asking: a principal (`User:alice`, Kafka's spelling) and the address it came from.
//!
//! Every door turns what it authenticated (a SASL exchange, an `authorization` header, a client
//! certificate, or nothing) into an [`Identity`], and the authorizer decides on that alone, so
//! the same user has the same rights whichever door it uses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::error::{BrokerError, Result};

/// The longest principal name accepted (Kafka sets none; a bound keeps files and logs sane).
pub const PRINCIPAL_NAME_BYTES_MAX: usize = 1024;

/// The principal of a client that did not authenticate (auth off, or a door that allows it).
pub const ANONYMOUS: &str = "ANONYMOUS";

/// A principal: `User:NAME`. Users created with `brook user create`, SASL users, token holders
/// and a client certificate's subject (`User:CN=app,O=acme`) are all `User` principals, as in
/// Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    name: String,
}

impl Principal {
    /// `User:name`; the name is checked by [`Principal::parse`]'s rules.
    pub fn user(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        check_name(&name)?;
        Ok(Self { name })
    }

    /// `User:ANONYMOUS`.
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS.to_owned(),
        }
    }

    /// Parses `User:NAME` (the only principal type brook knows, as Kafka's default builder).
    pub fn parse(text: &str) -> Result<Self> {
        match text.split_once(':') {
            Some(("User", name)) => Self::user(name),
            _ => Err(BrokerError::InvalidRequest {
                reason: format!("principal {text:?} is not `User:NAME`"),
            }),
        }
    }

    /// The name after `User:`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is `User:ANONYMOUS`.
    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "User:{}", self.name)
    }
}

/// Checks a user or principal name: 1 to [`PRINCIPAL_NAME_BYTES_MAX`] bytes, no control
/// characters (names go into logs and files).
pub(crate) fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > PRINCIPAL_NAME_BYTES_MAX {
        "it is longer than 1024 bytes"
    } else if name.chars().any(char::is_control) {
        "it holds a control character"
    } else {
        return Ok(());
    };
    Err(BrokerError::InvalidRequest {
        reason: format!("invalid user name {name:?}: {reason}"),
    })
}

/// A principal and the address it connected from: what every authorization decision is made
/// on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub principal: Principal,
    pub host: IpAddr,
}

impl Identity {
    pub fn new(principal: Principal, host: IpAddr) -> Self {
        Self { principal, host }
    }

    /// An anonymous client at `host`.
    pub fn anonymous(host: IpAddr) -> Self {
        Self::new(Principal::anonymous(), host)
    }

    /// The embedded caller: anonymous, on loopback. (An application that embeds the broker
    /// calls it directly and is never authorized; this names it where a door needs one.)
    pub fn local() -> Self {
        Self::anonymous(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.principal, self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_user_names_in_kafkas_spelling() {
        let alice = Principal::parse("User:alice").expect("valid");
        assert_eq!(alice.name(), "alice");
        assert_eq!(alice.to_string(), "User:alice");
        let dn = Principal::parse("User:CN=app,O=acme").expect("a DN is a name");
        assert_eq!(dn.name(), "CN=app,O=acme");
        for bad in ["alice", "Group:x", "User:", "User:a\nb"] {
            assert!(Principal::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Principal::anonymous().is_anonymous());
    }
}
