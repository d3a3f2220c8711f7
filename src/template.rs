//! Templates: the minijinja environment pipelines are rendered with, and the static
//! analysis `validate` runs on every template (syntax, names used).
//!
//! Templates render with strict undefined, so a misspelled name fails loudly at run
//! time. `validate` goes further and rejects names that cannot exist where the
//! template is used, which strict undefined alone cannot catch for filters such as
//! `{{ missing | urlencode }}` (the filter turns undefined into "").

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use minijinja::{Environment, UndefinedBehavior};

/// The environment every pipeline template is compiled in.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_debug(true);
    env
}

/// A template value from anything serializable (a record, a map of variables).
pub fn to_value<T: serde::Serialize>(value: T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(value))
}

/// Templates a pipeline renders, compiled once per thread: the same few templates
/// (request paths, URLs) are rendered for every record.
const CACHE_LIMIT: usize = 256;

thread_local! {
    static COMPILED: RefCell<Environment<'static>> = RefCell::new(environment());
    static ANALYZED: RefCell<HashMap<String, TemplateNames>> = RefCell::new(HashMap::new());
}

/// Whether `source` is plain text that renders as itself.
pub fn is_plain(source: &str) -> bool {
    !source.contains("{{") && !source.contains("{%") && !source.contains("{#")
}

/// Renders `source` with `context`. Undefined names are errors (strict undefined).
pub fn render(source: &str, context: &minijinja::Value) -> Result<String, String> {
    if is_plain(source) {
        return Ok(source.to_string());
    }
    let describe = |e: minijinja::Error| match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    COMPILED.with(|env| {
        let mut env = env.borrow_mut();
        if env.get_template(source).is_err() {
            if env.templates().count() >= CACHE_LIMIT {
                env.clear_templates();
            }
            env.add_template_owned(source.to_string(), source.to_string())
                .map_err(describe)?;
        }
        env.get_template(source)
            .and_then(|template| template.render(context))
            .map_err(describe)
    })
}

/// What a template refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateNames {
    /// Top-level names, e.g. `record`, `env`.
    pub roots: BTreeSet<String>,
    /// Dotted names, e.g. `env.CRM_URL`, `secret.API_KEY`.
    pub dotted: BTreeSet<String>,
    /// First arguments of `ref('stream', ...)` calls: the streams it depends on.
    pub refs: BTreeSet<String>,
}

/// A template that does not parse: the message and the character offset of the bad
/// token in the template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSyntaxError {
    pub message: String,
    pub offset: Option<usize>,
}

/// [`analyze`], remembered per thread: run time renders the same templates again and
/// again.
pub fn analyze_cached(source: &str) -> Result<TemplateNames, TemplateSyntaxError> {
    if let Some(names) = ANALYZED.with(|cache| cache.borrow().get(source).cloned()) {
        return Ok(names);
    }
    let names = analyze(source)?;
    ANALYZED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(source.to_string(), names.clone());
    });
    Ok(names)
}

/// Parses `source` and lists the names it uses.
pub fn analyze(source: &str) -> Result<TemplateNames, TemplateSyntaxError> {
    let env = environment();
    let template = env
        .template_from_str(source)
        .map_err(|e| TemplateSyntaxError {
            message: e.detail().unwrap_or("invalid template").to_string(),
            offset: e
                .range()
                .map(|range| source.get(..range.start).unwrap_or(source).chars().count()),
        })?;
    Ok(TemplateNames {
        roots: template.undeclared_variables(false).into_iter().collect(),
        dotted: template.undeclared_variables(true).into_iter().collect(),
        refs: ref_targets(source),
    })
}

/// Finds `ref('name'` / `ref("name"` in a template. A literal first argument is the
/// only form that names a stream, so a scan of the text is enough.
fn ref_targets(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("ref(") {
        let preceded_by_name = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
        rest = &rest[at + 4..];
        if preceded_by_name {
            continue;
        }
        let args = rest.trim_start();
        let Some(quote) = args.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            continue;
        };
        if let Some(end) = args[1..].find(quote) {
            found.insert(args[1..1 + end].to_string());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_listed_top_level_and_dotted() {
        let names = analyze("{{ env.CRM_URL }}/x/{{ record.id | urlencode }}").unwrap();
        assert_eq!(
            names.roots,
            ["env", "record"].map(String::from).into_iter().collect()
        );
        assert!(names.dotted.contains("env.CRM_URL"));
    }

    #[test]
    fn syntax_errors_carry_an_offset() {
        let err = analyze("hello {{ record.id }").unwrap_err();
        assert!(err.message.contains("expected"), "{}", err.message);
        assert!(err.offset.is_some());
    }

    #[test]
    fn rendering_is_strict_about_undefined_names() {
        let context = minijinja::context! { record => minijinja::context! { id => 7 } };
        assert_eq!(render("/c/{{ record.id }}", &context).unwrap(), "/c/7");
        let err = render("{{ record.nope }}", &context).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn ref_calls_name_their_stream() {
        let names = analyze("{{ ref('customers', record.customer_id) }}").unwrap();
        assert_eq!(names.refs, ["customers".to_string()].into_iter().collect());
        assert!(analyze("{{ pref('x') }}").unwrap().refs.is_empty());
    }
}
