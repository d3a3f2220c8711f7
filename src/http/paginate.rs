//! Paging through a listing, for every pagination style, as a stream of pages: memory
//! holds one page at a time however long the listing is.
//!
//! Every style stops on: no next token or URL, an empty page, `has_more` false or
//! null, `total_records` or `total_pages` reached, a short page when `full_pages` is
//! set, or `max_pages`. A cursor or URL seen before, or a page identical to the one
//! before it, is a loop: the stream yields what it read and then fails naming the page.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use reqwest::header::{HeaderMap, LINK};
use serde_json::Value;

use super::client::{HttpSystem, Request, Response};
use super::error::HttpError;
use crate::config::request::{PaginateConfig, PaginationStyle, ReadConfig};
use crate::jsonpath::CompiledPath;
use crate::vars::Vars;

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    /// 1 for the first page.
    pub number: u64,
    /// The page's URL, redacted.
    pub url: String,
    pub records: Vec<Value>,
    /// The listing's total number of records, when the API says (`total_records`).
    pub total: Option<u64>,
    /// The request that continues the listing after this page, when there is one:
    /// saved as a checkpoint, it lets an interrupted listing resume here.
    pub next: Option<Resume>,
}

/// Where a listing goes on: the next request and how far it had come.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    pub target: String,
    pub query: Vec<(String, String)>,
    pub pages: u64,
    pub records: u64,
}

/// A listing, rendered and compiled, ready to page through.
#[derive(Debug, Clone)]
pub struct Listing {
    first: Request,
    records: CompiledPath,
    paging: Option<Arc<Paging>>,
    /// Pages and records read before the first request (a resumed listing).
    already: (u64, u64),
}

#[derive(Debug, Clone)]
struct Paging {
    style: PaginationStyle,
    param: Option<String>,
    cursor: Option<CompiledPath>,
    cursor_header: Option<String>,
    next: Option<CompiledPath>,
    size_param: Option<String>,
    size: Option<u64>,
    start: Option<u64>,
    has_more: Option<CompiledPath>,
    total_records: Option<CompiledPath>,
    total_pages: Option<CompiledPath>,
    full_pages: bool,
    max_pages: Option<u64>,
}

impl Listing {
    /// Renders `read` with `vars` and `context` (`watermark`, `parent`, ...). Query
    /// parameters that render empty are left out.
    pub fn new(
        read: &ReadConfig,
        vars: &Vars,
        context: &[(&str, minijinja::Value)],
    ) -> Result<Listing, HttpError> {
        let render = |what: &str, template: &str, secrets: bool| {
            vars.render(template, context, secrets)
                .map_err(|e| HttpError::Setup(format!("read {what}: {e}")))
        };
        let mut first = Request::get(render("path", read.path.as_str(), false)?);
        first.method = reqwest::Method::from_bytes(read.method.as_str().as_bytes())
            .map_err(|e| HttpError::Setup(e.to_string()))?;
        for (name, template) in &read.params {
            let value = render(name, template.as_str(), false)?;
            if !value.is_empty() {
                first.query.push((name.clone(), value));
            }
        }
        for (name, template) in &read.headers {
            first
                .headers
                .push((name.clone(), render(name, template.as_str(), true)?));
        }
        let records = CompiledPath::compile(read.records.as_str()).map_err(HttpError::Setup)?;
        let paging = read
            .paginate
            .as_ref()
            .map(|p| Paging::compile(p).map(Arc::new))
            .transpose()
            .map_err(HttpError::Setup)?;
        if let Some(paging) = &paging {
            paging.first_params(&mut first.query);
        }
        Ok(Listing {
            first,
            records,
            paging,
            already: (0, 0),
        })
    }

    /// The same listing, resumed where an interrupted one stopped.
    pub fn resume(mut self, at: &Resume) -> Listing {
        self.first.target = at.target.clone();
        self.first.query = at.query.clone();
        self.already = (at.pages, at.records);
        self
    }

    /// The first request of the listing.
    pub fn first_request(&self) -> &Request {
        &self.first
    }
}

impl Paging {
    fn compile(config: &PaginateConfig) -> Result<Paging, String> {
        let path = |p: &Option<crate::config::JsonPath>| {
            p.as_ref()
                .map(|p| CompiledPath::compile(p.as_str()))
                .transpose()
        };
        Ok(Paging {
            style: config.style,
            param: config.param.clone(),
            cursor: path(&config.cursor)?,
            cursor_header: config.cursor_header.clone(),
            next: path(&config.next)?,
            size_param: config.size_param.clone(),
            size: config.size,
            start: config.start,
            has_more: path(&config.has_more)?,
            total_records: path(&config.total_records)?,
            total_pages: path(&config.total_pages)?,
            full_pages: config.full_pages,
            max_pages: config.max_pages,
        })
    }

    fn first_params(&self, query: &mut Vec<(String, String)>) {
        if let (Some(name), Some(size)) = (&self.size_param, self.size) {
            set_param(query, name, size.to_string());
        }
        let start = match self.style {
            PaginationStyle::Offset => Some(self.start.unwrap_or(0)),
            PaginationStyle::Page => Some(self.start.unwrap_or(1)),
            _ => None,
        };
        if let (Some(name), Some(start)) = (&self.param, start) {
            set_param(query, name, start.to_string());
        }
    }
}

fn set_param(query: &mut Vec<(String, String)>, name: &str, value: String) {
    match query.iter_mut().find(|(n, _)| n == name) {
        Some(entry) => entry.1 = value,
        None => query.push((name.to_string(), value)),
    }
}

/// What to fetch next.
enum Next {
    Request(Request),
    /// The listing ended.
    End,
    /// The listing went wrong after the page just yielded.
    Fail(HttpError),
}

struct Walk {
    system: Arc<HttpSystem>,
    listing: Listing,
    next: Next,
    pages: u64,
    records: u64,
    seen: HashSet<String>,
    last_page: Option<u64>,
}

/// The pages of `listing` on `system`, one at a time.
pub fn pages(
    system: Arc<HttpSystem>,
    listing: Listing,
) -> BoxStream<'static, Result<Page, HttpError>> {
    let (pages, records) = listing.already;
    let walk = Walk {
        system,
        next: Next::Request(listing.first.clone()),
        listing,
        pages,
        records,
        seen: HashSet::new(),
        last_page: None,
    };
    stream::try_unfold(walk, |mut walk| async move {
        let request = match std::mem::replace(&mut walk.next, Next::End) {
            Next::End => return Ok(None),
            Next::Fail(error) => return Err(error),
            Next::Request(request) => request,
        };
        let response = walk.system.send(&request).await?;
        Ok(walk.take_page(response)?.map(|page| (page, walk)))
    })
    .boxed()
}

impl Walk {
    /// Takes the records out of a response and works out the next request.
    fn take_page(&mut self, response: Response) -> Result<Option<Page>, HttpError> {
        let Response {
            headers,
            url,
            mut body,
            ..
        } = response;
        if !self.listing.records.container_exists(&body) && !body.is_null() {
            return Err(HttpError::InvalidResponse {
                url,
                reason: format!(
                    "`records: {}` matches nothing in the response",
                    self.listing.records.as_str()
                ),
            });
        }
        let records = self.listing.records.take(&mut body);
        if records.is_empty() {
            return Ok(None);
        }
        self.pages += 1;
        self.records += records.len() as u64;
        let fingerprint = fingerprint(&records);
        self.next = if self.last_page == Some(fingerprint) {
            Next::Fail(self.looped(&url, "the page is identical to the previous one"))
        } else {
            self.last_page = Some(fingerprint);
            match self.next_request(&url, &headers, &body, records.len() as u64) {
                Ok(next) => next,
                Err(error) => Next::Fail(error),
            }
        };
        let total = self
            .listing
            .paging
            .as_ref()
            .and_then(|p| p.total_records.as_ref())
            .and_then(|p| p.first(&body))
            .and_then(as_count);
        let next = match &self.next {
            Next::Request(request) => Some(Resume {
                target: request.target.clone(),
                query: request.query.clone(),
                pages: self.pages,
                records: self.records,
            }),
            _ => None,
        };
        Ok(Some(Page {
            number: self.pages,
            url,
            records,
            total,
            next,
        }))
    }

    fn next_request(
        &mut self,
        url: &str,
        headers: &HeaderMap,
        body: &Value,
        count: u64,
    ) -> Result<Next, HttpError> {
        let Some(paging) = self.listing.paging.clone() else {
            return Ok(Next::End);
        };
        if let Some(reason) = self.stop_reason(&paging, body, count) {
            tracing::debug!(url, pages = self.pages, reason, "listing complete");
            return Ok(Next::End);
        }
        let mut request = self.listing.first.clone();
        match paging.style {
            PaginationStyle::Cursor => {
                let token = match (&paging.cursor, &paging.cursor_header) {
                    (Some(path), _) => path.first(body).and_then(token_text),
                    (None, Some(header)) => headers
                        .get(header.as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                    (None, None) => None,
                };
                let Some(token) = token.filter(|t| !t.is_empty()) else {
                    return Ok(Next::End);
                };
                self.check_new(&token, url, "the cursor")?;
                if let Some(param) = &paging.param {
                    set_param(&mut request.query, param, token);
                }
            }
            PaginationStyle::Offset => {
                let offset = paging.start.unwrap_or(0) + self.records;
                if let Some(param) = &paging.param {
                    set_param(&mut request.query, param, offset.to_string());
                }
            }
            PaginationStyle::Page => {
                let page = paging.start.unwrap_or(1) + self.pages;
                if let Some(param) = &paging.param {
                    set_param(&mut request.query, param, page.to_string());
                }
            }
            PaginationStyle::LinkHeader | PaginationStyle::NextUrl => {
                let next = match paging.style {
                    PaginationStyle::LinkHeader => next_link(headers),
                    _ => paging
                        .next
                        .as_ref()
                        .and_then(|p| p.first(body))
                        .and_then(token_text),
                };
                let Some(next) = next.filter(|n| !n.is_empty()) else {
                    return Ok(Next::End);
                };
                let absolute = resolve(url, &next);
                self.check_new(&absolute, url, "the next URL")?;
                request = Request {
                    target: absolute,
                    query: Vec::new(),
                    ..request
                };
            }
        }
        Ok(Next::Request(request))
    }

    /// Why the listing is complete after this page, if it is.
    fn stop_reason(&self, paging: &Paging, body: &Value, count: u64) -> Option<&'static str> {
        if let Some(path) = &paging.has_more {
            if matches!(
                path.first(body),
                None | Some(Value::Null) | Some(Value::Bool(false))
            ) {
                return Some("has_more is false");
            }
        }
        let number = |path: &Option<CompiledPath>| {
            path.as_ref().and_then(|p| p.first(body)).and_then(as_count)
        };
        if number(&paging.total_records).is_some_and(|total| self.records >= total) {
            return Some("total_records reached");
        }
        if number(&paging.total_pages).is_some_and(|total| self.pages >= total) {
            return Some("total_pages reached");
        }
        if paging.full_pages && paging.size.is_some_and(|size| count < size) {
            return Some("short page");
        }
        if paging.max_pages.is_some_and(|max| self.pages >= max) {
            tracing::warn!(pages = self.pages, "stopped at max_pages");
            return Some("max_pages reached");
        }
        None
    }

    fn check_new(&mut self, token: &str, url: &str, what: &str) -> Result<(), HttpError> {
        if self.seen.insert(token.to_string()) {
            Ok(())
        } else {
            let shown = self.system.redactor().redact(token);
            Err(self.looped(url, &format!("{what} `{shown}` was returned before")))
        }
    }

    fn looped(&self, url: &str, reason: &str) -> HttpError {
        HttpError::PaginationLoop {
            page: self.pages,
            url: url.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// A cheap identity of a page: its size and its first and last records.
fn fingerprint(records: &[Value]) -> u64 {
    let mut hasher = DefaultHasher::new();
    records.len().hash(&mut hasher);
    for record in [records.first(), records.last()].into_iter().flatten() {
        record.to_string().hash(&mut hasher);
    }
    hasher.finish()
}

fn token_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn as_count(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `next` made absolute against the URL of the page that pointed to it.
fn resolve(current: &str, next: &str) -> String {
    match reqwest::Url::parse(current).and_then(|base| base.join(next)) {
        Ok(url) => url.to_string(),
        Err(_) => next.to_string(),
    }
}

/// The `rel="next"` target of an RFC 8288 `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK) {
        let Ok(text) = value.to_str() else { continue };
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            let close = open + rest[open..].find('>')?;
            let target = &rest[open + 1..close];
            let params_end = rest[close..].find('<').map_or(rest.len(), |i| close + i);
            let params = &rest[close + 1..params_end];
            let is_next = params.split(';').any(|param| {
                let param = param.trim().trim_end_matches(',').trim();
                param
                    .strip_prefix("rel=")
                    .map(|rel| {
                        rel.trim_matches('"')
                            .split_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                    })
                    .unwrap_or(false)
            });
            if is_next {
                return Some(target.to_string());
            }
            rest = &rest[params_end..];
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn link_headers_give_the_next_target() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            HeaderValue::from_static(r#"<https://x/o?page=1>; rel="prev", <https://x/o?page=3>; rel="next", <https://x/o?page=9>; rel="last""#),
        );
        assert_eq!(next_link(&headers).as_deref(), Some("https://x/o?page=3"));
        headers.insert(
            LINK,
            HeaderValue::from_static(r#"<https://x/o?page=9>; rel="last""#),
        );
        assert_eq!(next_link(&headers), None);
        headers.insert(LINK, HeaderValue::from_static("</o?page=2>; rel=next"));
        assert_eq!(next_link(&headers).as_deref(), Some("/o?page=2"));
    }

    #[test]
    fn relative_next_urls_resolve_against_the_page() {
        assert_eq!(
            resolve("http://h:1/crm/c?page=1", "/crm/c?page=2"),
            "http://h:1/crm/c?page=2"
        );
        assert_eq!(
            resolve("http://h:1/crm/c?page=1", "http://o/x"),
            "http://o/x"
        );
    }
}
