//! Every request any app received, as received, in arrival order: tests assert what the
//! server saw (headers, idempotency keys, bodies), not only what the client reported.
//! Only the latest [`MAX_ENTRIES`] are kept.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::config::FaultKind;
use super::lock;

/// One request and how it ended.
#[derive(Debug, Clone)]
pub struct JournalEntry {
    /// Arrival number, from 1, never reused (also not after `clear_journal`).
    pub seq: u64,
    /// "crm" or "billing".
    pub app: String,
    /// Arrival time since the server started (monotonic clock).
    pub at: Duration,
    pub method: String,
    /// Path without the query, e.g. "/crm/contacts".
    pub path: String,
    pub query: Option<String>,
    /// Header names in lower case, values as lossy UTF-8, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as lossy UTF-8.
    pub body: String,
    /// The status sent; 0 while in flight and when no response was sent (reset).
    pub status: u16,
    pub fault: Option<FaultKind>,
}

impl JournalEntry {
    pub fn to_json(&self) -> Value {
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        json!({
            "seq": self.seq,
            "app": self.app,
            "at_ms": self.at.as_secs_f64() * 1000.0,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": headers,
            "body": self.body,
            "status": self.status,
            "fault": self.fault.as_ref().map(FaultKind::name),
        })
    }
}

/// The shared journal of all apps.
#[derive(Debug)]
pub struct Journal {
    started: Instant,
    inner: Mutex<Entries>,
}

/// The journal keeps at most this many entries, dropping the oldest: a sandbox left
/// running for days under a load test must not grow without bound.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Default)]
struct Entries {
    next_seq: u64,
    /// Sorted by `seq`, since seqs are handed out under the same lock as the push.
    entries: VecDeque<JournalEntry>,
}

/// What is known of a request when it arrives.
pub struct Arrival {
    pub app: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Journal {
    pub fn new() -> Journal {
        Journal {
            started: Instant::now(),
            inner: Mutex::new(Entries::default()),
        }
    }

    /// Records an arriving request (status 0 until `finish`); returns its seq.
    pub fn arrive(&self, arrival: Arrival) -> u64 {
        let at = self.started.elapsed();
        let mut inner = lock(&self.inner);
        inner.next_seq += 1;
        let seq = inner.next_seq;
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.pop_front();
        }
        inner.entries.push_back(JournalEntry {
            seq,
            app: arrival.app,
            at,
            method: arrival.method,
            path: arrival.path,
            query: arrival.query,
            headers: arrival.headers,
            body: arrival.body,
            status: 0,
            fault: None,
        });
        seq
    }

    /// Records how request `seq` ended (status 0: no response was sent). An entry
    /// cleared in the meantime stays cleared.
    pub fn finish(&self, seq: u64, status: u16, fault: Option<FaultKind>) {
        let mut inner = lock(&self.inner);
        if let Ok(index) = inner.entries.binary_search_by_key(&seq, |e| e.seq) {
            inner.entries[index].status = status;
            inner.entries[index].fault = fault;
        }
    }

    pub fn entries(&self) -> Vec<JournalEntry> {
        lock(&self.inner).entries.iter().cloned().collect()
    }

    pub fn clear(&self) {
        lock(&self.inner).entries.clear();
    }
}
