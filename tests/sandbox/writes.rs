//! Creating, reading, replacing, patching and deleting over HTTP; validation errors;
//! idempotency keys.

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use super::{collection, get, header, open_sandbox, send};

#[tokio::test]
async fn records_are_created_read_replaced_patched_and_deleted() {
    let sandbox = open_sandbox();
    let client = Client::new();
    let base = collection(sandbox.billing());
    let created = send(
        client
            .post(&base)
            .json(&json!({"email": "a@example.com", "plan": "pro"})),
    )
    .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(id, "cus_000001");
    let stamp = created.body["updated_at"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(stamp.len(), "2026-12-04T10:00:00.123Z".len(), "{stamp}");

    let patched = send(
        client
            .patch(format!("{base}/{id}"))
            .json(&json!({"plan": "team"})),
    )
    .await;
    assert_eq!(
        (patched.status, &patched.body["plan"]),
        (StatusCode::OK, &json!("team"))
    );
    assert!(patched.body["updated_at"].as_str() > Some(stamp.as_str()));
    assert_eq!(
        get(&client, &format!("{base}/{id}")).await.body["email"],
        "a@example.com"
    );

    let put_new = send(
        client
            .put(format!("{base}/mine-1"))
            .json(&json!({"email": "m@example.com"})),
    )
    .await;
    assert_eq!(
        (put_new.status, &put_new.body["id"]),
        (StatusCode::CREATED, &json!("mine-1"))
    );
    let put_again = send(
        client
            .put(format!("{base}/mine-1"))
            .json(&json!({"email": "n@example.com"})),
    )
    .await;
    assert_eq!(put_again.status, 200);

    assert_eq!(
        send(client.delete(format!("{base}/{id}"))).await.status,
        204
    );
    assert_eq!(
        send(client.delete(format!("{base}/{id}"))).await.status,
        404
    );
    assert_eq!(get(&client, &format!("{base}/{id}")).await.status, 404);
    let stats = sandbox.billing().stats();
    assert_eq!((stats.creates, stats.updates, stats.deletes), (2, 2, 1));
}

#[tokio::test]
async fn bad_bodies_get_400_and_a_missing_email_gets_422() {
    let sandbox = open_sandbox();
    let client = Client::new();
    let base = collection(sandbox.crm());
    let not_json = send(client.post(&base).body("{oops")).await;
    assert_eq!(not_json.status, 400);
    assert!(not_json.body["error"].is_string());
    let not_object = send(client.post(&base).json(&json!([1, 2]))).await;
    assert_eq!(not_object.status, 400);
    let no_email = send(client.post(&base).json(&json!({"first_name": "Ada"}))).await;
    assert_eq!(no_email.status, 422);
    assert_eq!(no_email.body["field"], "email");
    assert!(sandbox.crm().is_empty());
}

#[tokio::test]
async fn an_idempotency_key_makes_a_repeated_create_a_replay() {
    let sandbox = open_sandbox();
    let client = Client::new();
    let base = collection(sandbox.billing());
    let body = json!({"email": "once@example.com", "plan": "free"});
    let create = |body: &Value| {
        client
            .post(&base)
            .header("Idempotency-Key", "k-1")
            .json(body)
    };
    let first = send(create(&body)).await;
    let second = send(create(&body)).await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(first.body, second.body, "the replay is the first reply");
    assert_eq!(header(&second, "idempotent-replayed"), Some("true"));
    assert_eq!(sandbox.billing().len(), 1);
    assert_eq!(sandbox.billing().stats().idempotent_replays, 1);

    let other = send(create(&json!({"email": "other@example.com"}))).await;
    assert_eq!(other.status, 422);
    assert_eq!(other.body["error"], "idempotency_key_reused");
    assert_eq!(sandbox.billing().len(), 1);
}

#[tokio::test]
async fn without_idempotency_a_repeated_create_is_a_duplicate() {
    let sandbox = open_sandbox();
    sandbox.billing().set_idempotency(false);
    let client = Client::new();
    let base = collection(sandbox.billing());
    for _ in 0..2 {
        let request = client.post(&base).header("Idempotency-Key", "k-1");
        assert_eq!(
            send(request.json(&json!({"email": "twice@example.com"})))
                .await
                .status,
            201
        );
    }
    assert_eq!(sandbox.billing().len(), 2);
}
