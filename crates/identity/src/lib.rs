//! Workload identity for trawl's records: which pod, service or external
//! endpoint an IP address (and port) belonged to at a given time, and
//! which DNS name it answered for in the capture. The indexer calls
//! [`Resolver::apply`] on every call at index time to fill `src`/`dst`
//! `name`, `namespace`, `pod`, `service`, `dns`, `labels`, `resolved_by`
//! and the call's `namespaces`, `pods` and `services` lists.
//!
//! Sources, strongest first: a workloads file ([`Workloads`], see
//! [`workloads`] for the format; later also written by a Kubernetes
//! watcher), then names learned from DNS answers in the traffic
//! ([`DnsLearner`]).
//!
//! # Which DNS mode the indexer should use
//!
//! Two passes. The indexer shards flows by hash, so a DNS lookup and the
//! connection that uses its answer usually land in different shards, and
//! a shard emits calls when they complete, not in timestamp order: in the
//! streaming mode ([`Resolver::learn_and_apply`]) a shard knows only the
//! names its own shard happened to see, earlier. Instead:
//!
//! 1. Learn: run the DNS calls of the whole capture through one
//!    [`DnsLearner`] per shard (DNS is a few percent of the traffic:
//!    a pre-scan that feeds only port-53 packets to a pipeline is enough),
//!    then [`DnsLearner::merge`] them; sightings are kept sorted by time,
//!    so the arrival order does not matter.
//! 2. Apply: build one `Resolver::new(workloads).with_dns(learner)` and
//!    share it (`&Resolver` is `Sync`) while indexing, calling
//!    [`Resolver::apply`] on each call before it is written.
//!
//! The streaming mode suits a single ordered stream (`trawl dissect`, a
//! live tap) where a lookup is always seen before its connection.
//!
//! `apply` copies names into the call's `String`s (and clones labels); an
//! indexer that writes Arrow columns straight from a [`Resolver::resolve`]
//! answer (borrowed `&str`s) skips those copies. An unknown address costs
//! two hash lookups and allocates nothing either way
//! (`cargo run --release -p trawl-identity --example resolve_speed`).
//!
//! This crate reads no packets and no clock: time comes from the calls.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod dns;
pub mod resolver;
pub mod workloads;

pub use dns::{DnsLearner, DnsStats, Sighting};
pub use resolver::{Identity, Resolver, Source};
pub use workloads::{
    Problem, Workload, WorkloadEntry, WorkloadKind, Workloads, WorkloadsError, WorkloadsFile,
};
