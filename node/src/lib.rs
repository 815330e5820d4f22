//! The youke appliance: one binary for the school, city and province tiers.
//!
//! Read bottom-up (each layer imports only those above it in this list); docs/ARCHITECTURE.md
//! has the whole map and which module owns which table.
//!
//! - Foundations: [`config`], [`units`], [`store`] (the SQLite pool, migrations, `meta`),
//!   [`context`] ([`NodeCtx`], [`NodeError`], the data directory's lock).
//! - Tables, one owner each: [`documents`] (the CRDT document store and its scope rule, with
//!   the [`documents::Schema`] trait kinds implement), [`sync_state`] (peers, cursors, link
//!   state, the upload queue), [`blob_index`], [`competition_entries`], [`accounts`],
//!   [`resumable_uploads`] (the tus protocol's uploads, apart from the replication queue), [`media_jobs`], [`health`].
//! - Kinds: [`lessons`], [`catalog`] (collections, announcements, competitions), [`trust`]
//!   (join tokens, enrolled children, revocations), listed in [`kinds`]; the competition
//!   workflow in [`competitions`].
//! - Work: [`import`], [`ingest`] and [`ftp`] (the import folder), [`indexer`] (search),
//!   [`replication`] (the federation's stores over the node's tables), [`pull_through`] (pull-through
//!   viewing, its cache and prefetch), [`link_settings`], [`backup`], [`object_storage`],
//!   [`forecast`], [`status`], [`provision`] (init, enroll, setup), [`disk`], [`passwords`].
//! - The portal and API: [`http`]. The composition root: [`services`] ([`Node::spawn`]).
//! - Beside the appliance: [`harness`] (the demo and the benchmarks).

pub mod accounts;
pub mod catalog;
pub mod competition_entries;
pub mod competitions;
pub mod backup;
pub mod blob_index;
pub mod config;
pub mod context;
pub mod disk;
pub mod documents;
pub mod forecast;
pub mod ftp;
pub mod harness;
pub mod health;
pub mod http;
pub mod import;
pub mod ingest;
pub mod kinds;
pub mod indexer;
pub mod lessons;
pub mod link_settings;
pub mod media_jobs;
pub mod name_pattern;
pub mod object_storage;
pub mod passwords;
pub mod provision;
pub mod pull_through;
pub mod replication;
pub mod resumable_uploads;
pub mod reviewing;
pub mod services;
pub mod status;
pub mod store;
pub mod sync_state;
pub mod systemd;
pub mod trust;
pub mod units;
pub mod viewing;
pub mod views;

pub use context::{NodeCtx, NodeError};
pub use services::{Node, RunningNode};
