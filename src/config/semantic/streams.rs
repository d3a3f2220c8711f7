//! Checks of streams: their systems, source of truth, fields and rules.

use indexmap::IndexMap;

use super::{join, path, Checker, Scope};
use crate::config::diagnostic::{did_you_mean, display_path};
use crate::config::stream::{
    ConflictRule, DeleteMode, FieldConfig, OneWayStreamConfig, SourceConfig, StreamConfig,
    StreamSettings, TwoWayFieldConfig, TwoWayStreamConfig, WebhookConfig, WebhookVerifyConfig,
    WritesConfig,
};
use crate::config::system::SystemConfig;
use crate::config::yaml_tree::Anchor;

/// The side of a stream that is written, with what the write checks need to know.
struct WrittenSide<'c> {
    /// Where the side is declared (`streams.x.target`, `streams.x.sides.a`).
    base: Vec<String>,
    system: Option<&'c SystemConfig>,
    writes: &'c WritesConfig,
    /// The side has a listing (`read`) to find records in.
    has_read: bool,
    /// Fields the side may match on.
    match_on: &'c [String],
    match_on_at: Vec<String>,
    /// Names of the mapped fields.
    field_names: Vec<&'c str>,
    deletes: DeleteMode,
    deletes_at: Vec<String>,
}

impl<'a> Checker<'a> {
    pub(super) fn stream(&mut self, name: &str, stream: &'a StreamConfig) {
        let base = path(&["streams", name]);
        match stream {
            StreamConfig::OneWay(s) => self.one_way(name, &base, s),
            StreamConfig::TwoWay(s) => self.two_way(&base, s),
        }
        self.settings(&base, stream.settings());
    }

    fn one_way(&mut self, name: &str, base: &[String], s: &'a OneWayStreamConfig) {
        let source_system = self.system_ref(&join(base, &["source", "system"]), &s.source.system);
        let target_system = self.system_ref(&join(base, &["target", "system"]), &s.target.system);
        let truth_at = join(base, &["source_of_truth"]);
        let truth = s.source_of_truth.as_str();
        if truth == s.target.system {
            self.error(&truth_at, Anchor::Value, format!(
                "`{truth}` is the target of this stream: a one-way stream never writes to its source of truth"
            ))
            .hint = Some(format!(
                "set `source_of_truth: {}` or swap `source` and `target`",
                s.source.system
            ));
        } else if truth != s.source.system && self.system_ref(&truth_at, truth).is_some() {
            self.error(
                &truth_at,
                Anchor::Value,
                format!(
                    "source of truth `{truth}` is not this stream's source `{}`",
                    s.source.system
                ),
            )
            .hint = Some("a one-way stream's source of truth is the system it reads from".into());
        }
        self.source(&join(base, &["source"]), &s.source, source_system);

        let target_base = join(base, &["target"]);
        let has_read = s.target.read.is_some();
        if let Some(read) = &s.target.read {
            self.read(
                &join(&target_base, &["read"]),
                read,
                &Scope::new(&["env", "now"]),
            );
            if s.target.id.is_none() {
                self.error(
                    &join(&target_base, &["read"]),
                    Anchor::Key,
                    "`read` needs `id`: where a listed record's id is",
                )
                .hint = Some("add `id: \"$.id\"` to the target".into());
            }
        }
        if let Some(id) = &s.target.id {
            self.json_path(&join(&target_base, &["id"]), id);
        }
        if matches!(target_system, Some(SystemConfig::Jsonl(_))) && has_read {
            self.error(
                &join(&target_base, &["read"]),
                Anchor::Key,
                "`read` does not apply to a jsonl target",
            );
        }
        self.written_side(WrittenSide {
            base: target_base.clone(),
            system: target_system,
            writes: &s.target.writes,
            has_read,
            match_on: &s.target.match_on,
            match_on_at: join(&target_base, &["match_on"]),
            field_names: s.fields.keys().map(String::as_str).collect(),
            deletes: s.settings.deletes,
            deletes_at: join(base, &["deletes"]),
        });
        self.fields(name, base, &s.fields);
        if let Some(webhook) = &s.webhook {
            self.webhook(&join(base, &["webhook"]), webhook);
        }
    }

    fn two_way(&mut self, base: &[String], s: &'a TwoWayStreamConfig) {
        let field_names: Vec<&str> = s.fields.keys().map(String::as_str).collect();
        let mut sets_updated_at = Vec::new();
        for (side_name, side) in [("a", &s.sides.a), ("b", &s.sides.b)] {
            let side_base = join(base, &["sides", side_name]);
            let system = self.system_ref(&join(&side_base, &["system"]), &side.read.system);
            self.source(&side_base, &side.read, system);
            self.written_side(WrittenSide {
                base: side_base.clone(),
                system,
                writes: &side.writes,
                has_read: side.read.read.is_some(),
                match_on: &s.match_on,
                match_on_at: join(base, &["match_on"]),
                field_names: field_names.clone(),
                deletes: s.settings.deletes,
                deletes_at: join(base, &["deletes"]),
            });
            if let Some(webhook) = &side.webhook {
                self.webhook(&join(&side_base, &["webhook"]), webhook);
            }
            sets_updated_at.push((side_name, side.read.updated_at.is_some()));
        }
        for (name, field) in &s.fields {
            self.two_way_field(
                &join(base, &["fields", name]),
                name,
                field,
                &sets_updated_at,
            );
        }
    }

    fn two_way_field(
        &mut self,
        at: &[String],
        name: &str,
        field: &TwoWayFieldConfig,
        sets_updated_at: &[(&str, bool)],
    ) {
        for (side, json_path) in [("a", &field.a), ("b", &field.b)] {
            let side_at = join(at, &[side]);
            self.json_path(&side_at, json_path);
            if !is_settable(json_path.as_str()) {
                self.error(
                    &side_at,
                    Anchor::Value,
                    format!(
                        "`{}` cannot be written: a two-way field needs a plain path",
                        json_path.as_str()
                    ),
                )
                .hint =
                    Some("use a path of names only, e.g. \"$.email\" or \"$.address.city\"".into());
            }
        }
        match (field.owner, field.conflict) {
            (None, None) => {
                self.error(
                    at,
                    Anchor::Key,
                    format!("two-way field `{name}` has no rule for who wins"),
                )
                .hint = Some("add `owner: a`, `owner: b` or `conflict: last_write_wins`".into());
            }
            (Some(_), Some(_)) => {
                self.error(
                    &join(at, &["conflict"]),
                    Anchor::Key,
                    "`owner` and `conflict` exclude each other",
                )
                .hint = Some("an owned field has no conflicts: the owner always wins".into());
            }
            (None, Some(ConflictRule::LastWriteWins)) => {
                for (side, has_updated_at) in sets_updated_at {
                    if !has_updated_at {
                        self.error(&join(at, &["conflict"]), Anchor::Value, format!(
                            "`last_write_wins` compares `updated_at`, which side `{side}` does not set"
                        ));
                    }
                }
            }
            (Some(_), None) => {}
        }
    }

    fn source(&mut self, base: &[String], source: &SourceConfig, system: Option<&SystemConfig>) {
        self.json_path(&join(base, &["id"]), &source.id);
        for (key, json_path) in [
            ("updated_at", &source.updated_at),
            ("tombstone", &source.tombstone),
        ] {
            if let Some(json_path) = json_path {
                self.json_path(&join(base, &[key]), json_path);
            }
        }
        let mut scope = Scope::new(&["env", "now"]);
        if source.updated_at.is_some() {
            scope = scope.with("watermark");
        } else {
            scope = scope.without(
                "watermark",
                "the watermark is the latest `updated_at`: set `updated_at` on this side",
            );
        }
        if source.parent.is_some() {
            scope = scope.with("parent");
        }
        match (system, &source.read) {
            (Some(SystemConfig::Http(_)), None) => {
                self.error(
                    base,
                    Anchor::Key,
                    "an http system is read through `read`, which is missing here",
                )
                .hint = Some("add `read:` with the listing's `path` and `records`".into());
            }
            (Some(SystemConfig::Jsonl(_)), Some(_)) => {
                self.error(
                    &join(base, &["read"]),
                    Anchor::Key,
                    "`read` does not apply to a jsonl system",
                )
                .hint = Some("a jsonl file is read line by line; remove `read`".into());
            }
            (_, Some(read)) => self.read(&join(base, &["read"]), read, &scope),
            _ => {}
        }
        if let Some(parent) = &source.parent {
            if matches!(system, Some(SystemConfig::Jsonl(_))) {
                self.error(
                    &join(base, &["parent"]),
                    Anchor::Key,
                    "`parent` does not apply to a jsonl system",
                );
            }
            self.read(
                &join(base, &["parent", "read"]),
                &parent.read,
                &Scope::new(&["env", "now"]),
            );
        }
        if source.incremental.is_some() && source.updated_at.is_none() {
            self.error(
                &join(base, &["incremental"]),
                Anchor::Key,
                "`incremental` needs `updated_at`, which the watermark is taken from",
            );
        }
    }

    fn written_side(&mut self, side: WrittenSide<'a>) {
        let base = &side.base;
        let writes = side.writes;
        let create_scope = Scope::new(&["env", "now", "record", "fields", "source_id"])
            .without("target_id", "only `update` and `delete` know the target id");
        let write_scope = Scope::new(&["env", "now", "record", "fields", "source_id", "target_id"]);
        // Templates and paths are checked whatever the system, even an unknown one.
        if let Some(create) = &writes.create {
            self.write(&join(base, &["create"]), create, &create_scope, true);
        }
        for (key, request) in [("update", &writes.update), ("delete", &writes.delete)] {
            if let Some(request) = request {
                self.write(&join(base, &[key]), request, &write_scope, false);
            }
        }
        if let Some(lookup) = &writes.lookup {
            self.read(
                &join(base, &["lookup"]),
                lookup,
                &Scope::new(&["env", "now", "match"]),
            );
        }
        match side.system {
            Some(SystemConfig::Http(_)) => self.http_writes(&side),
            Some(SystemConfig::Jsonl(_)) => {
                let present = [
                    ("create", writes.create.is_some()),
                    ("update", writes.update.is_some()),
                    ("delete", writes.delete.is_some()),
                    ("lookup", writes.lookup.is_some()),
                    ("idempotency_header", writes.idempotency_header.is_some()),
                ];
                for (key, _) in present.iter().filter(|(_, present)| *present) {
                    self.error(
                        &join(base, &[key]),
                        Anchor::Key,
                        format!("`{key}` does not apply to a jsonl system"),
                    )
                    .hint = Some("records are appended to the file as JSON lines".into());
                }
                if side.deletes != DeleteMode::Ignore {
                    self.error(
                        &side.deletes_at,
                        Anchor::Value,
                        "a jsonl file is append-only: `deletes` must be `ignore`",
                    );
                }
            }
            None => {}
        }
        for (i, field) in side.match_on.iter().enumerate() {
            self.mapped_field(
                &join(&side.match_on_at, &[&i.to_string()]),
                field,
                &side.field_names,
                "match_on",
            );
        }
        if let Some(external_id) = &writes.external_id {
            self.mapped_field(
                &join(base, &["external_id"]),
                external_id,
                &side.field_names,
                "external_id",
            );
        }
        if side.deletes == DeleteMode::Soft
            && writes.soft_delete.is_empty()
            && !matches!(side.system, Some(SystemConfig::Jsonl(_)))
        {
            self.error(&side.deletes_at, Anchor::Value, format!(
                "`deletes: soft` needs `soft_delete` on `{}`: the fields to set, e.g. `{{ archived: true }}`",
                display_path(base)
            ));
        }
        if side.deletes != DeleteMode::Soft && !writes.soft_delete.is_empty() {
            self.warning(
                &join(base, &["soft_delete"]),
                Anchor::Key,
                "`soft_delete` is unused unless `deletes: soft`",
            );
        }
    }

    /// What an HTTP system needs to be written to, and whether an in-doubt create on
    /// it can be resolved.
    fn http_writes(&mut self, side: &WrittenSide<'a>) {
        let base = &side.base;
        let writes = side.writes;
        match &writes.create {
            Some(create) if create.id.is_none() && create.assign_id.is_none() => {
                self.error(&join(base, &["create"]), Anchor::Key, "`create` needs `id` or `assign_id`")
                    .hint = Some("`id`: where the new record's id is in the response (\"$.id\"); `assign_id`: the id the runner chooses".into());
            }
            Some(_) => {}
            None => {
                self.error(
                    base,
                    Anchor::Key,
                    "an http system is written through `create` and `update`; `create` is missing",
                )
                .hint = Some("add `create: { method: POST, path: ..., id: \"$.id\" }`".into());
            }
        }
        if writes.update.is_none() {
            self.error(
                base,
                Anchor::Key,
                "an http system is written through `create` and `update`; `update` is missing",
            )
            .hint =
                Some("add `update: { method: PATCH, path: \"/things/{{ target_id }}\" }`".into());
        }
        if writes.delete.is_none() && side.deletes == DeleteMode::Hard {
            self.error(
                &side.deletes_at,
                Anchor::Value,
                format!(
                    "`deletes: hard` needs a `delete` request on `{}`",
                    display_path(base)
                ),
            );
        }
        let can_find = side.has_read || writes.lookup.is_some();
        if !side.match_on.is_empty() && !can_find {
            self.error(
                &side.match_on_at,
                Anchor::Key,
                "`match_on` needs `lookup` or `read` to find existing records",
            );
        }
        if writes.external_id.is_some() && !can_find {
            self.error(
                &join(base, &["external_id"]),
                Anchor::Key,
                "`external_id` needs `lookup` or `read` to find records by it",
            );
        }
        let create_is_safe = writes.idempotency_header.is_some()
            || writes
                .create
                .as_ref()
                .is_some_and(|c| c.assign_id.is_some())
            || !side.match_on.is_empty()
            || writes.external_id.is_some();
        if writes.create.is_some() && !create_is_safe {
            self.warning(&join(base, &["create"]), Anchor::Key, "an in-doubt create on this system cannot be resolved")
                .hint = Some("after a timeout or crash the runner cannot tell whether the record was created, so it parks it as a dead letter; set `idempotency_header` if the API honours idempotency keys, or `match_on` / `external_id` with a `lookup`".into());
        }
    }

    fn mapped_field(&mut self, at: &[String], field: &str, field_names: &[&str], key: &str) {
        if !field_names.contains(&field) {
            let issue = self.error(
                at,
                Anchor::Value,
                format!("`{key}` names `{field}`, which is not a mapped field"),
            );
            issue.hint = Some(match did_you_mean(field, field_names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "it must be one of the keys under `fields`".into(),
            });
        }
    }

    fn fields(&mut self, stream: &str, base: &[String], fields: &IndexMap<String, FieldConfig>) {
        let scope = Scope::new(&["env", "now", "record", "ref"]);
        for (name, field) in fields {
            let at = join(base, &["fields", name]);
            match (&field.from, &field.template) {
                (Some(_), Some(_)) => {
                    self.error(
                        &join(&at, &["template"]),
                        Anchor::Key,
                        "`from` and `template` exclude each other",
                    );
                }
                (None, None) if field.default.is_none() => {
                    self.error(&at, Anchor::Key, format!("field `{name}` has no value"))
                        .hint = Some("add `from` (a source path), `template` or `default`".into());
                }
                _ => {}
            }
            if let Some(from) = &field.from {
                self.json_path(&join(&at, &["from"]), from);
            }
            if let Some(template) = &field.template {
                let template_at = join(&at, &["template"]);
                if let Some(refs) = self.template(&template_at, template, &scope) {
                    self.stream_refs(stream, &template_at, refs);
                }
            }
        }
    }

    fn webhook(&mut self, base: &[String], webhook: &WebhookConfig) {
        self.webhook_path(&join(base, &["path"]), &webhook.path);
        if let Some(WebhookVerifyConfig::HmacSha256(hmac)) = &webhook.verify {
            self.template(
                &join(base, &["verify", "secret"]),
                &hmac.secret,
                &Scope::credential(),
            );
        }
        self.json_path(&join(base, &["event_id"]), &webhook.event_id);
        self.json_path(&join(base, &["record"]), &webhook.record);
        match &webhook.event_type {
            Some(event_type) => self.json_path(&join(base, &["event_type"]), event_type),
            None if !webhook.delete_events.is_empty() => {
                self.error(
                    &join(base, &["delete_events"]),
                    Anchor::Key,
                    "`delete_events` needs `event_type`: where an event's type is",
                );
            }
            None => {}
        }
    }

    fn settings(&mut self, base: &[String], settings: &StreamSettings) {
        if let Some(schedule) = &settings.schedule {
            for (key, spec) in [("pull", &schedule.pull), ("reconcile", &schedule.reconcile)] {
                if let Some(Err(message)) = spec.as_ref().map(|s| s.parse()) {
                    self.error(&join(base, &["schedule", key]), Anchor::Value, message);
                }
            }
        }
        if settings.max_delete_fraction.fraction() > 1.0 {
            self.error(
                &join(base, &["max_delete_fraction"]),
                Anchor::Value,
                "`max_delete_fraction` above 100% can never stop a mass delete",
            );
        }
        if let Some(alerts) = &settings.alerts {
            self.template(
                &join(base, &["alerts", "webhook"]),
                &alerts.webhook,
                &Scope::credential(),
            );
        }
    }
}

/// Whether a JSONPath names a single place the runner can write: `$.a.b` or `$['a']`.
fn is_settable(json_path: &str) -> bool {
    let Some(mut rest) = json_path.strip_prefix('$') else {
        return false;
    };
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    };
    let mut segments = 0;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if !is_name(&after[..end]) {
                return false;
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")) {
            let Some(end) = after.find(['\'', '"']) else {
                return false;
            };
            if after[..end].is_empty() || !after[end + 1..].starts_with(']') {
                return false;
            }
            rest = &after[end + 2..];
        } else {
            return false;
        }
        segments += 1;
    }
    segments > 0
}

#[cfg(test)]
mod tests {
    use super::is_settable;

    #[test]
    fn plain_paths_are_settable() {
        for ok in ["$.email", "$.address.city", "$['first name']", "$.a['b'].c"] {
            assert!(is_settable(ok), "{ok}");
        }
        for bad in [
            "$",
            "$.items[*]",
            "$..email",
            "$.a[0]",
            "email",
            "$.a[?@.b]",
        ] {
            assert!(!is_settable(bad), "{bad}");
        }
    }
}
