//! `runner apply` as child processes, the way a person or a scheduler runs it — and
//! the crash: one of them killed with SIGKILL while its creates are in flight.

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::sandbox::{Sandbox, Stats};

/// How often the crash step looks at billing's counters.
const POLL: Duration = Duration::from_millis(5);
/// A run that never reaches the kill point within this is killed anyway, so the demo
/// cannot hang.
const KILL_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `runner apply` on the demo pipeline.
#[derive(Debug)]
pub struct Runner {
    /// The runner executable (the one running the demo).
    pub exe: PathBuf,
    pub file: PathBuf,
    /// The sandbox's URLs and credentials.
    pub env: Vec<(String, String)>,
}

/// What the sandbox saw during one run: the counters that tell the unhappy paths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub billing_requests: u64,
    pub creates: u64,
    pub updates: u64,
    pub rate_limited: u64,
    pub faults: u64,
    pub idempotent_replays: u64,
    pub token_refreshes: u64,
    /// CRM requests refused because the access token had expired.
    pub expired_tokens: u64,
}

impl Traffic {
    /// The counters now.
    pub fn now(sandbox: &Sandbox) -> Traffic {
        Traffic::from_stats(&sandbox.crm().stats(), &sandbox.billing().stats())
    }

    fn from_stats(crm: &Stats, billing: &Stats) -> Traffic {
        Traffic {
            billing_requests: billing.requests,
            creates: billing.creates,
            updates: billing.updates,
            rate_limited: billing.rate_limited + crm.rate_limited,
            faults: billing.faults + crm.faults,
            idempotent_replays: billing.idempotent_replays,
            token_refreshes: crm.refreshes,
            expired_tokens: crm.unauthorized,
        }
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            billing_requests: self.billing_requests - earlier.billing_requests,
            creates: self.creates - earlier.creates,
            updates: self.updates - earlier.updates,
            rate_limited: self.rate_limited - earlier.rate_limited,
            faults: self.faults - earlier.faults,
            idempotent_replays: self.idempotent_replays - earlier.idempotent_replays,
            token_refreshes: self.token_refreshes - earlier.token_refreshes,
            expired_tokens: self.expired_tokens - earlier.expired_tokens,
        }
    }

    /// Requests the runner had to send again: 5xx answers, 429s, expired tokens.
    pub fn retries(&self) -> u64 {
        self.faults + self.rate_limited + self.expired_tokens
    }

    /// One line, for a run that printed no summary of its own.
    pub fn line(&self) -> String {
        format!(
            "billing saw {} requests ({} creates, {} updates); {} × 429 and {} × 5xx were retried; {} token refreshes",
            self.billing_requests,
            self.creates,
            self.updates,
            self.rate_limited,
            self.faults,
            self.token_refreshes
        )
    }
}

/// A run that went to its end.
#[derive(Debug)]
pub struct Finished {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Its summary table.
    pub stdout: String,
    pub traffic: Traffic,
    pub elapsed: Duration,
}

/// The run that was killed.
#[derive(Debug)]
pub struct Killed {
    /// Creates billing had received when the kill was sent; `None` if the run ended
    /// on its own first (then there was no crash).
    pub after_creates: Option<u64>,
    /// How the run ended when it was not killed, and its summary.
    pub code: Option<i32>,
    pub stdout: String,
    /// The idempotency keys of the creates it sent, and the last journal entry by then.
    pub create_keys: HashSet<String>,
    pub last_seq: u64,
    pub traffic: Traffic,
    pub elapsed: Duration,
}

impl Runner {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.exe);
        command.args(args).arg(&self.file);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        // Every retry is a warning; the demo tells them in its report instead. A
        // person who wants them sets RUNNER_LOG.
        if std::env::var_os("RUNNER_LOG").is_none() {
            command.env("RUNNER_LOG", "error");
        }
        command
    }

    /// Runs `runner <args> FILE` to its end. Its summary is returned, its stderr (the
    /// progress bar on a terminal, errors) goes straight to ours.
    pub fn run(&self, sandbox: &Sandbox, args: &[&str]) -> anyhow::Result<Finished> {
        let before = Traffic::now(sandbox);
        let started = Instant::now();
        let output = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot start {}", self.exe.display()))?;
        Ok(Finished {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            traffic: Traffic::now(sandbox).since(&before),
            elapsed: started.elapsed(),
        })
    }

    /// Runs `runner apply FILE` and kills it (SIGKILL: no chance to clean up) once
    /// billing has received `creates` creates from it.
    pub fn apply_and_kill(&self, sandbox: &Sandbox, creates: u64) -> anyhow::Result<Killed> {
        let before = Traffic::now(sandbox);
        let first_seq = last_seq(sandbox);
        let started = Instant::now();
        let mut child = self
            .command(&["apply"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", self.exe.display()))?;
        let ended = wait_for_creates(&mut child, sandbox, before.creates + creates)?;
        let after_creates = match ended {
            Some(_) => None,
            None => {
                let sent = Traffic::now(sandbox).since(&before).creates;
                child.kill().context("cannot kill the run")?;
                Some(sent)
            }
        };
        let status = child.wait().context("cannot reap the killed run")?;
        let stdout = drain(&mut child);
        // Writes the dead process had in flight still land: give them their latency.
        std::thread::sleep(Duration::from_millis(50));
        Ok(Killed {
            after_creates,
            code: status.code(),
            stdout,
            create_keys: create_keys(sandbox, first_seq),
            last_seq: last_seq(sandbox),
            traffic: Traffic::now(sandbox).since(&before),
            elapsed: started.elapsed(),
        })
    }
}

/// Waits until billing counts `creates` creates (→ `None`: time to kill) or the child
/// ends on its own (→ its status).
fn wait_for_creates(
    child: &mut Child,
    sandbox: &Sandbox,
    creates: u64,
) -> anyhow::Result<Option<ExitStatus>> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().context("cannot watch the run")? {
            return Ok(Some(status));
        }
        if sandbox.billing().stats().creates >= creates || started.elapsed() > KILL_DEADLINE {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// The idempotency keys of the creates billing received after journal entry `after`.
pub fn create_keys(sandbox: &Sandbox, after: u64) -> HashSet<String> {
    sandbox
        .journal()
        .into_iter()
        .filter(|e| e.seq > after && e.app == "billing" && e.method == "POST")
        .filter_map(|e| {
            e.headers
                .into_iter()
                .find(|(name, _)| name == "idempotency-key")
                .map(|(_, key)| key)
        })
        .collect()
}

/// The number of the latest request the sandbox received (0 if none).
fn last_seq(sandbox: &Sandbox) -> u64 {
    sandbox.journal().last().map_or(0, |e| e.seq)
}

/// What a child printed on stdout (nothing, if it was killed before its summary).
fn drain(child: &mut Child) -> String {
    let mut bytes = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        // A read error only loses the summary of a run that was meant to die.
        let _ = stdout.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
