//! Following the dev cluster's own change feed in the bench process: the benches see each change
//! the moment it is committed, without a watch through the API that would cost the machine under
//! test a serialization and a decode of every change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use devcluster::store::Change;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

/// What the follower sees next.
pub enum Followed<'a> {
    Change(&'a Change),
    /// The follower fell behind the feed; the changes it missed are counted in `missed`, and any
    /// makes the bench's figures wrong.
    Missed,
}

/// Calls `each` with every change of `resource` in `group` from `live`, until the feed closes.
pub async fn follow(
    mut live: Receiver<Change>,
    group: &'static str,
    resource: &'static str,
    missed: Arc<AtomicU64>,
    mut each: impl FnMut(Followed<'_>),
) {
    loop {
        match live.recv().await {
            Ok(change) if change.key.group == group && change.key.resource == resource => {
                each(Followed::Change(&change));
            }
            Ok(_) => {}
            Err(RecvError::Lagged(count)) => {
                missed.fetch_add(count, Ordering::Relaxed);
                each(Followed::Missed);
            }
            Err(RecvError::Closed) => return,
        }
    }
}
