//! Where `{{ env.X }}` and `{{ secret.X }}` get their values at run time, and the
//! rendering of a pipeline's templates with them.
//!
//! Both come from the process environment, read once at start. A value read through
//! `secret` is registered with the [`Redactor`] the moment it is read, so it cannot
//! reach a log line or an error afterwards.

use std::collections::BTreeMap;

use minijinja::Value;

use crate::http::redact::Redactor;
use crate::template::{analyze_cached, is_plain, render, to_value};

/// The environment and secrets templates render with.
#[derive(Debug, Clone)]
pub struct Vars {
    env: BTreeMap<String, String>,
    redactor: Redactor,
}

impl Vars {
    /// A snapshot of the process environment.
    pub fn from_process_env(redactor: Redactor) -> Vars {
        Vars::with_env(std::env::vars().collect(), redactor)
    }

    /// Explicit variables (tests, the demo).
    pub fn with_env(env: BTreeMap<String, String>, redactor: Redactor) -> Vars {
        Vars { env, redactor }
    }

    /// The environment, as templates see it under `env`.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The secret `name`, registered for redaction.
    pub fn secret(&self, name: &str) -> Result<String, String> {
        match self.env.get(name) {
            Some(value) => {
                self.redactor.add(value);
                Ok(value.clone())
            }
            None => Err(format!(
                "secret `{name}` is not set: export the environment variable {name}"
            )),
        }
    }

    /// Renders `template` with `env`, `secret` (when `allow_secrets`) and the
    /// entries of `extra` (`record`, `watermark`, ...).
    pub fn render(
        &self,
        template: &str,
        extra: &[(&str, Value)],
        allow_secrets: bool,
    ) -> Result<String, String> {
        if is_plain(template) {
            return Ok(template.to_string());
        }
        let names =
            analyze_cached(template).map_err(|e| format!("invalid template: {}", e.message))?;
        let mut env = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for dotted in &names.dotted {
            if let Some(name) = dotted.strip_prefix("env.") {
                let value = self
                    .env
                    .get(name)
                    .ok_or_else(|| format!("environment variable `{name}` is not set"))?;
                env.insert(name.to_string(), value.clone());
            } else if let Some(name) = dotted.strip_prefix("secret.") {
                if !allow_secrets {
                    return Err(format!(
                        "`secret.{name}` may only be used in credentials and headers"
                    ));
                }
                secrets.insert(name.to_string(), self.secret(name)?);
            }
        }
        let mut context: BTreeMap<&str, Value> = extra.iter().cloned().collect();
        context.insert("env", to_value(&env));
        context.insert("secret", to_value(&secrets));
        let rendered = render(template, &to_value(&context))?;
        if !secrets.is_empty() {
            // A credential built from a secret ("Bearer {{ secret.T }}") is secret too.
            self.redactor.add(&rendered);
        }
        Ok(rendered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        let env = [("CRM_URL", "http://crm"), ("TOKEN", "tok-123456")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into_iter()
            .collect();
        Vars::with_env(env, Redactor::new())
    }

    #[test]
    fn env_and_secrets_render_and_secrets_get_redacted() {
        let vars = vars();
        assert_eq!(
            vars.render("{{ env.CRM_URL }}/v1", &[], false).unwrap(),
            "http://crm/v1"
        );
        let header = vars.render("Bearer {{ secret.TOKEN }}", &[], true).unwrap();
        assert_eq!(header, "Bearer tok-123456");
        assert_eq!(vars.redactor().redact("sent tok-123456"), "sent [redacted]");
    }

    #[test]
    fn missing_values_are_named() {
        let vars = vars();
        let err = vars.render("{{ env.NOPE }}", &[], false).unwrap_err();
        assert_eq!(err, "environment variable `NOPE` is not set");
        let err = vars.render("{{ secret.NOPE }}", &[], true).unwrap_err();
        assert!(err.starts_with("secret `NOPE` is not set"), "{err}");
        let err = vars.render("{{ secret.TOKEN }}", &[], false).unwrap_err();
        assert!(err.contains("only be used in credentials"), "{err}");
    }

    #[test]
    fn extra_context_is_available() {
        let vars = vars();
        let out = vars
            .render(
                "/c/{{ record.id }}",
                &[("record", to_value(serde_json::json!({"id": 5})))],
                false,
            )
            .unwrap();
        assert_eq!(out, "/c/5");
    }
}
