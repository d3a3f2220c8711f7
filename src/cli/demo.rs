//! `runner demo`: a one-way sync against the sandbox APIs with the unhappy paths on.
//!
//! The flow, one printed step each: start the sandbox, seed it, write and validate the
//! pipeline, run `runner apply` and kill it half-way, run it again to the end, run it
//! a third time over unchanged data — then report from the store and the target. The
//! pieces live in [`crate::demo`]; this file only strings them together and prints.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::demo::check::TargetCheck;
use crate::demo::pipeline::{self, STREAM};
use crate::demo::report::{Report, Runs, StoreFacts};
use crate::demo::runs::{self, Finished, Killed, Runner, Traffic};
use crate::demo::scenario::{Scenario, Size};
use crate::demo::work_dir;
use crate::exit::Exit;
use crate::store::{state_dir, SledStore};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the demo pipeline and its state (default: a new temporary folder,
    /// kept afterwards). Must be new or empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// A smaller, quicker demo (under a minute).
    #[arg(long)]
    pub fast: bool,
}

/// The share of the expected creates after which run 1 is killed.
const KILL_AT_PERCENT: usize = 30;

pub fn run(args: &DemoArgs) -> Exit {
    match demo(args) {
        Ok(exit) => exit,
        Err(error) => {
            eprintln!("runner demo: {error:#}");
            Exit::Failed
        }
    }
}

fn demo(args: &DemoArgs) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let size = if args.fast { Size::FAST } else { Size::FULL };
    let dir = work_dir(args.dir.as_deref())?;
    let exe = std::env::current_exe().context("cannot find the runner executable")?;
    println!("runner demo: CRM contacts → billing customers, with the unhappy paths switched on\n");

    let scenario = Scenario::start(size)?;
    step(
        1,
        &format!(
            "sandbox APIs on {}, in this process",
            scenario.sandbox.url()
        ),
    );
    for line in scenario.describe() {
        detail(&line);
    }
    step(
        2,
        &format!(
            "seeded {} CRM contacts; {} of them already exist in billing (same email); {} have no usable email, which billing refuses",
            scenario.contacts,
            scenario.existing.len(),
            scenario.refused.len()
        ),
    );
    let written = pipeline::write(&dir)?;
    let state = state_dir(&written.pipeline, &written.file);
    step(
        3,
        &format!(
            "wrote {}: valid (`runner validate`); its state goes to {}",
            written.file.display(),
            state.display()
        ),
    );

    let runner = Runner {
        exe: exe.clone(),
        file: written.file.clone(),
        env: scenario.env(),
    };
    let runs = run_three_times(&runner, &scenario)?;

    let store = SledStore::open(&state).context("cannot open the demo's state store")?;
    let report = Report {
        store: StoreFacts::read(&store)?,
        target: TargetCheck::of(
            &scenario.sandbox.crm().records(),
            &scenario.sandbox.billing().records(),
            &scenario.refused_ids(),
            &scenario.existing.iter().cloned().collect(),
        ),
        scenario: &scenario,
        runs,
    };
    print!("{}", report.render());
    let exit = verdict(&report, started.elapsed());
    look_around(&written.file, &exe);
    Ok(exit)
}

/// Steps 4 to 6: the killed run, the run that resumes, the run with nothing to do.
fn run_three_times(runner: &Runner, scenario: &Scenario) -> anyhow::Result<Runs> {
    let sandbox = &scenario.sandbox;
    let kill_at = (scenario.expected_creates() * KILL_AT_PERCENT / 100).max(1) as u64;
    step(
        4,
        &format!(
            "run 1: runner apply, killed with SIGKILL once billing has received {kill_at} creates"
        ),
    );
    let killed = runner.apply_and_kill(sandbox, kill_at)?;
    tell_killed(&killed);

    step(
        5,
        "run 2: runner apply again: it resolves what run 1 left in its outbox, then carries on",
    );
    let resumed = runner.run(sandbox, &["apply"])?;
    let resent = runs::create_keys(sandbox, killed.last_seq)
        .intersection(&killed.create_keys)
        .count();
    tell_finished(&resumed);

    step(
        6,
        "run 3: runner apply --full: reads every contact again; none changed, so nothing is written",
    );
    let again = runner.run(sandbox, &["apply", "--full"])?;
    tell_finished(&again);

    Ok(Runs {
        killed,
        resumed,
        again,
        resent,
        total: Traffic::now(sandbox),
    })
}

fn step(number: u32, text: &str) {
    println!("{number}. {text}");
}

fn detail(text: &str) {
    println!("   {text}");
}

fn tell_killed(killed: &Killed) {
    match killed.after_creates {
        Some(creates) => detail(&format!(
            "killed after {creates} creates, {} in; {}",
            seconds(killed.elapsed),
            killed.traffic.line()
        )),
        None => {
            detail(&format!(
                "it finished (exit {:?}) before it could be killed:",
                killed.code
            ));
            indent(&killed.stdout);
        }
    }
}

fn tell_finished(run: &Finished) {
    let code = run
        .code
        .map_or_else(|| "killed".to_string(), |c| c.to_string());
    let meaning = match run.code {
        Some(0) => "",
        Some(4) => ": finished, some records dead-lettered",
        _ => ": the run failed",
    };
    detail(&format!(
        "exit {code}{meaning}, {}; its summary:",
        seconds(run.elapsed)
    ));
    indent(&run.stdout);
}

fn indent(text: &str) {
    for line in text.lines() {
        println!("      {line}");
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// Prints the verdict; any problem is a failed demo.
fn verdict(report: &Report, took: Duration) -> Exit {
    let problems = report.problems();
    if problems.is_empty() {
        println!(
            "\nOK: every contact billing accepts is there exactly once — after a crash, expired tokens, \
             429s and 5xx — and the {} it refuses wait in the dead-letter queue. ({} in all)",
            report.scenario.refused.len(),
            seconds(took)
        );
        return Exit::Success;
    }
    println!("\n!!! DEMO FAILED: billing does not mirror the CRM as it must !!!");
    for problem in &problems {
        println!("  - {problem}");
    }
    eprintln!(
        "runner demo: FAILED — {} problems, listed above",
        problems.len()
    );
    Exit::Failed
}

/// The commands that read the state the demo leaves behind.
fn look_around(file: &Path, exe: &Path) {
    let file = file.display();
    println!("\nThe pipeline and its state stay in place. Look around:");
    for command in [
        format!("runner status {file}"),
        format!("runner history {file}"),
        format!("runner dead-letters {file} list"),
        format!("runner mappings {file} --stream {STREAM}"),
    ] {
        println!("  {command}");
    }
    println!(
        "(runner is {}; from the repository, `cargo run --release -- status {file}` works too)",
        exe.display()
    );
}
