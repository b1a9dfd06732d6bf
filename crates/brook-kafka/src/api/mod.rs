//! One module per Kafka API (or family of APIs): each turns a decoded request into a response
//! body by calling the broker or the door's own state.

pub(crate) mod acls;
pub(crate) mod admin;
pub(crate) mod api_versions;
pub(crate) mod cluster;
pub(crate) mod commits;
pub(crate) mod configs;
pub(crate) mod consumer_groups;
pub(crate) mod fetch;
pub(crate) mod group_admin;
pub(crate) mod groups;
pub(crate) mod init_producer_id;
pub(crate) mod metadata;
pub(crate) mod offsets;
pub(crate) mod produce;
pub(crate) mod sasl;
pub(crate) mod scram;
pub(crate) mod txn;
pub(crate) mod txn_admin;
