//! What a record needs, and the records of it: intents' deterministic keys, dead
//! letters with the exchange that failed.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::Request;
use crate::store::{now_text, Completion, DeadLetter, Exchange, Intent, Operation};

use super::mapper::Mapped;

/// What one source record needs.
#[derive(Debug)]
pub enum Decision {
    /// Its mapped fields hash to the base: no write.
    Unchanged,
    /// Nothing to do now (a pending write covers it, or a tombstone handled later).
    Skip,
    /// A `ref()` is not mapped yet: keep the record for the next run.
    Wait { source_id: String, record: Value },
    /// Settled without a write: linked to an equal target record, or dead-lettered.
    Settle(Completion),
    /// A write to record in the outbox and send.
    Write(Intent),
    /// The target has never seen this record from us: look for it (`match_on`)
    /// before creating it.
    Match {
        source_id: String,
        mapped: Mapped,
        record: Value,
    },
    /// A line for a JSON-lines target; `known` when an earlier line had the record.
    Line {
        source_id: String,
        mapped: Mapped,
        known: bool,
    },
}

/// The deterministic key of an intended write: the same decision about the same
/// record state always gets the same key, which the target sees as the idempotency
/// key.
pub fn intent_key(
    stream: &str,
    source_id: &str,
    op: Operation,
    hash: &str,
    base_hash: Option<&str>,
) -> String {
    let mut digest = Sha256::new();
    for part in [
        stream,
        source_id,
        op.as_str(),
        hash,
        base_hash.unwrap_or("-"),
    ] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    digest.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A dead letter for `source_id`, first seen now.
pub fn dead_letter(
    stream: &str,
    source_id: &str,
    reason: String,
    exchange: Option<Exchange>,
    record: Value,
) -> Box<DeadLetter> {
    let now = now_text();
    Box::new(DeadLetter {
        stream: stream.to_string(),
        source_id: source_id.to_string(),
        reason,
        in_doubt: false,
        exchange,
        attempts: 1,
        first_at: now.clone(),
        last_at: now,
        record,
    })
}

/// The request (and answer) of a failed write, for its dead letter.
pub fn exchange(
    request: &Request,
    url: &str,
    status: Option<u16>,
    response: Option<String>,
) -> Exchange {
    Exchange {
        method: request.method.as_str().to_string(),
        url: url.to_string(),
        body: request.body.clone().unwrap_or(Value::Null),
        status,
        response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_keys_are_deterministic_and_distinct() {
        let a = intent_key("contacts", "c1", Operation::Create, "h1", None);
        assert_eq!(
            a,
            intent_key("contacts", "c1", Operation::Create, "h1", None)
        );
        assert_eq!(a.len(), 32);
        assert_ne!(
            a,
            intent_key("contacts", "c1", Operation::Update, "h1", None)
        );
        assert_ne!(
            a,
            intent_key("contacts", "c2", Operation::Create, "h1", None)
        );
        assert_ne!(
            a,
            intent_key("contacts", "c1", Operation::Create, "h1", Some("h0"))
        );
    }
}
