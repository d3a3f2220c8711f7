//! One listing page in each paging style, including the two classic API bugs a client
//! must survive: the last page served again past the end (`repeat_last_page`) and a
//! next cursor/URL that never advances (`repeat_cursor`).
//!
//! Bodies (RK is the app's records key):
//! - Cursor: `{RK, "next_cursor": str|null, "has_more": bool}`
//! - Offset: `{RK, "total": n}`
//! - Page: `{RK, "page", "per_page", "total_pages", "total"}`
//! - LinkHeader: `{RK}` plus `Link: <absolute next URL>; rel="next"` when there is one
//! - NextUrl: `{RK, "next": "/prefix/resource?..."|null, "has_more": bool}`

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::clock::{format_ms, parse_rfc3339_ns};
use super::config::PageStyle;
use super::listing::Source;
use super::query::ListQuery;
use super::store::{Record, SortKey};

/// What the listing handler needs to answer one page.
pub struct PageRequest<'a> {
    pub style: PageStyle,
    pub records_key: &'a str,
    pub repeat_last_page: bool,
    pub repeat_cursor: bool,
    /// "http://127.0.0.1:PORT", for absolute Link URLs.
    pub origin: &'a str,
    /// The request path, e.g. "/crm/contacts".
    pub path: &'a str,
    pub query: &'a ListQuery,
}

/// A page ready to send.
pub struct Page {
    pub body: Value,
    pub link: Option<String>,
}

/// Builds the page; `Err` is a message for a 400 (a cursor the app did not issue).
pub fn page(request: &PageRequest, source: &Source) -> Result<Page, String> {
    match request.style {
        PageStyle::Cursor => cursor_page(request, source),
        PageStyle::Offset => Ok(offset_page(request, source)),
        PageStyle::Page | PageStyle::LinkHeader | PageStyle::NextUrl => {
            Ok(numbered_page(request, source))
        }
    }
}

fn cursor_page(request: &PageRequest, source: &Source) -> Result<Page, String> {
    let query = request.query;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut rows = source.after(after.as_ref(), &query.filter, query.size.saturating_add(1));
    let mut has_more = rows.len() > query.size;
    rows.truncate(query.size);
    let mut next_cursor = match rows.last() {
        Some((key, _)) if has_more => Some(encode_cursor(key)),
        _ => None,
    };
    if request.repeat_cursor {
        if let Some(sent) = &query.cursor {
            next_cursor = Some(sent.clone());
            has_more = true;
        }
    }
    let records = rows.into_iter().map(|(_, r)| Value::Object(r)).collect();
    let mut body = records_body(request.records_key, records);
    body.insert(
        "next_cursor".into(),
        next_cursor.map_or(Value::Null, Value::String),
    );
    body.insert("has_more".into(), Value::Bool(has_more));
    Ok(Page {
        body: Value::Object(body),
        link: None,
    })
}

fn offset_page(request: &PageRequest, source: &Source) -> Page {
    let query = request.query;
    let window = source.window(&query.filter, query.offset, query.size);
    let mut body = records_body(request.records_key, objects(window.records));
    body.insert("total".into(), json!(window.total));
    Page {
        body: Value::Object(body),
        link: None,
    }
}

/// Page, LinkHeader and NextUrl: page numbers, differing only in how the next page is
/// announced.
fn numbered_page(request: &PageRequest, source: &Source) -> Page {
    let query = request.query;
    let size = query.size;
    let page = query.page.unwrap_or(1);
    // page >= 1 (the query rejects 0); saturating: a huge page number is just past the end.
    let mut window = source.window(&query.filter, (page - 1).saturating_mul(size), size);
    let total_pages = window.total.div_ceil(size);
    if window.records.is_empty() && request.repeat_last_page && total_pages > 0 {
        window = source.window(&query.filter, (total_pages - 1) * size, size);
    }
    let next_page = if request.repeat_cursor && page > 1 {
        Some(page) // the bug: "next" points at the page just served
    } else {
        (page < total_pages).then_some(page + 1)
    };
    let mut body = records_body(request.records_key, objects(window.records));
    let next_relative = next_page.map(|n| format!("{}?{}", request.path, query.with_page(n)));
    let mut link = None;
    match request.style {
        PageStyle::Page => {
            body.insert("page".into(), json!(page));
            body.insert("per_page".into(), json!(size));
            body.insert("total_pages".into(), json!(total_pages));
            body.insert("total".into(), json!(window.total));
        }
        PageStyle::LinkHeader => {
            link = next_relative.map(|next| format!("<{}{next}>; rel=\"next\"", request.origin));
        }
        _ => {
            body.insert("has_more".into(), Value::Bool(next_relative.is_some()));
            body.insert(
                "next".into(),
                next_relative.map_or(Value::Null, Value::String),
            );
        }
    }
    Page {
        body: Value::Object(body),
        link,
    }
}

fn records_body(records_key: &str, records: Vec<Value>) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert(records_key.to_string(), Value::Array(records));
    body
}

fn objects(records: Vec<Record>) -> Vec<Value> {
    records.into_iter().map(Value::Object).collect()
}

/// The cursor is the sort key of the page's last record, so the next page starts
/// strictly after it whatever changed in between. Base64 of JSON: opaque enough that
/// clients do not build their own.
fn encode_cursor(key: &SortKey) -> String {
    let json = json!({"updated_at": format_ms(key.ms), "id": key.id});
    URL_SAFE_NO_PAD.encode(json.to_string())
}

fn decode_cursor(cursor: &str) -> Result<SortKey, String> {
    let invalid = || format!("invalid cursor {cursor:?}: pass back next_cursor as received");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let json: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let ns = json["updated_at"]
        .as_str()
        .and_then(parse_rfc3339_ns)
        .ok_or_else(invalid)?;
    let id = json["id"].as_str().ok_or_else(invalid)?;
    let ms = u64::try_from(ns / 1_000_000).map_err(|_| invalid())?;
    Ok(SortKey {
        ms,
        id: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let key = SortKey {
            ms: 1_795_000_000_123,
            id: "c_000007".to_string(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&key)), Ok(key));
        assert!(decode_cursor("not a cursor").is_err());
    }
}
