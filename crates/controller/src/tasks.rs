//! Tasks that end with their owner.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
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

/// The items of a stream that a task of its own polls, up to a capacity
/// ahead of the consumer; the task ends when either side does.
///
/// A watch reads ahead so that reading and decoding the next page of a list
/// (or the next events) overlaps with the consumer's work on the last: polled
/// in line, the list of a large fleet alternates between the API server and
/// the controller, each waiting on the other.
pub struct ReadAhead<T> {
    items: mpsc::Receiver<T>,
    _reader: AbortOnDrop<()>,
}

/// Polls `stream` in a task of its own, at most `capacity` items ahead.
pub fn read_ahead<S>(stream: S, capacity: usize) -> ReadAhead<S::Item>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    let (sender, items) = mpsc::channel(capacity);
    let reader = tokio::spawn(async move {
        // An error here only says the consumer is gone, which ends the reader.
        let _ = stream.map(Ok).forward(sender).await;
    });
    ReadAhead { items, _reader: AbortOnDrop(reader) }
}

impl<T> Stream for ReadAhead<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().items.poll_next_unpin(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn items_arrive_in_order_and_the_stream_ends_with_its_source() {
        let items: Vec<u32> = read_ahead(futures::stream::iter(0..2000), 16).collect().await;
        assert_eq!(items, (0..2000).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_reader_runs_ahead_of_the_consumer_up_to_its_capacity() {
        let produced = Arc::new(AtomicUsize::new(0));
        let counter = produced.clone();
        let source = futures::stream::iter(0..100).inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let mut ahead = read_ahead(source, 10);
        assert_eq!(ahead.next().await, Some(0));
        // Without another poll of the consumer, the reader fills the channel.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while produced.load(Ordering::SeqCst) < 11 && tokio::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        let read = produced.load(Ordering::SeqCst);
        assert!((11..=13).contains(&read), "the reader read {read} items ahead of one consumed");
        assert_eq!(ahead.next().await, Some(1));
    }

    #[tokio::test]
    async fn dropping_the_consumer_stops_the_reader() {
        let (sender, receiver) = futures::channel::oneshot::channel::<()>();
        struct Dropped(Option<futures::channel::oneshot::Sender<()>>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                if let Some(sender) = self.0.take() {
                    let _ = sender.send(());
                }
            }
        }
        let guard = Dropped(Some(sender));
        // A source that never ends and holds the guard until its task is dropped.
        let source = futures::stream::pending::<u32>().map(move |item| {
            let _ = &guard;
            item
        });
        let ahead = read_ahead(source, 4);
        drop(ahead);
        tokio::time::timeout(std::time::Duration::from_secs(30), receiver)
            .await
            .expect("the reader task was not stopped")
            .expect("the guard was dropped without a signal");
    }
}
