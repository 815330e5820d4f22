//! The FTP endpoint recording hosts publish to (libunftp), with the school's account.
//!
//! Uploads land in a staging folder (`<import>/.ftp/`, not watched). When a STOR or APPE
//! finishes, the file moves into the watched import folder, which imports it like any other.
//! An upload cut mid-way stays in staging, where the recording host can resume it (REST/APPE);
//! one left untouched for [`FtpConfig::stale_secs`] is quarantined as never completed.

use crate::config::FtpConfig;
use crate::context::NodeCtx;
use async_trait::async_trait;
use libunftp::notification::{DataEvent, DataListener, EventMeta};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use unftp_core::auth::{AuthenticationError, Authenticator, Credentials, Principal};
use unftp_sbe_fs::Filesystem;

/// The one account of this node: user name and password from the config (compared by hash, in
/// constant time).
#[derive(Debug)]
struct Account {
    user: String,
    password: String,
}

#[async_trait]
impl Authenticator for Account {
    async fn authenticate(&self, username: &str, creds: &Credentials) -> Result<Principal, AuthenticationError> {
        let given = creds.password.as_deref().unwrap_or("");
        // blake3::Hash compares in constant time.
        let same = (blake3::hash(username.as_bytes()) == blake3::hash(self.user.as_bytes())) & (blake3::hash(given.as_bytes()) == blake3::hash(self.password.as_bytes()));
        if same {
            Ok(Principal { username: username.to_string() })
        } else {
            tracing::warn!(user = %username.chars().take(64).collect::<String>(), ip = %creds.source_ip, "FTP login refused");
            Err(AuthenticationError::BadPassword)
        }
    }
}

/// Moves finished uploads into the watched folder.
#[derive(Debug)]
struct Finished {
    staging: PathBuf,
    inbox: PathBuf,
}

#[async_trait]
impl DataListener for Finished {
    async fn receive_data_event(&self, e: DataEvent, m: EventMeta) {
        if let DataEvent::Put { path, bytes } = e {
            let rel = path.trim_start_matches('/');
            let from = self.staging.join(rel);
            let Some(name) = from.file_name().map(|n| n.to_os_string()) else { return };
            let to = self.inbox.join(&name);
            match std::fs::rename(&from, &to) {
                Ok(()) => tracing::info!(user = %m.username, file = %to.display(), bytes, "FTP upload finished"),
                Err(e) => tracing::warn!(file = %from.display(), error = %e, "cannot move a finished FTP upload into the import folder"),
            }
        }
    }
}

/// Runs the FTP endpoint until `cancel` fires. `inbox` is the watched import folder.
pub async fn serve(ctx: Arc<NodeCtx>, cfg: FtpConfig, inbox: PathBuf, cancel: CancellationToken) {
    let (Some(listen), Some(user), Some(password)) = (cfg.listen, cfg.user.clone(), cfg.password.clone()) else { return };
    let staging = inbox.join(".ftp");
    if let Err(e) = std::fs::create_dir_all(&staging) {
        tracing::error!(dir = %staging.display(), error = %e, "cannot create the FTP folder; FTP is off");
        return;
    }
    if let Err(e) = Filesystem::new(&staging) {
        tracing::error!(dir = %staging.display(), error = %e, "cannot open the FTP folder; FTP is off");
        return;
    }
    let root = staging.clone();
    let server = libunftp::ServerBuilder::with_authenticator(
        Box::new(move || {
            let _ = std::fs::create_dir_all(&root);
            // Opened once successfully at start; if the folder vanished since, this session
            // ends (the panic stays in its task) and the next one tries again.
            #[allow(clippy::expect_used)]
            Filesystem::new(&root).expect("the FTP folder is gone")
        }),
        Arc::new(Account { user, password }),
    )
    .greeting("优课 Youke: publish recordings here")
    .passive_ports(cfg.passive_ports.0..=cfg.passive_ports.1)
    .idle_session_timeout(600)
    .notify_data(Finished { staging: staging.clone(), inbox: inbox.clone() })
    .shutdown_indicator({
        let cancel = cancel.clone();
        async move {
            cancel.cancelled().await;
            libunftp::options::Shutdown::new().grace_period(Duration::from_secs(2))
        }
    })
    .build();
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the FTP endpoint cannot start");
            return;
        }
    };
    tracing::info!(%listen, "FTP endpoint for recording hosts");
    let sweeper = tokio::spawn(sweep(ctx, staging, inbox, Duration::from_secs(cfg.stale_secs), cancel.clone()));
    if let Err(e) = server.listen(listen.to_string()).await {
        tracing::error!(%listen, error = %e, "the FTP endpoint stopped");
    }
    sweeper.abort();
}

/// Quarantines uploads left incomplete for `stale`.
async fn sweep(ctx: Arc<NodeCtx>, staging: PathBuf, inbox: PathBuf, stale: Duration, cancel: CancellationToken) {
    loop {
        let (c, s, i) = (Arc::clone(&ctx), staging.clone(), inbox.clone());
        let _ = tokio::task::spawn_blocking(move || sweep_once(&c, &s, &i, stale)).await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1).max(stale / 10).min(Duration::from_secs(60))) => {}
        }
    }
}

fn sweep_once(ctx: &NodeCtx, staging: &Path, inbox: &Path, stale: Duration) {
    let Ok(entries) = std::fs::read_dir(staging) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let old = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok()).is_some_and(|age| age >= stale);
        if path.is_file() && old {
            let reason = format!("the FTP upload never completed (no data for {} s); the recording host should send it again", stale.as_secs());
            if let Err(e) = crate::ingest::quarantine(ctx, inbox, &path, &reason) {
                tracing::warn!(file = %path.display(), error = %e, "cannot quarantine an incomplete upload");
            }
        }
    }
}
