//! Tasks that end with their owner.

use tokio::task::JoinHandle;

/// Aborts the task when dropped, so that dropping its owner (a controller
/// run ended at the Lease's expiry, an election of a killed replica in
/// tests) also stops what it spawned.
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
