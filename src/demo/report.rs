//! The closing report: what the state store recorded and what billing really holds,
//! read back after the runs — not what the runs claimed — and the verdict.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::Value;

use super::check::TargetCheck;
use super::pipeline::STREAM;
use super::runs::{Finished, Killed, Traffic};
use super::scenario::{Scenario, ACCESS_TTL};
use crate::store::{DeadLetter, RunRecord, Store, StoreResult, StreamCounts};

/// Longest dead-letter reason shown; `runner dead-letters FILE list` has them whole.
const REASON_CHARS: usize = 110;

/// What the state store holds after the runs.
#[derive(Debug)]
pub struct StoreFacts {
    /// Oldest first.
    pub runs: Vec<RunRecord>,
    pub mapped: u64,
    pub pending: u64,
    pub dead_letters: Vec<DeadLetter>,
}

impl StoreFacts {
    pub fn read(store: &dyn Store) -> StoreResult<StoreFacts> {
        let mut runs = store.runs(20)?;
        runs.reverse();
        Ok(StoreFacts {
            runs,
            mapped: store.mapped_count(STREAM)?,
            pending: store.pending_count(STREAM)?,
            dead_letters: store.dead_letters(Some(STREAM))?,
        })
    }

    /// The demo stream's counts in run `index` (0 = the first run).
    fn counts(&self, index: usize) -> StreamCounts {
        self.runs
            .get(index)
            .and_then(|run| run.streams.iter().find(|s| s.stream == STREAM))
            .cloned()
            .unwrap_or_default()
    }
}

/// The three runs, as the demo drove them.
#[derive(Debug)]
pub struct Runs {
    pub killed: Killed,
    pub resumed: Finished,
    pub again: Finished,
    /// Creates of the killed run that the resumed run sent again, under the same
    /// idempotency key.
    pub resent: usize,
    /// Everything the sandbox saw, all runs together.
    pub total: Traffic,
}

/// Everything the report says, and what went wrong.
pub struct Report<'a> {
    pub scenario: &'a Scenario,
    pub store: StoreFacts,
    pub target: TargetCheck,
    pub runs: Runs,
}

impl Report<'_> {
    /// What contradicts "every contact is in billing exactly once, and nothing else
    /// happened that should not": empty when the demo succeeded.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut say = |failed: bool, text: String| {
            if failed {
                problems.push(text);
            }
        };
        let target = &self.target;
        say(
            target.duplicates() > 0,
            format!(
                "{} duplicate customers in billing ({} by crm_id, {} by email)",
                target.duplicates(),
                target.duplicates_by_crm_id,
                target.duplicates_by_email
            ),
        );
        say(
            !target.missing.is_empty(),
            format!(
                "{} contacts have no customer: {}",
                target.missing.len(),
                sample(&target.missing)
            ),
        );
        say(
            !target.different.is_empty(),
            format!(
                "{} customers differ from their contact: {}",
                target.different.len(),
                sample(&target.different)
            ),
        );
        say(
            target.strays > 0,
            format!("{} customers belong to no contact", target.strays),
        );
        say(
            self.store.mapped != target.synced as u64,
            format!(
                "the store maps {} contacts, billing mirrors {}",
                self.store.mapped, target.synced
            ),
        );
        say(
            self.store.pending > 0,
            format!(
                "{} writes are still pending in the outbox",
                self.store.pending
            ),
        );
        say(
            self.runs.killed.after_creates.is_none(),
            "run 1 ended before it could be killed: no crash was shown".to_string(),
        );
        let letters: HashSet<&str> = self
            .store
            .dead_letters
            .iter()
            .map(|d| d.source_id.as_str())
            .collect();
        let not_refused: Vec<&String> = self
            .scenario
            .refused
            .iter()
            .filter(|id| !letters.contains(id.as_str()))
            .collect();
        say(
            !not_refused.is_empty(),
            format!(
                "contacts billing must refuse are not dead-lettered: {}",
                sample(&not_refused)
            ),
        );
        let unexpected = self.unexpected_dead_letters();
        say(
            !unexpected.is_empty(),
            format!(
                "unexpected dead letters: {}",
                sample(&unexpected.iter().map(|d| d.id()).collect::<Vec<_>>())
            ),
        );
        for (n, run) in [(2, &self.runs.resumed), (3, &self.runs.again)] {
            say(
                !matches!(run.code, Some(0) | Some(4)),
                format!("run {n} ended with exit code {:?}", run.code),
            );
        }
        let rewrites = self.runs.again.traffic.creates + self.runs.again.traffic.updates;
        say(
            rewrites > 0,
            format!("run 3 wrote {rewrites} records although nothing had changed"),
        );
        problems
    }

    fn unexpected_dead_letters(&self) -> Vec<&DeadLetter> {
        let refused = self.scenario.refused_ids();
        self.store
            .dead_letters
            .iter()
            .filter(|d| !refused.contains(&d.source_id))
            .collect()
    }

    /// The report as text: runs from the store, then the figures from billing.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("\nWhat the state store recorded (runner history):\n");
        out.push_str(&self.runs_table());
        out.push_str("\nWhat billing holds (every customer read back), and what it took:\n");
        out.push_str(&self.figures());
        out
    }

    fn runs_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  {:<3} {:<13} {:<13} {:>5} {:>8} {:>8} {:>10} {:>7} {:>10} {:>14}",
            "run",
            "command",
            "status",
            "read",
            "created",
            "updated",
            "unchanged",
            "linked",
            "recovered",
            "dead-lettered"
        );
        for (i, run) in self.store.runs.iter().enumerate() {
            let head = format!(
                "  {:<3} {:<13} {:<13}",
                run.id,
                run.command,
                run.status.as_str()
            );
            if run.streams.is_empty() {
                let _ = writeln!(out, "{head} (killed: its counts died with it)");
                continue;
            }
            let c = self.counts_of(i);
            let _ = writeln!(
                out,
                "{head} {:>5} {:>8} {:>8} {:>10} {:>7} {:>10} {:>14}",
                c.read, c.created, c.updated, c.unchanged, c.linked, c.recovered, c.dead_lettered
            );
        }
        out
    }

    fn counts_of(&self, index: usize) -> StreamCounts {
        self.store.counts(index)
    }

    fn figures(&self) -> String {
        let mut out = String::new();
        let target = &self.target;
        let total = &self.runs.total;
        let refused = self.scenario.refused.len();
        let last = self.store.runs.len().saturating_sub(1);
        let again = self.counts_of(last);
        figure(&mut out, "contacts in the CRM", self.scenario.contacts, "");
        figure(&mut out, "customers in billing", target.customers, "");
        figure(
            &mut out,
            "records synced",
            target.synced,
            &format!("every contact but the {refused} refused ones, email and name checked"),
        );
        figure(
            &mut out,
            "linked, not duplicated",
            target.linked,
            &format!(
                "of the {} customers that already existed (same email): found, updated, not created again",
                self.scenario.existing.len()
            ),
        );
        let rewritten = self.runs.again.traffic.creates + self.runs.again.traffic.updates;
        let refused_again = if again.dead_lettered > 0 {
            format!("; the {refused} refused contacts were offered again and refused again")
        } else {
            String::new()
        };
        figure(
            &mut out,
            "no-op writes skipped",
            again.unchanged,
            &format!(
                "run 3 compared every contact with what it last wrote: {rewritten} creates or updates sent{refused_again}"
            ),
        );
        figure(
            &mut out,
            "tokens refreshed",
            total.token_refreshes,
            &format!(
                "one as each run started, the rest when a {} s access token ran out mid-run ({} requests were refused for an expired token)",
                ACCESS_TTL.as_secs(),
                total.expired_tokens
            ),
        );
        figure(
            &mut out,
            "429s honoured",
            total.rate_limited,
            "each waited out its Retry-After, then runner slowed down",
        );
        figure(
            &mut out,
            "retries",
            total.retries(),
            &format!(
                "5xx: {}, 429: {}, expired token: {}",
                total.faults, total.rate_limited, total.expired_tokens
            ),
        );
        out.push_str(&self.dead_letter_lines());
        out.push_str(&self.crash_line());
        figure(
            &mut out,
            "idempotent replays",
            total.idempotent_replays,
            "resent creates (after the crash, or a 5xx that came after the write) billing answered from its idempotency cache",
        );
        figure(
            &mut out,
            "duplicates",
            target.duplicates(),
            &format!(
                "customers counted per crm_id ({}) and per email ({})",
                target.duplicates_by_crm_id, target.duplicates_by_email
            ),
        );
        figure(
            &mut out,
            "missing contacts",
            target.missing.len(),
            "contacts that should be in billing and are not",
        );
        out
    }

    fn dead_letter_lines(&self) -> String {
        let mut out = String::new();
        let letters = &self.store.dead_letters;
        let note = if self.unexpected_dead_letters().is_empty() {
            "the contacts billing refuses, on purpose (kept with billing's answer):"
        } else {
            "kept with the answer that refused them:"
        };
        figure(&mut out, "dead letters", letters.len(), note);
        for letter in letters {
            let _ = writeln!(
                out,
                "      {}  {}",
                letter.id(),
                shorten(&explain(letter), REASON_CHARS)
            );
        }
        out
    }

    /// The crash: when run 1 died, and how many of its writes run 2 resolved first.
    fn crash_line(&self) -> String {
        let mut out = String::new();
        let recovered = self.counts_of(1).recovered;
        let note = match self.runs.killed.after_creates {
            Some(creates) => format!(
                "run 1 killed (SIGKILL) after {creates} creates; run 2 first resolved the writes it left in its outbox, resending {} of its creates under the same idempotency keys",
                self.runs.resent
            ),
            None => "run 1 finished before it could be killed: there was no crash".to_string(),
        };
        figure(&mut out, "crash resumed", recovered, &note);
        out
    }
}

/// A dead letter's reason, with what the target said when it says it in JSON.
fn explain(letter: &DeadLetter) -> String {
    let said = letter
        .exchange
        .as_ref()
        .and_then(|e| e.response.as_deref())
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
        .and_then(|r| r["message"].as_str().map(str::to_string));
    match said {
        Some(message) => format!("{}: \"{message}\"", letter.reason),
        None => letter.reason.clone(),
    }
}

/// One figure of the report: label, value, what it means.
pub(super) fn figure(out: &mut String, label: &str, value: impl std::fmt::Display, note: &str) {
    let line = format!("  {label:<24} {value:>6}   {note}");
    let _ = writeln!(out, "{}", line.trim_end());
}

/// The first few ids of a list, for a message.
pub(super) fn sample(ids: &[impl AsRef<str>]) -> String {
    let shown: Vec<&str> = ids.iter().take(5).map(AsRef::as_ref).collect();
    let more = ids.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn shorten(text: &str, chars: usize) -> String {
    let line = text.replace('\n', " ");
    if line.chars().count() <= chars {
        return line;
    }
    let cut: String = line.chars().take(chars).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_shortened_on_one_line() {
        assert_eq!(shorten("a\nb", 10), "a b");
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(sample(&["a", "b"]), "a, b");
        assert_eq!(
            sample(&["1", "2", "3", "4", "5", "6"]),
            "1, 2, 3, 4, 5 and 1 more"
        );
    }
}
