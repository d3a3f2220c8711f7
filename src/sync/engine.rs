//! One run of a pipeline: builds each system's client once, runs the streams in an
//! order that puts a stream after the streams it refers to, records the run, and
//! decides the exit code.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::mapper::Mapper;
use super::one_way::{StreamRun, Target};
use super::plan::StreamPlan;
use super::source::Source;
use super::target::{HttpTarget, TargetSpec};
use super::two_way::{side_config, SideSpec, TwoWayRun};
use super::{Progress, RunOptions, SyncError};
use crate::config::stream::{OneWayStreamConfig, Side, StreamConfig, TwoWayStreamConfig};
use crate::config::system::SystemConfig;
use crate::config::PipelineConfig;
use crate::exit::Exit;
use crate::http::{ClientContext, HttpSystem, TokenStore, Waiter};
use crate::jsonpath::CompiledPath;
use crate::store::{now_text, DeadLetter, RunRecord, RunStatus, Store, StreamCounts};
use crate::template::analyze;
use crate::vars::Vars;

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    pub run: RunRecord,
    pub exit: Exit,
    /// HTTP traffic per system: (system, requests, retries, 429s, token requests).
    pub traffic: Vec<(String, u64, u64, u64, u64)>,
}

/// A pipeline ready to run.
#[derive(Debug)]
pub struct Engine {
    pipeline: PipelineConfig,
    base_dir: PathBuf,
    /// The pipeline's state directory (JSON-lines targets keep their index there).
    state_dir: PathBuf,
    store: Arc<dyn Store>,
    tokens: Arc<dyn TokenStore>,
    vars: Vars,
    waiter: Waiter,
    systems: std::sync::Mutex<HashMap<String, Arc<HttpSystem>>>,
}

impl Engine {
    /// `pipeline_file` anchors relative paths (JSON-lines files).
    pub fn new<S>(
        pipeline: PipelineConfig,
        pipeline_file: &Path,
        store: Arc<S>,
        vars: Vars,
    ) -> Engine
    where
        S: Store + TokenStore + 'static,
    {
        Engine {
            state_dir: crate::store::state_dir(&pipeline, pipeline_file),
            pipeline,
            base_dir: pipeline_file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            tokens: store.clone(),
            store,
            vars,
            waiter: Waiter::Sleep,
            systems: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn pipeline(&self) -> &PipelineConfig {
        &self.pipeline
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Runs the pipeline (or one stream of it) once.
    pub async fn apply(
        &self,
        options: &RunOptions,
        progress: &Progress,
    ) -> Result<RunReport, SyncError> {
        let command = if options.full {
            "apply --full"
        } else {
            "apply"
        };
        self.execute(command, options, progress, None).await
    }

    /// Sends dead letters again: each stored source record goes through its stream
    /// once more, mapped with the pipeline as it is now. A letter that fails again is
    /// replaced by a new one; one that goes through is gone. Letters without a source
    /// record (a broken line of a file) cannot be sent: the next run reads them again.
    pub async fn retry_dead_letters(
        &self,
        letters: Vec<DeadLetter>,
        progress: &Progress,
    ) -> Result<RunReport, SyncError> {
        let mut by_stream: HashMap<String, Vec<DeadLetter>> = HashMap::new();
        for letter in letters.into_iter().filter(|l| l.record.is_object()) {
            by_stream
                .entry(letter.stream.clone())
                .or_default()
                .push(letter);
        }
        self.execute(
            "dead-letters retry",
            &RunOptions::default(),
            progress,
            Some(by_stream),
        )
        .await
    }

    /// Runs streams in order and records the run. With `only_letters`, each stream
    /// named there processes just the records of those dead letters instead of reading
    /// its source.
    async fn execute(
        &self,
        command: &str,
        options: &RunOptions,
        progress: &Progress,
        mut only_letters: Option<HashMap<String, Vec<DeadLetter>>>,
    ) -> Result<RunReport, SyncError> {
        let mut run = self.store.start_run(command)?;
        let now = run.started_at.clone();
        let mut broken_systems: HashSet<String> = HashSet::new();
        let mut exit = Exit::Success;
        for name in self.stream_order(options.stream.as_deref()) {
            let letters = match only_letters.as_mut() {
                Some(all) => match all.remove(&name) {
                    Some(letters) => Some(letters),
                    None => continue,
                },
                None => None,
            };
            let Some(stream) = self.pipeline.streams.get(&name) else {
                continue;
            };
            if let Some(system) = systems_of(stream)
                .iter()
                .find(|s| broken_systems.contains(**s))
            {
                run.streams.push(StreamCounts {
                    stream: name.clone(),
                    error: Some(format!("skipped: reconnect {system} first")),
                    ..StreamCounts::default()
                });
                continue;
            }
            let (mut counts, error) = match stream {
                StreamConfig::OneWay(config) => {
                    match self.one_way(&name, config, options, &now, progress) {
                        Ok(stream_run) => {
                            let records = letters
                                .map(|letters| letters.into_iter().map(|l| l.record).collect());
                            let (counts, _, error) = stream_run.run_with_plan(records).await;
                            (counts, error)
                        }
                        Err(error) => (Self::no_counts(&name), Some(error)),
                    }
                }
                StreamConfig::TwoWay(config) => {
                    match self.two_way(&name, config, options, &now, run.id, progress) {
                        Ok(stream_run) => {
                            let (counts, _, error) = stream_run.run(letters).await;
                            (counts, error)
                        }
                        Err(error) => (Self::no_counts(&name), Some(error)),
                    }
                }
            };
            progress.finish_stream(&counts);
            if let Some(error) = &error {
                tracing::error!(stream = %name, %error, "stream stopped");
                run.errors.push(format!("{name}: {error}"));
                if let Some(system) = error.reconnect() {
                    broken_systems.insert(system.to_string());
                }
                exit = worse(exit, error.exit());
                if counts.error.is_none() {
                    counts.error = Some(error.to_string());
                }
            } else if counts.dead_lettered > 0 {
                exit = worse(exit, Exit::DeadLettered);
            }
            run.streams.push(counts);
        }
        run.ended_at = Some(now_text());
        run.status = match exit {
            Exit::Success => RunStatus::Succeeded,
            Exit::DeadLettered => RunStatus::DeadLettered,
            Exit::Reconnect => RunStatus::Reconnect,
            _ => RunStatus::Failed,
        };
        self.store.finish_run(&run)?;
        Ok(RunReport {
            run,
            exit,
            traffic: self.traffic(),
        })
    }

    /// What `apply` would do, stream by stream, writing nothing to either system, the
    /// outbox or the run history (a rotated OAuth refresh token is still saved: losing
    /// it would disconnect the system).
    pub async fn plan(&self, options: &RunOptions) -> Vec<StreamPlan> {
        let options = RunOptions {
            dry_run: true,
            ..options.clone()
        };
        let now = now_text();
        let progress = Progress::hidden();
        let mut plans = Vec::new();
        for name in self.stream_order(options.stream.as_deref()) {
            let Some(stream) = self.pipeline.streams.get(&name) else {
                continue;
            };
            let plan = match stream {
                StreamConfig::OneWay(config) => {
                    match self.one_way(&name, config, &options, &now, &progress) {
                        Ok(stream_run) => stream_run.run_with_plan(None).await.1,
                        Err(error) => StreamPlan {
                            stream: name.clone(),
                            error: Some(error.to_string()),
                            ..StreamPlan::default()
                        },
                    }
                }
                StreamConfig::TwoWay(config) => {
                    match self.two_way(&name, config, &options, &now, 0, &progress) {
                        Ok(stream_run) => stream_run.run(None).await.1,
                        Err(error) => StreamPlan {
                            stream: name.clone(),
                            error: Some(error.to_string()),
                            ..StreamPlan::default()
                        },
                    }
                }
            };
            plans.push(plan);
        }
        plans
    }

    /// Streams in run order: a stream after those it refers to through `ref()`,
    /// otherwise in the order of the file.
    pub fn stream_order(&self, only: Option<&str>) -> Vec<String> {
        let depends: IndexMap<&str, Vec<String>> = self
            .pipeline
            .streams
            .iter()
            .map(|(name, stream)| (name.as_str(), references(stream)))
            .collect();
        let mut order: Vec<String> = Vec::new();
        while order.len() < depends.len() {
            let next = depends
                .iter()
                .find(|(name, refs)| {
                    !order.iter().any(|o| o == *name)
                        && refs.iter().all(|r| {
                            order.contains(r) || !depends.contains_key(r.as_str()) || r == *name
                        })
                })
                .map(|(name, _)| name.to_string());
            match next {
                Some(name) => order.push(name),
                // A cycle (validation refuses them): keep the file order for the rest.
                None => {
                    for name in depends.keys() {
                        if !order.iter().any(|o| o == name) {
                            order.push(name.to_string());
                        }
                    }
                }
            }
        }
        match only {
            Some(stream) => order.into_iter().filter(|s| s == stream).collect(),
            None => order,
        }
    }

    fn one_way<'a>(
        &'a self,
        name: &str,
        config: &'a OneWayStreamConfig,
        options: &RunOptions,
        now: &str,
        progress: &Progress,
    ) -> Result<StreamRun<'a>, SyncError> {
        let source = match self.system_config(&config.source.system)? {
            SystemConfig::Http(_) => Source::Http {
                system: self.http(&config.source.system)?,
                read: config.source.read.clone().map(Box::new).ok_or_else(|| {
                    SyncError::Setup(format!("stream `{name}`: the source has no `read`"))
                })?,
                parent: config
                    .source
                    .parent
                    .as_ref()
                    .map(|p| Box::new(p.read.clone())),
            },
            SystemConfig::Jsonl(jsonl) => Source::Jsonl {
                path: self.file_path(jsonl.path.as_str())?,
            },
        };
        let target = match self.system_config(&config.target.system)? {
            SystemConfig::Http(http) => {
                let spec = TargetSpec {
                    system: self.http(&config.target.system)?,
                    read: config.target.read.clone(),
                    id: config
                        .target
                        .id
                        .as_ref()
                        .map(|p| CompiledPath::compile(p.as_str()))
                        .transpose()
                        .map_err(SyncError::Setup)?,
                    match_on: config.target.match_on.clone(),
                    writes: config.target.writes.clone(),
                    max_in_flight: http.limits.max_in_flight.max(1) as usize,
                };
                Target::Http(Box::new(HttpTarget::new(spec, self.vars.clone())?))
            }
            SystemConfig::Jsonl(jsonl) => Target::Jsonl {
                path: self.file_path(jsonl.path.as_str())?,
                index_dir: self.state_dir.join("jsonl"),
            },
        };
        let env = serde_json::to_value(self.vars.env()).unwrap_or_default();
        let mapper =
            Mapper::new(&config.fields, Arc::clone(&self.store), env).map_err(SyncError::Setup)?;
        StreamRun::new(
            name,
            config,
            Arc::clone(&self.store),
            self.vars.clone(),
            source,
            target,
            mapper,
            options.clone(),
            now.to_string(),
            progress.stream(name),
        )
    }

    fn two_way<'a>(
        &'a self,
        name: &str,
        config: &'a TwoWayStreamConfig,
        options: &RunOptions,
        now: &str,
        run_id: u64,
        progress: &Progress,
    ) -> Result<TwoWayRun<'a>, SyncError> {
        let side = |side: Side| -> Result<SideSpec, SyncError> {
            let side_config = side_config(config, side);
            let system = &side_config.read.system;
            let SystemConfig::Http(http) = self.system_config(system)? else {
                return Err(SyncError::Setup(format!(
                    "stream `{name}`: side {} must be an http system (both sides of a two-way stream are read and written)",
                    side.as_str()
                )));
            };
            let read = side_config.read.read.clone().ok_or_else(|| {
                SyncError::Setup(format!(
                    "stream `{name}`: side {} has no `read`",
                    side.as_str()
                ))
            })?;
            let client = self.http(system)?;
            let source = Source::Http {
                system: Arc::clone(&client),
                read: Box::new(read.clone()),
                parent: None,
            };
            let spec = TargetSpec {
                system: client,
                read: Some(read),
                id: Some(
                    CompiledPath::compile(side_config.read.id.as_str())
                        .map_err(SyncError::Setup)?,
                ),
                match_on: Vec::new(),
                writes: side_config.writes.clone(),
                max_in_flight: http.limits.max_in_flight.max(1) as usize,
            };
            SideSpec::new(side, config, source, spec, self.vars.clone())
        };
        Ok(TwoWayRun::new(
            name,
            config,
            Arc::clone(&self.store),
            self.vars.clone(),
            side(Side::A)?,
            side(Side::B)?,
            options.clone(),
            now.to_string(),
            run_id,
            progress.stream(name),
        ))
    }

    fn no_counts(name: &str) -> StreamCounts {
        StreamCounts {
            stream: name.to_string(),
            ..StreamCounts::default()
        }
    }

    fn system_config(&self, name: &str) -> Result<&SystemConfig, SyncError> {
        self.pipeline
            .systems
            .get(name)
            .ok_or_else(|| SyncError::Setup(format!("no system `{name}`")))
    }

    /// The client of an HTTP system, built on first use (secrets are read then).
    pub fn http(&self, name: &str) -> Result<Arc<HttpSystem>, SyncError> {
        let mut systems = self.systems.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(system) = systems.get(name) {
            return Ok(Arc::clone(system));
        }
        let SystemConfig::Http(config) = self.system_config(name)? else {
            return Err(SyncError::Setup(format!("`{name}` is not an http system")));
        };
        let context = ClientContext {
            vars: self.vars.clone(),
            tokens: Arc::clone(&self.tokens),
            waiter: self.waiter.clone(),
        };
        let system = Arc::new(HttpSystem::from_config(name, config, &context)?);
        systems.insert(name.to_string(), Arc::clone(&system));
        Ok(system)
    }

    fn file_path(&self, template: &str) -> Result<PathBuf, SyncError> {
        let rendered = self
            .vars
            .render(template, &[], false)
            .map_err(SyncError::Setup)?;
        let path = PathBuf::from(rendered);
        Ok(if path.is_absolute() {
            path
        } else {
            self.base_dir.join(path)
        })
    }

    fn traffic(&self) -> Vec<(String, u64, u64, u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let systems = self.systems.lock().unwrap_or_else(|e| e.into_inner());
        let mut traffic: Vec<_> = systems
            .iter()
            .map(|(name, system)| {
                let c = system.counters();
                (
                    name.clone(),
                    c.requests.load(Relaxed),
                    c.retries.load(Relaxed),
                    c.rate_limited.load(Relaxed),
                    system.token_requests(),
                )
            })
            .collect();
        traffic.sort();
        traffic
    }
}

/// The systems a stream reads or writes.
fn systems_of(stream: &StreamConfig) -> Vec<&str> {
    match stream {
        StreamConfig::OneWay(s) => vec![s.source.system.as_str(), s.target.system.as_str()],
        StreamConfig::TwoWay(s) => vec![
            s.sides.a.read.system.as_str(),
            s.sides.b.read.system.as_str(),
        ],
    }
}

/// The streams a stream's field templates refer to.
fn references(stream: &StreamConfig) -> Vec<String> {
    let StreamConfig::OneWay(config) = stream else {
        return Vec::new();
    };
    config
        .fields
        .values()
        .filter_map(|f| f.template.as_ref())
        .filter_map(|t| analyze(t.as_str()).ok())
        .flat_map(|names| names.refs)
        .collect()
}

/// The exit code that says more: reconnect, then failure, then dead letters.
fn worse(a: Exit, b: Exit) -> Exit {
    let rank = |e: Exit| match e {
        Exit::Success => 0,
        Exit::DeadLettered => 1,
        Exit::Failed => 2,
        Exit::Invalid => 3,
        Exit::Reconnect => 4,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}
