//! Waiting for a deadline that may not be set, the shape of every debounce loop here.

use tokio::time::Instant;

/// Completes at `at`; never, when there is no deadline.
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
