//! Requests: how a stream lists records (read + pagination) and how it writes them
//! (create, update, delete).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::values::{JsonPath, Template};

/// HTTP method of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

fn get() -> HttpMethod {
    HttpMethod::Get
}

/// A listing request: where the records are and how to page through them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadConfig {
    /// HTTP method; GET unless the API lists through a search endpoint.
    #[serde(default = "get")]
    pub method: HttpMethod,
    /// Path joined to the system's `base_url`, e.g. "/v1/contacts". A template.
    pub path: Template,
    /// Query parameters (templates). A parameter that renders empty is left out, so
    /// `updated_since: "{{ watermark }}"` is not sent on the first run.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub params: IndexMap<String, Template>,
    /// Extra headers for this request (templates).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    /// Where the records are in each response, e.g. "$.data[*]".
    pub records: JsonPath,
    /// How to get the next page. Omit when the listing is a single response.
    #[serde(default)]
    pub paginate: Option<PaginateConfig>,
}

/// The pagination styles an API may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaginationStyle {
    /// An opaque token from the response (`cursor` in the body or `cursor_header`) is
    /// sent back as `param`.
    Cursor,
    /// `param` (offset) advances by the number of records read; `size_param` carries
    /// the page size.
    Offset,
    /// `param` is a page number starting at `start` (default 1).
    Page,
    /// The next page's URL is in the RFC 8288 `Link: <...>; rel="next"` header.
    LinkHeader,
    /// The next page's URL (absolute or relative) is at `next` in the body.
    NextUrl,
}

impl PaginationStyle {
    pub fn as_str(self) -> &'static str {
        match self {
            PaginationStyle::Cursor => "cursor",
            PaginationStyle::Offset => "offset",
            PaginationStyle::Page => "page",
            PaginationStyle::LinkHeader => "link_header",
            PaginationStyle::NextUrl => "next_url",
        }
    }
}

/// How to page through a listing and when to stop. Every style stops on: no next
/// token, an empty page, `has_more` false or null, `total_records` / `total_pages`
/// reached, a short page when `full_pages` is set, or `max_pages`. A repeated token or
/// URL, or a page identical to the previous one, is a loop and fails the stream.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaginateConfig {
    /// The pagination style.
    pub style: PaginationStyle,
    /// Query parameter carrying the cursor (cursor), the offset (offset) or the page
    /// number (page).
    #[serde(default)]
    pub param: Option<String>,
    /// Where the next cursor is in the body, e.g. "$.next_cursor" (cursor).
    #[serde(default)]
    pub cursor: Option<JsonPath>,
    /// Response header carrying the next cursor, instead of `cursor` (cursor).
    #[serde(default)]
    pub cursor_header: Option<String>,
    /// Where the next page's URL is in the body, e.g. "$.links.next" (next_url).
    #[serde(default)]
    pub next: Option<JsonPath>,
    /// Query parameter carrying the page size (offset, page, cursor).
    #[serde(default)]
    pub size_param: Option<String>,
    /// Page size to ask for (sent as `size_param`).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub size: Option<u64>,
    /// First page number (page, default 1) or first offset (offset, default 0).
    #[serde(default)]
    pub start: Option<u64>,
    /// A flag in the body that is false or null on the last page, e.g. "$.has_more".
    /// For APIs that repeat the last page when asked past the end.
    #[serde(default)]
    pub has_more: Option<JsonPath>,
    /// Where the total number of records is in the body, e.g. "$.total".
    #[serde(default)]
    pub total_records: Option<JsonPath>,
    /// Where the total number of pages is in the body, e.g. "$.meta.pages".
    #[serde(default)]
    pub total_pages: Option<JsonPath>,
    /// The API always returns full pages of `size` except the last, so a short page
    /// ends the listing without one more request.
    #[serde(default)]
    pub full_pages: bool,
    /// Stop after this many pages, whatever the API says.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_pages: Option<u64>,
}

/// A write request to a target system.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteRequestConfig {
    /// HTTP method, e.g. POST for a create, PATCH for an update.
    pub method: HttpMethod,
    /// Path joined to the system's `base_url`, e.g. "/customers/{{ target_id }}".
    pub path: Template,
    /// Extra headers for this request (templates).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    /// Wrap the mapped fields in an object under this key, for APIs that expect e.g.
    /// `{"customer": {...}}`. By default the body is the mapped fields themselves.
    #[serde(default)]
    pub envelope: Option<String>,
    /// Where the created record's id is in the response, e.g. "$.id" (creates, for
    /// targets that generate their own ids).
    #[serde(default)]
    pub id: Option<JsonPath>,
    /// The target id the runner chooses itself, for APIs that let the client pick ids
    /// (e.g. `PUT /customers/{{ record.id }}` with `assign_id: "{{ record.id }}"`).
    /// Such a create is naturally idempotent. Use either `id` or `assign_id`.
    #[serde(default)]
    pub assign_id: Option<Template>,
}
