//! Container output: a bounded buffer per container instance, kept by container ID so the status's
//! `containerID`s say which instance (current or previous) a log request reads.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// How much output one container instance keeps; older lines are dropped first.
pub const DEFAULT_LOG_LIMIT: usize = 1024 * 1024;

/// One chunk of output up to and including a newline (or a trailing fragment), with when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub seq: u64,
    pub timestamp: String,
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    bytes: usize,
    next_seq: u64,
    finished: bool,
}

/// The output of one container instance. Writers append; followers wait for `changed`.
#[derive(Debug)]
pub struct LogBuffer {
    ring: Mutex<Ring>,
    limit: usize,
    changed: watch::Sender<u64>,
}

impl LogBuffer {
    pub fn new(limit: usize) -> Self {
        Self { ring: Mutex::new(Ring::default()), limit, changed: watch::channel(0).0 }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends output read at `timestamp`, split into lines.
    pub fn append(&self, timestamp: &str, data: &[u8]) {
        let mut ring = self.lock();
        for piece in data.split_inclusive(|b| *b == b'\n') {
            let seq = ring.next_seq;
            ring.next_seq += 1;
            ring.bytes += piece.len();
            ring.lines.push_back(LogLine { seq, timestamp: timestamp.to_string(), data: piece.to_vec() });
        }
        while ring.bytes > self.limit {
            match ring.lines.pop_front() {
                Some(old) => ring.bytes -= old.data.len(),
                None => break,
            }
        }
        let next = ring.next_seq;
        drop(ring);
        self.changed.send_replace(next);
    }

    /// Marks the instance ended: followers stop after the last line.
    pub fn finish(&self) {
        self.lock().finished = true;
        self.changed.send_modify(|_| {});
    }

    /// Lines with `seq >= from`, and whether the instance has ended.
    pub fn read_from(&self, from: u64) -> (Vec<LogLine>, bool) {
        let ring = self.lock();
        (ring.lines.iter().filter(|l| l.seq >= from).cloned().collect(), ring.finished)
    }

    /// The sequence number where the last `lines` lines start.
    pub fn tail_start(&self, lines: usize) -> u64 {
        let ring = self.lock();
        let skip = ring.lines.len().saturating_sub(lines);
        ring.lines.get(skip).map_or(ring.next_seq, |l| l.seq)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Every kept container instance's output, by container ID, and which IDs belong to which pod.
#[derive(Debug, Clone, Default)]
pub struct LogBook {
    inner: Arc<Mutex<LogIndex>>,
}

#[derive(Debug, Default)]
struct LogIndex {
    buffers: HashMap<String, Arc<LogBuffer>>,
    /// (pod uid, container name) → container IDs, oldest first; only the last two are kept.
    instances: HashMap<(String, String), VecDeque<String>>,
}

impl LogBook {
    fn lock(&self) -> MutexGuard<'_, LogIndex> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the buffer of a new instance, forgetting instances older than the previous one.
    pub fn start_instance(&self, pod_uid: &str, container: &str, container_id: &str, limit: usize) -> Arc<LogBuffer> {
        let buffer = Arc::new(LogBuffer::new(limit));
        let mut index = self.lock();
        index.buffers.insert(container_id.to_string(), buffer.clone());
        let ids = index.instances.entry((pod_uid.to_string(), container.to_string())).or_default();
        ids.push_back(container_id.to_string());
        let dropped: Vec<String> = if ids.len() > 2 { ids.drain(..ids.len() - 2).collect() } else { Vec::new() };
        for id in dropped {
            index.buffers.remove(&id);
        }
        buffer
    }

    pub fn get(&self, container_id: &str) -> Option<Arc<LogBuffer>> {
        self.lock().buffers.get(container_id).cloned()
    }

    /// Forgets a deleted pod's output.
    pub fn remove_pod(&self, pod_uid: &str) {
        let mut index = self.lock();
        let keys: Vec<(String, String)> = index.instances.keys().filter(|(uid, _)| uid == pod_uid).cloned().collect();
        for key in keys {
            for id in index.instances.remove(&key).unwrap_or_default() {
                if let Some(buffer) = index.buffers.remove(&id) {
                    buffer.finish();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_split_lines_and_drop_the_oldest_beyond_the_limit() {
        let b = LogBuffer::new(10);
        b.append("t", b"abc\ndef\ngh");
        let (lines, finished) = b.read_from(0);
        let texts: Vec<&[u8]> = lines.iter().map(|l| l.data.as_slice()).collect();
        assert_eq!(texts, [&b"abc\n"[..], b"def\n", b"gh"]);
        assert!(!finished);
        b.append("t", b"1234\n");
        let (lines, _) = b.read_from(0);
        assert_eq!(lines.first().unwrap().data, b"gh");
        assert_eq!(b.tail_start(1), 3);
        assert_eq!(b.read_from(b.tail_start(2)).0.len(), 2);
        b.finish();
        assert!(b.read_from(0).1);
    }

    #[test]
    fn the_book_keeps_current_and_previous_instances() {
        let book = LogBook::default();
        book.start_instance("pod", "c", "id1", 100);
        book.start_instance("pod", "c", "id2", 100);
        assert!(book.get("id1").is_some());
        book.start_instance("pod", "c", "id3", 100);
        assert!(book.get("id1").is_none() && book.get("id2").is_some() && book.get("id3").is_some());
        book.remove_pod("pod");
        assert!(book.get("id3").is_none());
    }
}
