//! `runner apply` and `runner plan`.

use super::{load, ApplyArgs, OutputFormat, PlanArgs};
use crate::exit::Exit;
use crate::http::Redactor;
use crate::sync::{report, Engine, Progress, RunOptions};
use crate::vars::Vars;

/// Builds the engine of a pipeline file: validated pipeline, its store, the
/// environment.
pub(crate) fn engine(file: &std::path::Path, stream: Option<&str>) -> Result<Engine, Exit> {
    let pipeline = load::pipeline(file)?;
    load::stream(&pipeline, stream)?;
    let store = load::store(&pipeline, file)?;
    let vars = Vars::from_process_env(Redactor::new());
    Ok(Engine::new(pipeline, file, store, vars))
}

pub fn apply(args: &ApplyArgs) -> Exit {
    let engine = match engine(&args.file, args.stream.as_deref()) {
        Ok(engine) => engine,
        Err(exit) => return exit,
    };
    let options = RunOptions {
        full: args.full,
        allow_mass_delete: args.allow_mass_delete,
        stream: args.stream.clone(),
        dry_run: false,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let progress = Progress::on_terminal();
    match runtime.block_on(engine.apply(&options, &progress)) {
        Ok(report) => {
            print!(
                "{}",
                report::summary(&report, &args.file.display().to_string())
            );
            report.exit
        }
        Err(error) => {
            eprintln!("runner apply: {error}");
            error.exit()
        }
    }
}

pub fn plan(args: &PlanArgs) -> Exit {
    let engine = match engine(&args.file, args.stream.as_deref()) {
        Ok(engine) => engine,
        Err(exit) => return exit,
    };
    let options = RunOptions {
        stream: args.stream.clone(),
        ..RunOptions::default()
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let plans = runtime.block_on(engine.plan(&options));
    match args.format {
        OutputFormat::Text => {
            for plan in &plans {
                print!("{}", plan.render());
            }
            let (creates, updates, deletes): (usize, usize, usize) =
                plans.iter().fold((0, 0, 0), |(c, u, d), p| {
                    (
                        c + p.creates.len(),
                        u + p.updates.len(),
                        d + p.deletes.len(),
                    )
                });
            println!("Plan: {creates} to create, {updates} to update, {deletes} to delete. Nothing was written.");
        }
        OutputFormat::Json => match serde_json::to_string_pretty(&plans) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("runner plan: {e}");
                return Exit::Failed;
            }
        },
    }
    if plans.iter().any(|p| p.error.is_some()) {
        Exit::Failed
    } else {
        Exit::Success
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("runner: cannot start the async runtime: {e}");
            Exit::Failed
        })
}
