//! The sandbox APIs themselves, over real loopback HTTP with a plain reqwest client:
//! paging styles and their bugs, auth modes, OAuth2 rotation, idempotency, rate limits,
//! faults, filters, the journal, determinism, shutdown and `runner sandbox`. Shared
//! helpers live here; each submodule covers one area.

mod auth;
mod faults;
mod lifecycle;
mod paging;
mod writes;

use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode};
use runner::sandbox::{App, AuthMode, PageStyle, Sandbox, SandboxConfig};
use serde_json::Value;

/// A sandbox whose two apps need no auth, so tests can focus on one behaviour.
fn open_sandbox() -> Sandbox {
    let mut config = SandboxConfig::default();
    config.crm.auth = AuthMode::None;
    config.billing.auth = AuthMode::None;
    Sandbox::start(config).expect("the sandbox starts")
}

fn collection(app: &App) -> String {
    format!("{}/{}", app.base_url(), app.resource())
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the request gets a response");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("the body arrives");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(client: &Client, url: &str) -> Reply {
    send(client.get(url)).await
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).and_then(|v| v.to_str().ok())
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            r["id"]
                .as_str()
                .expect("records have string ids")
                .to_string()
        })
        .collect()
}

fn records(body: &Value, key: &str) -> Vec<Value> {
    body[key]
        .as_array()
        .cloned()
        .expect("a page holds an array of records")
}

/// Walks a CRM listing the way a client of `style` must, and returns every record
/// served. Fails on a listing that does not end.
async fn walk(client: &Client, sandbox: &Sandbox, style: &PageStyle, size: usize) -> Vec<Value> {
    let base = collection(sandbox.crm());
    let first = match style {
        PageStyle::Cursor | PageStyle::Offset => format!("{base}?limit={size}"),
        _ => format!("{base}?per_page={size}"),
    };
    let mut url = first.clone();
    let mut all = Vec::new();
    for _ in 0..100 {
        let reply = get(client, &url).await;
        assert_eq!(reply.status, 200, "{url}: {}", reply.body);
        let page = records(&reply.body, "data");
        all.extend(page.iter().cloned());
        let next = match style {
            PageStyle::Cursor => {
                let cursor = reply.body["next_cursor"].as_str();
                assert_eq!(reply.body["has_more"], cursor.is_some());
                cursor.map(|c| format!("{first}&cursor={c}"))
            }
            PageStyle::Offset => {
                let total = reply.body["total"].as_u64().unwrap_or_default() as usize;
                (all.len() < total && !page.is_empty())
                    .then(|| format!("{first}&offset={}", all.len()))
            }
            PageStyle::Page => {
                let page = reply.body["page"].as_u64().unwrap_or_default();
                let pages = reply.body["total_pages"].as_u64().unwrap_or_default();
                (page < pages).then(|| format!("{first}&page={}", page + 1))
            }
            PageStyle::LinkHeader => header(&reply, "link").map(link_target),
            PageStyle::NextUrl => {
                let next = reply.body["next"].as_str();
                assert_eq!(reply.body["has_more"], next.is_some());
                next.map(|n| format!("{}{n}", sandbox.url()))
            }
        };
        match next {
            Some(next) => url = next,
            None => return all,
        }
    }
    panic!("{style:?}: the listing did not end after 100 pages");
}

/// The URL of `Link: <url>; rel="next"`.
fn link_target(link: &str) -> String {
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    let start = link.find('<').expect("a Link URL opens with <") + 1;
    let end = link.find('>').expect("a Link URL closes with >");
    link[start..end].to_string()
}

const STYLES: [PageStyle; 5] = [
    PageStyle::Cursor,
    PageStyle::Offset,
    PageStyle::Page,
    PageStyle::LinkHeader,
    PageStyle::NextUrl,
];
