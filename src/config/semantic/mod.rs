//! Semantic checks: what the schema cannot say. References between systems and
//! streams, JSONPath and template compilation, the names a template may use, where
//! secrets may go, rules two-way fields need, pagination settings that fit their style.
//!
//! Checks are pure (no network, no secrets) and collect every problem; they run on the
//! parts of the document that passed the schema, so one broken stream does not hide
//! the problems of the others.

mod requests;
mod streams;

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;

use super::diagnostic::{did_you_mean, list, Issue};
use super::model::StateConfig;
use super::stream::StreamConfig;
use super::system::{AuthConfig, OAuth2Grant, SystemConfig};
use super::values::{JsonPath, Template};
use super::yaml_tree::Anchor;
use crate::template::analyze;

/// The parts of a pipeline that deserialized; `None` marks a part the schema check
/// already reported, kept so its name still counts as defined.
#[derive(Debug, Default)]
pub struct Parts {
    pub state: Option<StateConfig>,
    pub systems: IndexMap<String, Option<SystemConfig>>,
    pub streams: IndexMap<String, Option<StreamConfig>>,
}

/// Every semantic problem of `parts`.
pub fn check(parts: &Parts) -> Vec<Issue> {
    let mut checker = Checker {
        systems: &parts.systems,
        streams: &parts.streams,
        issues: Vec::new(),
        webhook_paths: HashMap::new(),
        stream_refs: Vec::new(),
    };
    if let Some(state) = &parts.state {
        checker.state(state);
    }
    for (name, system) in &parts.systems {
        checker.name(&path(&["systems", name]), "system", name);
        if let Some(system) = system {
            checker.system(name, system);
        }
    }
    for (name, stream) in &parts.streams {
        checker.name(&path(&["streams", name]), "stream", name);
        if let Some(stream) = stream {
            checker.stream(name, stream);
        }
    }
    checker.stream_dependencies();
    checker.issues
}

/// Builds a document path from its segments.
pub(super) fn path(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| s.to_string()).collect()
}

/// `base` followed by `more`.
pub(super) fn join(base: &[String], more: &[&str]) -> Vec<String> {
    let mut path = base.to_vec();
    path.extend(more.iter().map(|s| s.to_string()));
    path
}

/// The names a template may use where it stands, and whether secrets may go there.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    names: Vec<&'static str>,
    secrets: bool,
    /// Names a person may expect here that are not available, and why.
    unavailable: Vec<(&'static str, &'static str)>,
}

impl Scope {
    pub(super) fn new(names: &[&'static str]) -> Scope {
        Scope {
            names: names.to_vec(),
            secrets: false,
            unavailable: Vec::new(),
        }
    }

    /// Settings such as `base_url`: only the environment.
    pub(super) fn setting() -> Scope {
        Scope::new(&["env"])
    }

    /// Credentials (auth values, signing secrets, URLs with tokens): env and secrets.
    pub(super) fn credential() -> Scope {
        Scope::setting().with_secrets()
    }

    pub(super) fn with(mut self, name: &'static str) -> Scope {
        self.names.push(name);
        self
    }

    /// Marks `name` as not available here, with the reason shown when it is used.
    pub(super) fn without(mut self, name: &'static str, reason: &'static str) -> Scope {
        self.unavailable.push((name, reason));
        self
    }

    /// Headers and credentials may carry secrets: they are redacted wherever shown.
    pub(super) fn with_secrets(mut self) -> Scope {
        self.secrets = true;
        self
    }
}

/// Functions minijinja provides; templates may call them anywhere.
const BUILTIN_FUNCTIONS: &[&str] = &["range", "dict", "namespace", "debug"];

pub(super) struct Checker<'a> {
    systems: &'a IndexMap<String, Option<SystemConfig>>,
    streams: &'a IndexMap<String, Option<StreamConfig>>,
    issues: Vec<Issue>,
    /// Webhook path -> where it was first declared.
    webhook_paths: HashMap<String, Vec<String>>,
    /// (stream, template location, stream it refers to).
    stream_refs: Vec<(String, Vec<String>, String)>,
}

impl<'a> Checker<'a> {
    pub(super) fn error(
        &mut self,
        path: &[String],
        anchor: Anchor,
        message: impl Into<String>,
    ) -> &mut Issue {
        self.issues.push(Issue::error(path, anchor, message));
        // Safe: the vector holds at least the issue pushed on the line above.
        self.issues.last_mut().expect("just pushed")
    }

    pub(super) fn warning(
        &mut self,
        path: &[String],
        anchor: Anchor,
        message: impl Into<String>,
    ) -> &mut Issue {
        self.issues.push(Issue::warning(path, anchor, message));
        // Safe: the vector holds at least the issue pushed on the line above.
        self.issues.last_mut().expect("just pushed")
    }

    fn name(&mut self, path: &[String], what: &str, name: &str) {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            self.error(
                path,
                Anchor::Key,
                format!("`{name}` is not a valid {what} name"),
            )
            .hint = Some("use letters, digits, `-` and `_`".into());
        }
    }

    fn state(&mut self, state: &StateConfig) {
        if state.path.is_some() && state.url.is_some() {
            self.error(
                &path(&["state", "url"]),
                Anchor::Key,
                "`state` takes `path` or `url`, not both",
            )
            .hint = Some("`path` is an embedded store; `url` a shared PostgreSQL one".into());
        }
        if let Some(url) = &state.url {
            self.template(&path(&["state", "url"]), url, &Scope::credential());
        }
    }

    fn system(&mut self, name: &str, system: &SystemConfig) {
        let base = path(&["systems", name]);
        match system {
            SystemConfig::Http(http) => {
                self.template(
                    &join(&base, &["base_url"]),
                    &http.base_url,
                    &Scope::setting(),
                );
                self.headers(&join(&base, &["headers"]), &http.headers, &Scope::setting());
                if let Some(auth) = &http.auth {
                    self.auth(&join(&base, &["auth"]), auth);
                }
                if http.retry.initial_backoff > http.retry.max_backoff {
                    self.error(
                        &join(&base, &["retry", "initial_backoff"]),
                        Anchor::Value,
                        format!(
                            "`initial_backoff` ({}) is longer than `max_backoff` ({})",
                            http.retry.initial_backoff, http.retry.max_backoff
                        ),
                    );
                }
            }
            SystemConfig::Jsonl(jsonl) => {
                self.template(&join(&base, &["path"]), &jsonl.path, &Scope::setting());
            }
        }
    }

    fn auth(&mut self, base: &[String], auth: &AuthConfig) {
        let credential = Scope::credential();
        match auth {
            AuthConfig::ApiKey(key) => {
                self.template(&join(base, &["value"]), &key.value, &credential);
            }
            AuthConfig::Bearer(bearer) => {
                self.template(&join(base, &["token"]), &bearer.token, &credential);
            }
            AuthConfig::Basic(basic) => {
                self.template(&join(base, &["username"]), &basic.username, &credential);
                self.template(&join(base, &["password"]), &basic.password, &credential);
            }
            AuthConfig::Oauth2(oauth) => {
                self.template(
                    &join(base, &["token_url"]),
                    &oauth.token_url,
                    &Scope::setting(),
                );
                self.template(&join(base, &["client_id"]), &oauth.client_id, &credential);
                self.template(
                    &join(base, &["client_secret"]),
                    &oauth.client_secret,
                    &credential,
                );
                match (&oauth.grant, &oauth.refresh_token) {
                    (OAuth2Grant::RefreshToken, None) => {
                        self.error(
                            &join(base, &["grant"]),
                            Anchor::Value,
                            "grant `refresh_token` needs `refresh_token`",
                        )
                        .hint = Some("add `refresh_token: \"{{ secret.NAME }}\"`".into());
                    }
                    (OAuth2Grant::ClientCredentials, Some(_)) => {
                        self.error(
                            &join(base, &["refresh_token"]),
                            Anchor::Key,
                            "`refresh_token` does not apply to grant `client_credentials`",
                        );
                    }
                    (OAuth2Grant::RefreshToken, Some(token)) => {
                        self.template(&join(base, &["refresh_token"]), token, &credential);
                    }
                    (OAuth2Grant::ClientCredentials, None) => {}
                }
            }
        }
    }

    /// The system named at `at`, reporting an unknown name. `None` also for a system
    /// the schema check already reported.
    pub(super) fn system_ref(&mut self, at: &[String], name: &str) -> Option<&'a SystemConfig> {
        match self.systems.get(name) {
            Some(system) => system.as_ref(),
            None => {
                let names: Vec<&str> = self.systems.keys().map(String::as_str).collect();
                let hint = match did_you_mean(name, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if names.is_empty() => "no systems are defined under `systems`".into(),
                    None => format!("defined systems: {}", list(&names)),
                };
                self.error(at, Anchor::Value, format!("unknown system `{name}`"))
                    .hint = Some(hint);
                None
            }
        }
    }

    pub(super) fn headers(
        &mut self,
        base: &[String],
        headers: &IndexMap<String, Template>,
        scope: &Scope,
    ) {
        let scope = scope.clone().with_secrets();
        for (name, value) in headers {
            self.template(&join(base, &[name]), value, &scope);
        }
    }

    /// Checks a template's syntax and the names it uses; returns them when it parses.
    pub(super) fn template(
        &mut self,
        at: &[String],
        template: &Template,
        scope: &Scope,
    ) -> Option<BTreeSet<String>> {
        let text = template.as_str();
        let names = match analyze(text) {
            Ok(names) => names,
            Err(e) => {
                let issue = Issue::error(
                    at,
                    Anchor::Value,
                    format!("invalid template: {}", e.message),
                );
                self.issues.push(match e.offset {
                    Some(offset) => issue.at_offset(offset, 1),
                    None => issue,
                });
                return None;
            }
        };
        for root in &names.roots {
            let offset = word_offset(text, root).map(|o| (o, root.chars().count()));
            if root == "secret" {
                if !scope.secrets {
                    let issue = Issue::error(at, Anchor::Value, "`secret` may only be used in credentials and headers")
                        .with_hint("a secret here could reach logs, URLs or the state store in clear text; move it to `auth` or a header");
                    self.issues.push(with_offset(issue, offset));
                }
                continue;
            }
            if scope.names.contains(&root.as_str()) || BUILTIN_FUNCTIONS.contains(&root.as_str()) {
                continue;
            }
            if let Some((_, reason)) = scope.unavailable.iter().find(|(name, _)| name == root) {
                let issue =
                    Issue::error(at, Anchor::Value, format!("`{root}` is not available here"))
                        .with_hint(*reason);
                self.issues.push(with_offset(issue, offset));
                continue;
            }
            let mut available = scope.names.clone();
            if scope.secrets {
                available.push("secret");
            }
            let hint = match did_you_mean(root, available.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("available here: {}", list(&available)),
            };
            let issue = Issue::error(
                at,
                Anchor::Value,
                format!("undefined variable `{root}` in template"),
            )
            .with_hint(hint);
            self.issues.push(with_offset(issue, offset));
        }
        Some(names.refs)
    }

    /// Records the streams a field template refers to through `ref()`.
    pub(super) fn stream_refs(&mut self, stream: &str, at: &[String], refs: BTreeSet<String>) {
        for target in refs {
            self.stream_refs
                .push((stream.to_string(), at.to_vec(), target));
        }
    }

    pub(super) fn json_path(&mut self, at: &[String], json_path: &JsonPath) {
        use jsonpath_rust::parser::errors::JsonPathError;
        use pest::error::LineColLocation;
        let text = json_path.as_str();
        match jsonpath_rust::parser::parse_json_path(text) {
            Ok(_) => {}
            Err(JsonPathError::PestError(e)) => {
                // The grammar's rule names mean little to a person; the place does.
                let column = match e.line_col {
                    LineColLocation::Pos((_, column)) | LineColLocation::Span((_, column), _) => {
                        column
                    }
                };
                let issue = Issue::error(
                    at,
                    Anchor::Value,
                    format!("invalid JSONPath `{text}`: it does not parse at character {column}"),
                )
                .with_hint("e.g. \"$.data[*]\", \"$.id\" or \"$.items[?@.active == true]\"")
                .at_offset(column.saturating_sub(1), 1);
                self.issues.push(issue);
            }
            Err(e) => {
                self.error(at, Anchor::Value, format!("invalid JSONPath `{text}`: {e}"));
            }
        }
    }

    /// Reports a webhook path used twice.
    pub(super) fn webhook_path(&mut self, at: &[String], webhook_path: &str) {
        if !webhook_path.starts_with('/') {
            self.error(
                at,
                Anchor::Value,
                format!("webhook path `{webhook_path}` must start with `/`"),
            );
        }
        match self.webhook_paths.get(webhook_path) {
            Some(first) => {
                let first = super::diagnostic::display_path(first);
                self.error(
                    at,
                    Anchor::Value,
                    format!("webhook path `{webhook_path}` is already used"),
                )
                .hint = Some(format!(
                    "first declared at `{first}`; every webhook needs its own path"
                ));
            }
            None => {
                self.webhook_paths
                    .insert(webhook_path.to_string(), at.to_vec());
            }
        }
    }

    /// Every `ref()` names a stream, and no streams refer to each other in a cycle
    /// (a stream that refers to another runs after it).
    fn stream_dependencies(&mut self) {
        let refs = std::mem::take(&mut self.stream_refs);
        let mut edges: HashMap<&str, Vec<&str>> = HashMap::new();
        for (stream, at, target) in &refs {
            if !self.streams.contains_key(target) {
                let names: Vec<&str> = self.streams.keys().map(String::as_str).collect();
                let hint = match did_you_mean(target, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("defined streams: {}", list(&names)),
                };
                self.error(
                    at,
                    Anchor::Value,
                    format!("`ref()` names unknown stream `{target}`"),
                )
                .hint = Some(hint);
            } else if target == stream {
                self.error(
                    at,
                    Anchor::Value,
                    format!("stream `{stream}` refers to itself through `ref()`"),
                );
            } else {
                edges
                    .entry(stream.as_str())
                    .or_default()
                    .push(target.as_str());
            }
        }
        if let Some(cycle) = find_cycle(&edges) {
            let at = refs
                .iter()
                .find(|(stream, _, _)| stream == cycle[0])
                .map(|(_, at, _)| at.clone())
                .unwrap_or_default();
            let chain = cycle.join("` -> `");
            self.error(
                &at,
                Anchor::Value,
                format!("streams refer to each other in a cycle: `{chain}`"),
            )
            .hint = Some(
                "a stream runs after the streams it refers to, so one of these references must go"
                    .into(),
            );
        }
    }
}

/// A cycle in the stream dependency graph, as the list of streams around it (the
/// first repeated at the end).
fn find_cycle<'s>(edges: &HashMap<&'s str, Vec<&'s str>>) -> Option<Vec<&'s str>> {
    fn visit<'s>(
        node: &'s str,
        edges: &HashMap<&'s str, Vec<&'s str>>,
        stack: &mut Vec<&'s str>,
        done: &mut BTreeSet<&'s str>,
    ) -> Option<Vec<&'s str>> {
        if let Some(i) = stack.iter().position(|n| *n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut starts: Vec<&str> = edges.keys().copied().collect();
    starts.sort_unstable();
    let mut done = BTreeSet::new();
    starts
        .into_iter()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

/// Character offset of `word` as a whole word in `text`.
fn word_offset(text: &str, word: &str) -> Option<usize> {
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(found) = text[from..].find(word) {
        let start = from + found;
        let end = start + word.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if !before.is_some_and(is_name) && !after.is_some_and(is_name) {
            return Some(text[..start].chars().count());
        }
        from = end;
    }
    None
}

fn with_offset(issue: Issue, offset: Option<(usize, usize)>) -> Issue {
    match offset {
        Some((offset, width)) => issue.at_offset(offset, width),
        None => issue,
    }
}
