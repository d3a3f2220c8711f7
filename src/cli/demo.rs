//! `runner demo`: a one-way sync against the sandbox APIs with the unhappy paths on,
//! then a two-way one.
//!
//! The flow, one printed step each: start the sandbox, seed it, write and validate the
//! pipeline, run `runner apply` and kill it half-way, run it again to the end, run it
//! a third time over unchanged data — then report from the store and the target. Part
//! two: a second sandbox, the two-way pipeline's first sync, edits on both sides, the
//! plan and the run that settles them, quiet runs — then both systems read back. The
//! pieces live in [`crate::demo`]; this file only strings them together and prints.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use crate::demo::check::TargetCheck;
use crate::demo::pipeline::{self, STREAM};
use crate::demo::report::{Report, Runs, StoreFacts};
use crate::demo::runs::{self, Finished, Killed, Runner, Traffic};
use crate::demo::scenario::{sandbox_env, start_sandbox, Scenario, Size};
use crate::demo::two_way::{self, Edits, TwoWayCheck};
use crate::demo::work_dir;
use crate::exit::Exit;
use crate::store::{state_dir, SledStore, Store};

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
    let mut problems = report.problems();

    let part_two = two_way_part(&exe, &dir)?;
    print!("{}", part_two.check.render());
    problems.extend(part_two.check.problems(&part_two.edits));
    problems.extend(part_two.failed_runs);

    let exit = verdict(&problems, scenario.refused.len(), started.elapsed());
    look_around(&written.file, &part_two.file, &exe);
    Ok(exit)
}

/// What part two found.
struct PartTwo {
    check: TwoWayCheck,
    edits: Edits,
    /// The two-way pipeline file.
    file: PathBuf,
    /// Runs that did not exit 0, as problems.
    failed_runs: Vec<String>,
}

/// Steps 7 to 9: a two-way stream against a sandbox of its own — the first sync, edits
/// on both sides and the run that settles them, then runs that must send nothing.
fn two_way_part(exe: &Path, dir: &Path) -> anyhow::Result<PartTwo> {
    println!(
        "
Part two: two-way sync — people edit customers in the CRM and in billing
"
    );
    let sandbox = start_sandbox()?;
    two_way::seed(&sandbox);
    let written = pipeline::write_file(dir, two_way::FILE_NAME, two_way::PIPELINE)?;
    let runner = Runner {
        exe: exe.to_path_buf(),
        file: written.file.clone(),
        env: sandbox_env(&sandbox),
    };
    step(
        7,
        &format!(
            "a new sandbox: {} CRM contacts, {} billing customers, {} of them the same people (same email); wrote {} (valid)",
            sandbox.crm().len(),
            sandbox.billing().len(),
            two_way::EXISTING,
            written.file.display()
        ),
    );
    detail("the CRM owns email, billing owns plan, notes go to whoever edits last");
    detail("run 1 links the pairs by email; each side gets the records and the fields it lacks:");
    let mut failed_runs = Vec::new();
    let mut check_exit = |what: &str, run: &Finished| {
        if run.code != Some(0) {
            failed_runs.push(format!(
                "two-way: {what} ended with exit code {:?}",
                run.code
            ));
        }
    };
    let first = runner.run(&sandbox, &["apply"])?;
    tell_finished(&first);
    check_exit("the first run", &first);

    let edits = two_way::edit(&sandbox);
    step(
        8,
        &format!(
            "in billing, {} plans and {} emails change; {} notes are edited on both sides, one after the other; a contact and a customer are added. `runner plan` shows each write, its direction and the rule behind it:",
            edits.plans.len(),
            edits.hijacked.len(),
            edits.notes.len()
        ),
    );
    indent(&runner.run(&sandbox, &["plan"])?.stdout);
    detail("runner apply:");
    let settle = runner.run(&sandbox, &["apply"])?;
    tell_finished(&settle);
    check_exit("the run after the edits", &settle);

    step(
        9,
        &format!(
            "{} more runs without edits: each side returns the runner's own writes, with new timestamps",
            two_way::QUIET_RUNS
        ),
    );
    let before = two_way::writes(&sandbox);
    for _ in 0..two_way::QUIET_RUNS {
        let run = runner.run(&sandbox, &["apply"])?;
        if run.code != Some(0) {
            tell_finished(&run);
        }
        check_exit("a run without edits", &run);
    }
    let echo = two_way::writes(&sandbox) - before;
    detail(&format!("{echo} writes sent"));

    let state = state_dir(&written.pipeline, &written.file);
    let store = SledStore::open(&state).context("cannot open the two-way state store")?;
    let logged = store.conflicts(None, usize::MAX)?;
    Ok(PartTwo {
        check: TwoWayCheck::of(&sandbox, &edits, &logged, echo),
        edits,
        file: written.file,
        failed_runs,
    })
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
fn verdict(problems: &[String], refused: usize, took: Duration) -> Exit {
    if problems.is_empty() {
        println!(
            "\nOK: every contact billing accepts is there exactly once — after a crash, expired tokens, \
             429s and 5xx — and the {refused} it refuses wait in the dead-letter queue; edited on both \
             sides, CRM and billing agree field by field, by the rules, without echo. ({} in all)",
            seconds(took)
        );
        return Exit::Success;
    }
    println!("\n!!! DEMO FAILED: the systems do not agree as they must !!!");
    for problem in problems {
        println!("  - {problem}");
    }
    eprintln!(
        "runner demo: FAILED — {} problems, listed above",
        problems.len()
    );
    Exit::Failed
}

/// The commands that read the state the demo leaves behind.
fn look_around(file: &Path, two_way_file: &Path, exe: &Path) {
    let file = file.display();
    println!("\nThe pipelines and their state stay in place. Look around:");
    for command in [
        format!("runner status {file}"),
        format!("runner history {file}"),
        format!("runner dead-letters {file} list"),
        format!("runner mappings {file} --stream {STREAM}"),
        format!("runner conflicts {}", two_way_file.display()),
    ] {
        println!("  {command}");
    }
    println!(
        "(runner is {}; from the repository, `cargo run --release -- status {file}` works too)",
        exe.display()
    );
}
