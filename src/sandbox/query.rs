//! The query string of a listing request: paging parameters, `updated_since`, and
//! equality filters on record fields. Unknown parameters are ignored silently, the way
//! real APIs ignore a typo — which is exactly the trap a lookup must not fall into.

use super::clock::parse_rfc3339_ns;
use super::config::{AppConfig, FilterMode};
use super::listing::{Filter, Source};

/// Parameters that steer paging or the time filter, never a field filter.
const RESERVED: [&str; 6] = [
    "cursor",
    "limit",
    "per_page",
    "offset",
    "page",
    "updated_since",
];

#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Every pair as sent, to rebuild next-page URLs that keep the caller's parameters.
    pub pairs: Vec<(String, String)>,
    pub cursor: Option<String>,
    /// Page size, already defaulted and capped.
    pub size: usize,
    pub offset: usize,
    /// 1-based page number, when sent.
    pub page: Option<usize>,
    pub filter: Filter,
}

impl ListQuery {
    /// Parses `raw` (the query string without `?`). `secret_param` is the API key's
    /// query parameter, if the app uses one: it must not become a filter.
    pub fn parse(
        raw: Option<&str>,
        config: &AppConfig,
        secret_param: Option<&str>,
        source: &Source,
    ) -> Result<ListQuery, String> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let size = value("limit")
            .or_else(|| value("per_page"))
            .map(|v| parse_number(v, "limit/per_page"))
            .transpose()?
            .unwrap_or(config.default_page_size)
            .clamp(1, config.max_page_size.max(1));
        let offset = value("offset")
            .map(|v| parse_number(v, "offset"))
            .transpose()?
            .unwrap_or(0);
        let page = value("page").map(|v| parse_number(v, "page")).transpose()?;
        if page == Some(0) {
            return Err("page numbers start at 1".to_string());
        }
        // An API that ignores the filter does not even look at it.
        let since = value("updated_since")
            .filter(|_| config.updated_filter != FilterMode::Ignored)
            .map(|v| parse_since(v, config.updated_filter.clone()))
            .transpose()?;
        let fields = pairs
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()) && Some(k.as_str()) != secret_param)
            .filter(|(k, _)| source.is_known_field(k))
            .cloned()
            .collect();
        Ok(ListQuery {
            cursor: value("cursor")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            pairs: pairs.clone(),
            size,
            offset,
            page,
            filter: Filter { since, fields },
        })
    }

    /// The query string with `page` set to `page` and everything else kept.
    pub fn with_page(&self, page: usize) -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        let mut replaced = false;
        for (name, value) in &self.pairs {
            if name == "page" {
                if !replaced {
                    serializer.append_pair("page", &page.to_string());
                    replaced = true;
                }
            } else {
                serializer.append_pair(name, value);
            }
        }
        if !replaced {
            serializer.append_pair("page", &page.to_string());
        }
        serializer.finish()
    }
}

fn parse_number(text: &str, name: &str) -> Result<usize, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{name} must be a non-negative integer, got {text:?}"))
}

fn parse_since(text: &str, mode: FilterMode) -> Result<(i128, FilterMode), String> {
    let ns = parse_rfc3339_ns(text).ok_or_else(|| {
        format!(
            "updated_since must be an RFC 3339 timestamp such as 2026-12-04T10:00:00.123Z, got {text:?} \
             (a '+' in a query string must be sent as %2B)"
        )
    })?;
    Ok((ns, mode))
}
