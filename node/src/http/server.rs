//! The HTTP server around the router: hyper with limits the default `axum::serve` does not set.
//! A client gets 10 s to send its request headers (slow-header clients are cut off), at most
//! 64 KiB of headers and 100 header lines (431 beyond); each connection's address reaches the
//! handlers as `ConnectInfo`. On shutdown, open requests get 10 s to finish.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Layer;

/// Time a client has to send its request line and headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of request headers (hyper answers 431 beyond).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
pub const MAX_HEADERS: usize = 100;
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `cancel` fires. With `fast`, connections start on the
/// zero-copy path for HLS ladder files ([`super::fastpath`]) and move to hyper at their first
/// other request.
pub async fn serve(listener: TcpListener, app: Router, cancel: CancellationToken, fast: Option<super::fastpath::FastPath>) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).max_buf_size(MAX_HEADER_BYTES).max_headers(MAX_HEADERS);
    builder.http2().timer(TokioTimer::new()).max_header_list_size(MAX_HEADER_BYTES as u32);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, addr) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(axum::Extension(ConnectInfo::<SocketAddr>(addr)).layer(app.clone()));
        let (builder, watcher, fast, cancel) = (builder.clone(), graceful.watcher(), fast.clone(), cancel.clone());
        tokio::spawn(async move {
            let io = match &fast {
                Some(f) => match f.serve(stream, &cancel).await {
                    Some(io) => io,
                    None => return,
                },
                None => super::fastpath::Rewind::new(stream),
            };
            let conn = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned());
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::info!("HTTP connections still open at shutdown were closed"),
    }
}
