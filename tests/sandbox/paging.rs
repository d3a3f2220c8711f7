//! Every paging style, its classic bugs, page sizes, synthetic listings, and the
//! `updated_since` and field filters.

use reqwest::Client;
use runner::sandbox::{FilterMode, PageStyle};
use serde_json::{json, Value};

use super::{collection, get, header, ids, link_target, open_sandbox, records, walk, STYLES};

#[tokio::test]
async fn every_paging_style_serves_each_record_exactly_once() {
    let client = Client::new();
    for style in STYLES {
        // None, one, exactly one full page, several pages with a partial last one.
        for count in [0, 1, 5, 12] {
            let sandbox = open_sandbox();
            sandbox.crm().set_pagination(style.clone());
            let expected = sandbox.crm().seed(count);
            let served = walk(&client, &sandbox, &style, 5).await;
            assert_eq!(ids(&served), expected, "{style:?} with {count} records");
        }
    }
}

#[tokio::test]
async fn cursor_paging_neither_skips_nor_repeats_when_records_change_mid_listing() {
    let sandbox = open_sandbox();
    let client = Client::new();
    let ids_in_order = sandbox.crm().seed(9);
    let base = collection(sandbox.crm());
    let first = get(&client, &format!("{base}?limit=3")).await;
    assert_eq!(ids(&records(&first.body, "data")), ids_in_order[..3]);
    // One record already served and one not yet served are written: both move to the
    // end of the (updated_at, id) order.
    sandbox
        .crm()
        .update(&ids_in_order[0], json!({"company": "Moved Ltd"}));
    sandbox
        .crm()
        .update(&ids_in_order[4], json!({"company": "Moved Ltd"}));
    let mut served = records(&first.body, "data");
    let mut cursor = first.body["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let page = get(&client, &format!("{base}?limit=3&cursor={c}")).await;
        served.extend(records(&page.body, "data"));
        cursor = page.body["next_cursor"].as_str().map(str::to_string);
    }
    let served = ids(&served);
    for id in &ids_in_order {
        let times = served.iter().filter(|s| *s == id).count();
        let expected = if *id == ids_in_order[0] { 2 } else { 1 }; // served, then changed
        assert_eq!(times, expected, "{id} in {served:?}");
    }
}

#[tokio::test]
async fn offset_paging_shifts_when_records_change_as_real_apis_do() {
    let sandbox = open_sandbox();
    sandbox.crm().set_pagination(PageStyle::Offset);
    let client = Client::new();
    let seeded = sandbox.crm().seed(6);
    let base = collection(sandbox.crm());
    let first = get(&client, &format!("{base}?limit=3")).await;
    sandbox
        .crm()
        .update(&seeded[0], json!({"company": "Moved Ltd"}));
    let second = get(&client, &format!("{base}?limit=3&offset=3")).await;
    let served: Vec<String> = [first, second]
        .iter()
        .flat_map(|r| ids(&records(&r.body, "data")))
        .collect();
    assert!(
        !served.contains(&seeded[3]),
        "the shift skips a record: {served:?}"
    );
}

#[tokio::test]
async fn page_sizes_default_and_cap() {
    let sandbox = open_sandbox();
    sandbox.crm().set_synthetic(1500);
    let client = Client::new();
    let base = collection(sandbox.crm());
    let default = get(&client, &base).await;
    assert_eq!(records(&default.body, "data").len(), 100);
    let capped = get(&client, &format!("{base}?limit=5000")).await;
    assert_eq!(records(&capped.body, "data").len(), 1000);
    let bad = get(&client, &format!("{base}?limit=many")).await;
    assert_eq!(bad.status, 400);
    let bad_cursor = get(&client, &format!("{base}?cursor=not-ours")).await;
    assert_eq!(bad_cursor.status, 400);
}

#[tokio::test]
async fn synthetic_listings_serve_every_index_in_every_style() {
    let client = Client::new();
    for style in STYLES {
        let sandbox = open_sandbox();
        sandbox.crm().set_pagination(style.clone());
        sandbox.crm().set_synthetic(2345);
        let served = walk(&client, &sandbox, &style, 1000).await;
        let expected: Vec<String> = (1..=2345).map(|i| format!("c_{i:06}")).collect();
        assert_eq!(ids(&served), expected, "{style:?}");
    }
    let sandbox = open_sandbox();
    sandbox.crm().set_synthetic(10);
    let one = get(&client, &format!("{}/c_000007", collection(sandbox.crm()))).await;
    assert_eq!(one.status, 200);
    assert!(one.body["email"]
        .as_str()
        .is_some_and(|e| e.ends_with(".7@example.com")));
}

#[tokio::test]
async fn repeat_last_page_serves_the_last_page_again_past_the_end() {
    let sandbox = open_sandbox();
    let client = Client::new();
    let seeded = sandbox.crm().seed(7);
    sandbox.crm().set_repeat_last_page(true);
    let base = collection(sandbox.crm());
    for style in [PageStyle::Page, PageStyle::NextUrl, PageStyle::LinkHeader] {
        sandbox.crm().set_pagination(style.clone());
        let past = get(&client, &format!("{base}?per_page=5&page=9")).await;
        assert_eq!(ids(&records(&past.body, "data")), seeded[5..], "{style:?}");
        assert!(header(&past, "link").is_none());
        if style == PageStyle::NextUrl {
            assert_eq!(past.body["has_more"], false);
            assert_eq!(past.body["next"], Value::Null);
        }
    }
    sandbox.crm().set_repeat_last_page(false);
    let past = get(&client, &format!("{base}?per_page=5&page=9")).await;
    assert!(records(&past.body, "data").is_empty());
}

#[tokio::test]
async fn repeat_cursor_hands_back_the_same_token_forever() {
    let sandbox = open_sandbox();
    let client = Client::new();
    sandbox.crm().seed(10);
    sandbox.crm().set_repeat_cursor(true);
    let base = collection(sandbox.crm());
    let first = get(&client, &format!("{base}?limit=3")).await;
    let cursor = first.body["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for _ in 0..3 {
        let again = get(&client, &format!("{base}?limit=3&cursor={cursor}")).await;
        assert_eq!(again.body["next_cursor"], cursor.as_str());
        assert_eq!(again.body["has_more"], true);
    }
    sandbox.crm().set_pagination(PageStyle::NextUrl);
    let second = get(&client, &format!("{base}?per_page=3&page=2")).await;
    assert_eq!(second.body["next"], "/crm/contacts?per_page=3&page=2");
}

#[tokio::test]
async fn next_links_keep_the_callers_other_parameters() {
    let sandbox = open_sandbox();
    let client = Client::new();
    sandbox.crm().seed(4);
    sandbox.crm().set_pagination(PageStyle::LinkHeader);
    let since = "2000-01-01T00%3A00%3A00Z";
    let base = collection(sandbox.crm());
    let reply = get(&client, &format!("{base}?updated_since={since}&per_page=2")).await;
    let next = link_target(header(&reply, "link").unwrap_or_default());
    assert_eq!(
        next,
        format!("{base}?updated_since={since}&per_page=2&page=2")
    );
}

#[tokio::test]
async fn updated_since_is_inclusive_exclusive_or_ignored() {
    let sandbox = open_sandbox();
    let client = Client::new();
    sandbox.crm().seed(5);
    let third = sandbox.crm().records()[2]["updated_at"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let base = collection(sandbox.crm());
    let url = format!("{base}?updated_since={third}");
    let cases = [
        (FilterMode::Inclusive, 3),
        (FilterMode::Exclusive, 2),
        (FilterMode::Ignored, 5),
    ];
    for (mode, expected) in cases {
        sandbox.crm().set_updated_filter(mode.clone());
        let reply = get(&client, &url).await;
        assert_eq!(records(&reply.body, "data").len(), expected, "{mode:?}");
    }
    // The same instant written with an offset, '+' percent-encoded as it must be.
    sandbox.crm().set_updated_filter(FilterMode::Inclusive);
    let offset = format!("{}%2B00:00", third.trim_end_matches('Z'));
    let reply = get(&client, &format!("{base}?updated_since={offset}")).await;
    assert_eq!(records(&reply.body, "data").len(), 3);
    let bad = get(&client, &format!("{base}?updated_since=yesterday")).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn a_field_parameter_looks_records_up_and_an_unknown_one_is_ignored() {
    let sandbox = open_sandbox();
    let client = Client::new();
    let seeded = sandbox.crm().seed(5);
    let wanted = sandbox.crm().get(&seeded[3]).unwrap_or_default();
    let email = wanted["email"].as_str().unwrap_or_default();
    let base = collection(sandbox.crm());
    let found = get(&client, &format!("{base}?email={email}")).await;
    assert_eq!(ids(&records(&found.body, "data")), [seeded[3].clone()]);
    let typo = get(&client, &format!("{base}?emial={email}")).await;
    assert_eq!(
        records(&typo.body, "data").len(),
        5,
        "a typo silently lists everything"
    );
}
