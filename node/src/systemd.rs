//! systemd's service notification protocol (sd_notify(3)) without libsystemd: one datagram per
//! message to the socket named in `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace). Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing.
//!
//! The unit is `Type=notify` with `WatchdogSec=`: `youke serve` says `READY=1` once its
//! listeners are bound, then `WATCHDOG=1` at half the watchdog interval for as long as its
//! database answers a read, so a node wedged on its disk is restarted; `STOPPING=1` at shutdown.

use crate::context::NodeCtx;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The notification socket's address, if this process runs under systemd.
fn socket_addr() -> Option<SocketAddr> {
    parse_socket(std::env::var_os("NOTIFY_SOCKET")?.to_str()?)
}

/// A `$NOTIFY_SOCKET` value as an address: an absolute path, or `@name` (abstract).
fn parse_socket(name: &str) -> Option<SocketAddr> {
    if let Some(abstract_name) = name.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(abstract_name.as_bytes()).ok()
    } else if name.starts_with('/') {
        SocketAddr::from_pathname(name).ok()
    } else {
        None
    }
}

/// Sends `message` (newline-separated `KEY=value` lines) to systemd. `Ok(false)` when not under
/// systemd.
pub fn notify(message: &str) -> std::io::Result<bool> {
    let Some(addr) = socket_addr() else { return Ok(false) };
    send(&addr, message)?;
    Ok(true)
}

fn send(addr: &SocketAddr, message: &str) -> std::io::Result<()> {
    UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), addr)?;
    Ok(())
}

/// [`notify`], with a failure logged rather than returned (systemd gone is no reason to stop).
pub fn tell(message: &str) {
    if let Err(e) = notify(message) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, when it is meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    interval_of(std::env::var("WATCHDOG_USEC").ok().as_deref(), std::env::var("WATCHDOG_PID").ok().as_deref(), std::process::id())
}

/// Half of `usec` when the watchdog is set for process `me` (no `pid`: for whoever reads it).
fn interval_of(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.parse::<u32>().ok() != Some(me)) {
        return None;
    }
    let usec: u64 = usec?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog until `cancel` fires, each time after the database answered a read
/// within the interval (a hung disk stops the pings and systemd restarts the node).
pub async fn watchdog(ctx: Arc<NodeCtx>, interval: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let c = Arc::clone(&ctx);
        let probe = tokio::task::spawn_blocking(move || c.store.ping());
        match tokio::time::timeout(interval, probe).await {
            Ok(Ok(Ok(_))) => tell("WATCHDOG=1"),
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the database does not answer; not pinging the watchdog"),
            Ok(Err(e)) => tracing::error!(error = %e, "watchdog probe failed"),
            Err(_) => tracing::error!(?interval, "the database did not answer within the watchdog interval"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_notify_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).expect("bind");
        listener.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let addr = parse_socket(path.to_str().expect("utf-8")).expect("a path");
        send(&addr, "READY=1\nSTATUS=serving").expect("sent");
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving");
        assert!(parse_socket("@youke-notify").is_some_and(|a| a.as_pathname().is_none()));
        assert!(parse_socket("relative/path").is_none());
    }

    #[test]
    fn the_watchdog_is_pinged_at_half_its_interval_when_meant_for_us() {
        assert_eq!(interval_of(Some("3000000"), None, 7), Some(Duration::from_millis(1500)));
        assert_eq!(interval_of(Some("3000000"), Some("7"), 7), Some(Duration::from_millis(1500)));
        assert_eq!(interval_of(Some("3000000"), Some("8"), 7), None);
        assert_eq!(interval_of(Some("0"), None, 7), None);
        assert_eq!(interval_of(Some("soon"), None, 7), None);
        assert_eq!(interval_of(None, None, 7), None);
    }
}
