//! OAuth2 (issue, expiry, rotation, revocation, client errors) and the other auth
//! modes.

use reqwest::{Client, StatusCode};
use runner::sandbox::{
    AuthMode, Sandbox, SandboxConfig, BILLING_API_KEY, CRM_CLIENT_ID, CRM_CLIENT_SECRET,
    CRM_REFRESH_TOKEN,
};
use serde_json::json;

use super::{collection, get, header, records, send};

#[tokio::test]
async fn oauth2_tokens_expire_refresh_tokens_rotate_and_can_be_revoked() {
    let sandbox = Sandbox::start(SandboxConfig::default()).expect("the sandbox starts");
    sandbox.crm().seed(2);
    let client = Client::new();
    let token_url = format!("{}/oauth/token", sandbox.crm().base_url());
    let contacts = collection(sandbox.crm());
    let form = |body: String| {
        client
            .post(&token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };

    let issued = send(form(format!(
        "grant_type=client_credentials&client_id={CRM_CLIENT_ID}&client_secret={CRM_CLIENT_SECRET}"
    )))
    .await;
    assert_eq!(issued.status, 200);
    assert_eq!(issued.body["token_type"], "Bearer");
    assert_eq!(issued.body["expires_in"], 3600);
    assert!(issued.body.get("refresh_token").is_none());
    let access = issued.body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        send(client.get(&contacts).bearer_auth(&access))
            .await
            .status,
        200
    );

    sandbox.crm().expire_access_tokens();
    let expired = send(client.get(&contacts).bearer_auth(&access)).await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.body, json!({"error": "unauthorized"}));
    assert!(header(&expired, "www-authenticate").is_some_and(|h| h.contains("invalid_token")));

    // The refresh grant, client credentials in HTTP Basic this time.
    let refresh = |token: &str| {
        form(format!("grant_type=refresh_token&refresh_token={token}"))
            .basic_auth(CRM_CLIENT_ID, Some(CRM_CLIENT_SECRET))
    };
    let refreshed = send(refresh(CRM_REFRESH_TOKEN)).await;
    assert_eq!(refreshed.status, 200);
    let rotated = refreshed.body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(rotated, CRM_REFRESH_TOKEN);
    assert_eq!(sandbox.crm().current_refresh_token(), Some(rotated.clone()));
    let fresh = refreshed.body["access_token"].as_str().unwrap_or_default();
    assert_eq!(
        send(client.get(&contacts).bearer_auth(fresh)).await.status,
        200
    );

    let reused = send(refresh(CRM_REFRESH_TOKEN)).await;
    assert_eq!(
        (reused.status, &reused.body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
    );
    sandbox.crm().revoke_refresh_tokens();
    let revoked = send(refresh(&rotated)).await;
    assert_eq!(revoked.body["error"], "invalid_grant");
    assert_eq!(sandbox.crm().current_refresh_token(), None);

    let stats = sandbox.crm().stats();
    assert_eq!(
        (stats.token_requests, stats.refreshes, stats.unauthorized),
        (4, 3, 1)
    );
}

#[tokio::test]
async fn the_token_endpoint_rejects_bad_clients_and_grants_and_exists_only_for_oauth2() {
    let sandbox = Sandbox::start(SandboxConfig::default()).expect("the sandbox starts");
    let client = Client::new();
    let post = |url: String, body: &str| {
        client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string())
    };
    let crm_token = format!("{}/oauth/token", sandbox.crm().base_url());
    let wrong_secret =
        format!("grant_type=client_credentials&client_id={CRM_CLIENT_ID}&client_secret=nope");
    let reply = send(post(crm_token.clone(), &wrong_secret)).await;
    assert_eq!(
        (reply.status, &reply.body["error"]),
        (StatusCode::UNAUTHORIZED, &json!("invalid_client"))
    );
    let password =
        format!("grant_type=password&client_id={CRM_CLIENT_ID}&client_secret={CRM_CLIENT_SECRET}");
    let reply = send(post(crm_token, &password)).await;
    assert_eq!(reply.body["error"], "unsupported_grant_type");
    let billing_token = format!("{}/oauth/token", sandbox.billing().base_url());
    assert_eq!(
        send(post(billing_token, "grant_type=client_credentials"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn every_auth_mode_accepts_the_right_credentials_and_rejects_wrong_ones() {
    let client = Client::new();
    let modes = [
        AuthMode::ApiKey {
            header: "X-Api-Key".into(),
            key: BILLING_API_KEY.into(),
        },
        AuthMode::ApiKeyQuery {
            param: "api_key".into(),
            key: "k1".into(),
        },
        AuthMode::Bearer { token: "t1".into() },
        AuthMode::Basic {
            username: "u".into(),
            password: "p".into(),
        },
    ];
    for mode in modes {
        let mut config = SandboxConfig::default();
        config.billing.auth = mode.clone();
        let sandbox = Sandbox::start(config).expect("the sandbox starts");
        sandbox.billing().seed(2);
        let url = collection(sandbox.billing());
        let (right, wrong) = match &mode {
            AuthMode::ApiKey { key, .. } => (
                client.get(&url).header("X-Api-Key", key),
                client.get(&url).header("X-Api-Key", "wrong"),
            ),
            AuthMode::ApiKeyQuery { .. } => (
                client.get(format!("{url}?api_key=k1")),
                client.get(format!("{url}?api_key=k2")),
            ),
            AuthMode::Bearer { .. } => (
                client.get(&url).bearer_auth("t1"),
                client.get(&url).bearer_auth("t2"),
            ),
            _ => (
                client.get(&url).basic_auth("u", Some("p")),
                client.get(&url).basic_auth("u", Some("q")),
            ),
        };
        let accepted = send(right).await;
        assert_eq!(accepted.status, 200, "{mode:?}");
        assert_eq!(
            records(&accepted.body, "items").len(),
            2,
            "{mode:?}: the key is no filter"
        );
        let rejected = send(wrong).await;
        assert_eq!(rejected.status, 401, "{mode:?}");
        assert!(header(&rejected, "www-authenticate").is_some(), "{mode:?}");
        assert_eq!(
            get(&client, &url).await.status,
            401,
            "{mode:?}: no credentials"
        );
        assert_eq!(sandbox.billing().stats().unauthorized, 2);
    }
}
