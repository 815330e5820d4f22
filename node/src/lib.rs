//! The youke appliance: one binary for the school, city and province tiers.
//!
//! - [`config`]: the TOML config with environment and flag overrides.
//! - [`store`]: the SQLite database, its migrations and shared helpers.
//! - [`documents`]: the CRDT document store shared by every kind, with routing for sync.
//! - [`lessons`]: lesson documents and their rows; [`catalog`]: collections, announcements,
//!   competitions; [`competitions`]: the competition workflow (entries, experts, results).
//! - [`ftp`]: the FTP endpoint recording hosts publish to (into the import folder).
//! - [`ingest`]: the watched import folder, sidecars and file-name patterns, the quarantine.
//! - [`import`]: turning a recording file into a lesson (probe, blob, document).
//! - [`replication`]: the node's side of federation links ([`youke_federation::sync::ChildStore`], [`youke_federation::sync::ParentStore`]).
//! - [`media_jobs`]: the background queue that transcodes recordings to HLS ladders.
//! - [`pull`]: pull-through viewing of media held upstream, its cache and prefetch.
//! - [`link_settings`]: the uplink's media rate schedule (config, API, CLI) and blob housekeeping.
//! - [`indexer`]: keeps the search index up to date with the database.
//! - [`http`]: the portal pages and the JSON API.
//! - [`passwords`]: argon2id hashes and the bounded pool that checks sign-in passwords.
//! - [`trust`]: join tokens, enrolled children and revocations (the federation PKI's node side).
//! - [`context`]: a node's storage and identity ([`NodeCtx`]), the data directory's lock, [`NodeError`].
//! - [`services`]: the composition root that starts and stops all of the above.
//! - [`disk`]: room on disk for uploads (free space less a reserve and what is promised).
//! - [`forecast`]: the storage forecast for the next semester (COURSE-STANDARD.md's formula).
//! - [`health`]: the node tree with link health, sync lag and queues (admin console, reported up).
//! - [`status`], [`demo`]: operator commands.

pub mod accounts;
pub mod bench;
pub mod bench_media;
pub mod bench_portal;
pub mod bench_search;
pub mod bench_signin;
pub mod bench_transcode;
pub mod catalog;
pub mod competition_entries;
pub mod competitions;
pub mod backup;
pub mod blob_index;
pub mod config;
pub mod context;
pub mod demo;
pub mod disk;
pub mod documents;
pub mod forecast;
pub mod ftp;
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
pub mod passwords;
pub mod pull;
pub mod replication;
pub mod services;
pub mod status;
pub mod storage;
pub mod store;
pub mod sync_state;
pub mod systemd;
pub mod trust;
pub mod units;
pub mod uploads;

pub use context::{NodeCtx, NodeError};
pub use services::{Node, RunningNode};
