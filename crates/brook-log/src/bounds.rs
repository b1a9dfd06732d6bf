//! The range every numeric setting may take, and the one way a value outside it is refused.
//!
//! Each crate that owns settings keeps one table of them ([`Bounded`] rows: key, range, how to
//! read the value): brook-log's topic settings (`TopicConfig`'s table), the broker's
//! (`BrokerConfig`), each door's. Its `validate` checks the table with [`check_bounds`], the CLI
//! prints the ranges from it, and `docs/operations.md` lists them. A setting without a row has
//! no number to bound (an address, a list of origins).
//!
//! This lives in brook-log only because it is the crate every other one depends on: it is
//! settings vocabulary, not storage.

use std::fmt;

/// The inclusive range a numeric setting may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bounds {
    pub min: u64,
    pub max: u64,
}

impl Bounds {
    /// The range of a setting that is text, not a number (`cleanup.policy`): a table row
    /// needs one, but nothing is checked against it and [`Bounds::numeric`] hides it.
    pub const TEXT: Bounds = Bounds::new(0, 0);

    /// `Some(self)` unless this is [`Bounds::TEXT`].
    pub fn numeric(self) -> Option<Bounds> {
        (self != Self::TEXT).then_some(self)
    }

    /// `min..=max`.
    pub const fn new(min: u64, max: u64) -> Self {
        assert!(min <= max, "a range's minimum is above its maximum");
        Self { min, max }
    }

    /// Whether `value` is within the range.
    pub fn contains(&self, value: u64) -> bool {
        (self.min..=self.max).contains(&value)
    }

    /// `Ok` when `value` is within the range; otherwise the refusal, naming `key`, the value
    /// and the range.
    pub fn check(&self, key: &str, value: u64) -> Result<(), String> {
        if self.contains(value) {
            Ok(())
        } else {
            Err(format!("{key} must be {self}, not {value}"))
        }
    }
}

impl fmt::Display for Bounds {
    /// `1024 to 4294967295`, as `docs/operations.md` and `--help` write ranges.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.min, self.max)
    }
}

/// One bounded setting of a config type `C`: its key, its range and how to read its value
/// (`None` when the setting is switched off or not numeric in its current form, such as
/// `durability=sync`).
pub struct Bounded<C> {
    pub key: &'static str,
    pub bounds: Bounds,
    pub value: fn(&C) -> Option<u64>,
}

impl<C> Bounded<C> {
    /// A row of a bounds table.
    pub const fn new(key: &'static str, bounds: Bounds, value: fn(&C) -> Option<u64>) -> Self {
        Self { key, bounds, value }
    }

    /// Checks this row in `config`.
    pub fn check(&self, config: &C) -> Result<(), String> {
        match (self.value)(config) {
            Some(value) => self.bounds.check(self.key, value),
            None => Ok(()),
        }
    }
}

impl<C> fmt::Debug for Bounded<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("key", &self.key)
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

/// Checks every row of `table` in `config`; the first refusal, naming its setting.
pub fn check_bounds<C>(config: &C, table: &[Bounded<C>]) -> Result<(), String> {
    table.iter().try_for_each(|row| row.check(config))
}

/// The range of `key` in `table`.
pub fn bounds_of<C>(table: &[Bounded<C>], key: &str) -> Option<Bounds> {
    table
        .iter()
        .find(|row| row.key == key)
        .map(|row| row.bounds)
}

/// A usize setting as the u64 its bounds are written in (usize is at most 64 bits here).
pub fn wide(value: usize) -> u64 {
    value as u64
}

/// Milliseconds in a day: the ceiling of most intervals and timeouts, which keeps every
/// `Instant + Duration` far from overflowing.
pub const DAY_MS: u64 = 24 * 3600 * 1000;

/// Kafka's `Long.MAX_VALUE`: the ceiling of settings Kafka holds as a long (retention, segment
/// age), so a value Kafka tools print is one brook accepts.
pub const LONG_MAX: u64 = i64::MAX as u64;

#[cfg(test)]
mod tests {
    use super::*;

    struct Demo {
        size: u64,
        limit: Option<u64>,
    }

    const TABLE: &[Bounded<Demo>] = &[
        Bounded::new("size_bytes_max", Bounds::new(1024, 4096), |c| Some(c.size)),
        Bounded::new("limit_ms", Bounds::new(1, 10), |c| c.limit),
    ];

    #[test]
    fn a_value_outside_its_range_is_refused_naming_key_value_and_range() {
        let ok = Demo {
            size: 1024,
            limit: None,
        };
        assert_eq!(check_bounds(&ok, TABLE), Ok(()));
        let big = Demo {
            size: u64::MAX,
            limit: None,
        };
        let reason = check_bounds(&big, TABLE).expect_err("too big");
        assert_eq!(
            reason,
            format!("size_bytes_max must be 1024 to 4096, not {}", u64::MAX)
        );
        let zero = Demo {
            size: 2048,
            limit: Some(0),
        };
        assert!(check_bounds(&zero, TABLE)
            .expect_err("zero")
            .contains("limit_ms"));
        assert_eq!(bounds_of(TABLE, "limit_ms"), Some(Bounds::new(1, 10)));
        assert_eq!(bounds_of(TABLE, "nothing"), None);
    }
}
