//! The portal's limits on request heads, shared by hyper's configuration and the zero-copy path.

use std::time::Duration;

/// Time a client has to send its whole request head (request line and headers).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of request headers (hyper answers 431 beyond).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header lines (431 beyond).
pub const MAX_HEADERS: usize = 100;
