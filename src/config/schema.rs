//! The JSON schema of the pipeline language, generated from the config model so the two
//! cannot drift: `runner schema` prints it and `schema/pipeline.schema.json` is a
//! committed copy that editors use (a test fails when the copy is stale).

use std::sync::OnceLock;

use serde_json::Value;

use super::model::PipelineConfig;

/// The schema as JSON.
pub fn pipeline_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut schema = schemars::schema_for!(PipelineConfig).to_value();
        strip_null(&mut schema);
        schema
    })
}

/// Removes `null` from the types schemars allows for `Option` fields. Optional keys are
/// simply left out in a pipeline; an explicit empty value (`auth:` with nothing after
/// it) is far more often a half-written entry than a wish for "none", so the schema
/// asks for a real value instead of accepting it silently.
fn strip_null(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            if let Some(Value::Array(options)) = map.get_mut("enum") {
                options.retain(|o| !o.is_null());
            }
            let is_null_schema = |s: &Value| {
                s.get("type") == Some(&Value::from("null")) || s.get("const") == Some(&Value::Null)
            };
            if let Some(Value::Array(branches)) = map.get_mut("anyOf") {
                branches.retain(|b| !is_null_schema(b));
                if branches.len() == 1 {
                    // `anyOf: [X]` is just X: lift it so errors are not wrapped twice.
                    if let Some(Value::Object(only)) = branches.pop() {
                        map.remove("anyOf");
                        for (key, value) in only {
                            map.entry(key).or_insert(value);
                        }
                    }
                }
            }
            for value in map.values_mut() {
                strip_null(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// The schema as the pretty-printed text `runner schema` prints.
pub fn pipeline_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(pipeline_schema())
        // Serializing a `Value` only fails for non-string map keys, which JSON lacks.
        .unwrap_or_default();
    text.push('\n');
    text
}

/// Follows a JSON pointer into the schema, through `$ref`s to `#/$defs/...`, so a
/// check can read what the schema allows at the place an error came from.
pub fn schema_at(pointer: &str) -> Option<&'static Value> {
    let root = pipeline_schema();
    let mut node = root;
    for segment in pointer.split('/').skip(1) {
        let key = segment.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(map) => map.get(&key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(resolve_ref(node))
}

/// The schema a `$ref` points at (one level of `#/$defs/Name`), else the node itself.
pub fn resolve_ref(node: &'static Value) -> &'static Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(target) => target
            .strip_prefix('#')
            .and_then(|pointer| pipeline_schema().pointer(pointer))
            .unwrap_or(node),
        None => node,
    }
}
