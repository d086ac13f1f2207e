//! SCIM 2.0 provisioning against the real api and consumer: tokens, users created
//! through the pipeline without a password, deactivation that ends every session at
//! once, filters, PATCH with value paths and ETags, groups as roles, SCIM's error format.
//! (scim2-tester, the RFC compliance checker, runs against the real service in `make e2e`.)

use std::time::Duration;

use registrar_tests::{kafka, TestApp, TestOptions};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A SCIM token issued by an admin over the admin API.
async fn scim_token(app: &TestApp) -> String {
    let admin = app.account_with_role("admin").await;
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/admin/scim/tokens",
            Some(&admin.access),
            Some(&json!({ "name": "Okta test" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["data"]["token"].as_str().unwrap().to_owned()
}

fn okta_user(user_name: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": "Grace", "familyName": "Hopper"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Grace Hopper",
        "active": true,
        "externalId": format!("00u{}", &Uuid::new_v4().simple().to_string()[..8]),
    })
}

fn unique_address() -> String {
    format!("scim-{}@corp.example", Uuid::new_v4().simple())
}

async fn create(app: &TestApp, token: &str, user: &Value) -> Value {
    let (status, headers, body) = app
        .call(Method::POST, "/scim/v2/Users", Some(token), Some(user))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        headers["location"].to_str().unwrap(),
        body["meta"]["location"].as_str().unwrap()
    );
    assert_eq!(headers["etag"].to_str().unwrap(), "W/\"1\"");
    assert_eq!(headers["content-type"], "application/scim+json");
    body
}

async fn patch(app: &TestApp, token: &str, id: &str, ops: Value) -> (u16, Value) {
    let (status, _, body) = app
        .call(
            Method::PATCH,
            &format!("/scim/v2/Users/{id}"),
            Some(token),
            Some(&json!({ "schemas": [PATCH], "Operations": ops })),
        )
        .await;
    (status, body)
}

#[tokio::test]
async fn scim_needs_a_live_token_and_answers_in_its_own_error_format() {
    let app = TestApp::spawn().await;
    // Discovery answers anyone.
    let (status, _, config) = app
        .call(Method::GET, "/scim/v2/ServiceProviderConfig", None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(config["patch"]["supported"], true);
    assert_eq!(config["filter"]["maxResults"], 200);
    let (_, _, schemas) = app.call(Method::GET, "/scim/v2/Schemas", None, None).await;
    assert_eq!(schemas["totalResults"], 3);

    for token in [None, Some("scim_not-a-token"), Some("an access token")] {
        let (status, headers, body) = app.call(Method::GET, "/scim/v2/Users", token, None).await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(body["schemas"][0], ERROR);
        assert_eq!(body["status"], "401");
        assert_eq!(headers["www-authenticate"], "Bearer");
    }
    let token = scim_token(&app).await;
    let (status, _, _) = app
        .call(Method::GET, "/scim/v2/Users", Some(&token), None)
        .await;
    assert_eq!(status, 200);

    // A revoked token stops working at once.
    let admin = app.account_with_role("admin").await;
    let (_, _, listed) = app
        .call(
            Method::GET,
            "/api/v1/admin/scim/tokens",
            Some(&admin.access),
            None,
        )
        .await;
    let id = listed["data"][0]["id"].as_str().unwrap();
    assert!(
        listed["data"][0].get("token").is_none(),
        "never shown again"
    );
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/scim/tokens/{id}"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = app
        .call(Method::GET, "/scim/v2/Users", Some(&token), None)
        .await;
    assert_eq!(status, 401);

    // Unknown paths below /scim/v2 are SCIM 404s; a user is not an admin.
    let (status, _, body) = app.call(Method::GET, "/scim/v2/Nope", None, None).await;
    assert_eq!((status, body["schemas"][0].as_str()), (404, Some(ERROR)));
    let user = app.account_with_role("user").await;
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/admin/scim/tokens",
            Some(&user.access),
            Some(&json!({ "name": "mine" })),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_provisioned_user_goes_through_the_pipeline_and_has_no_password() {
    let app = TestApp::spawn().await;
    let token = scim_token(&app).await;
    let address = unique_address();
    let created = create(&app, &token, &okta_user(&address)).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["userName"], address);
    assert_eq!(created["name"]["givenName"], "Grace");
    assert_eq!(created["displayName"], "Grace Hopper", "kept as sent");
    assert_eq!(created["emails"][0]["type"], "work");
    assert_eq!(created["active"], true);

    // The pipeline's audit row and event, and the provider's own.
    let pg = app.pg().await;
    let actions: Vec<(String, Value)> = pg
        .query(
            "SELECT action, details FROM user_audit_log WHERE user_id = $1::text::uuid ORDER BY id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(actions[0].0, "user.registered");
    assert_eq!(actions[0].1["source"], "scim");
    assert_eq!(actions[1].0, "scim.user_provisioned");
    let registered = events_of(&app, 2, id).await;
    assert_eq!(registered[0].event_type.as_str(), "user.registered");

    // No password: nothing signs in with one, and the answer is the ordinary refusal.
    let (status, _) = app.login(&address, "").await;
    assert_eq!(status, 400);
    let (status, body) = app.login(&address, "any-password-at-all").await;
    assert_eq!(status, 401, "{body}");

    // The same userName (in another case) or address again: 409 uniqueness.
    let mut again = okta_user(&address.to_uppercase());
    again["emails"] = json!([{"value": unique_address(), "primary": true}]);
    let (status, _, body) = app
        .call(Method::POST, "/scim/v2/Users", Some(&token), Some(&again))
        .await;
    assert_eq!(
        (status, body["scimType"].as_str()),
        (409, Some("uniqueness"))
    );
    // A document that breaks the schema changes nothing.
    let before = app.user_count().await;
    let (status, _, body) = app
        .call(
            Method::POST,
            "/scim/v2/Users",
            Some(&token),
            Some(&json!({"schemas": [USER], "userName": "no-address"})),
        )
        .await;
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("invalidValue"))
    );
    assert_eq!(app.user_count().await, before);
}

#[tokio::test]
async fn deactivation_ends_every_session_at_once_and_reactivation_lets_the_user_back() {
    let app = TestApp::spawn().await;
    let token = scim_token(&app).await;
    let account = app.register_and_login().await;
    let id = account.id.to_string();
    // Okta's way: a replace without a path.
    let (status, body) = patch(
        &app,
        &token,
        &id,
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], false);
    let (status, _, _) = app
        .call(Method::GET, "/api/auth/me", Some(&account.access), None)
        .await;
    assert_eq!(status, 401, "the access token is refused at once");
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(&json!({ "refreshToken": account.refresh })),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = app.login(&account.email, &account.password).await;
    assert_eq!(status, 401, "a deactivated account cannot sign in");

    // Entra's way back: a capitalised op and a string boolean.
    let (status, body) = patch(
        &app,
        &token,
        &id,
        json!([{"op": "Replace", "path": "active", "value": "True"}]),
    )
    .await;
    assert_eq!((status, body["active"].as_bool()), (200, Some(true)));
    let (status, _) = app.login(&account.email, &account.password).await;
    assert_eq!(status, 200);
    let events = events_of(&app, 4, &id).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["user.registered", "user.deactivated", "user.reactivated"]
    );
}

#[tokio::test]
async fn filters_sorting_paging_and_projection_follow_the_rfc() {
    let app = TestApp::spawn().await;
    let token = scim_token(&app).await;
    let family = format!("Fam{}", &Uuid::new_v4().simple().to_string()[..6]);
    let mut ids = Vec::new();
    for given in ["Alan", "Barbara", "Claude"] {
        let mut u = okta_user(&unique_address());
        u["name"] = json!({"givenName": given, "familyName": family});
        u["title"] = json!(if given == "Barbara" {
            "Engineer"
        } else {
            "Pilot"
        });
        ids.push(
            create(&app, &token, &u).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let query = |q: &str| {
        let app = &app;
        let token = token.clone();
        let q = q.to_owned();
        async move {
            let (status, _, body) = app
                .call(
                    Method::GET,
                    &format!("/scim/v2/Users?{q}"),
                    Some(&token),
                    None,
                )
                .await;
            (status, body)
        }
    };
    let filter = format!("name.familyName eq \"{family}\" and not (title eq \"engineer\")");
    let (status, body) = query(&format!(
        "filter={}&sortBy=name.givenName&sortOrder=descending",
        urlencode(&filter)
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalResults"], 2);
    let names: Vec<&str> = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"]["givenName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Claude", "Alan"]);

    let f = format!("name.familyName sw \"{}\"", &family[..5]);
    let (_, body) = query(&format!(
        "filter={}&sortBy=name.givenName&startIndex=2&count=1&attributes=name.givenName",
        urlencode(&f)
    ))
    .await;
    assert_eq!(body["startIndex"], 2);
    assert_eq!(body["itemsPerPage"], 1);
    let only = &body["Resources"][0];
    assert_eq!(only["name"], json!({"givenName": "Barbara"}));
    assert!(only.get("emails").is_none() && only.get("id").is_some());

    let f = format!(
        "id eq \"{}\" or emails[type eq \"work\" and value eq \"nobody@x.org\"]",
        ids[0]
    );
    let (_, body) = query(&format!("filter={}", urlencode(&f))).await;
    assert_eq!(body["totalResults"], 1);

    for bad in ["userName eq", "password eq \"x\"", "active co \"t\""] {
        let (status, body) = query(&format!("filter={}", urlencode(bad))).await;
        assert_eq!(
            (status, body["scimType"].as_str()),
            (400, Some("invalidFilter")),
            "{bad}"
        );
    }
}

/// The events of one user on the events topic (waiting for `expected` in all).
async fn events_of(
    app: &TestApp,
    expected: usize,
    user: &str,
) -> Vec<common::events::user::UserEvent> {
    kafka::read_all(&app.events_topic, expected, Duration::from_secs(30))
        .await
        .iter()
        .map(|r| common::events::user::UserEvent::decode(&r.payload).unwrap())
        .filter(|e| e.user_id.to_string() == user)
        .collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn patch_and_put_honour_value_paths_and_if_match() {
    let app = TestApp::spawn().await;
    let token = scim_token(&app).await;
    let created = create(&app, &token, &okta_user(&unique_address())).await;
    let id = created["id"].as_str().unwrap();
    let new_address = unique_address();
    let (status, body) = patch(
        &app,
        &token,
        id,
        json!([
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": new_address},
            {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Navy"},
            {"op": "remove", "path": "displayName"}
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["emails"][0]["value"], new_address);
    assert_eq!(
        body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Navy"
    );
    assert!(body.get("displayName").is_none());
    assert_eq!(body["meta"]["version"], "W/\"2\"");

    // A stale If-Match changes nothing.
    let stale = app
        .http
        .request(Method::PUT, app.url(&format!("/scim/v2/Users/{id}")))
        .bearer_auth(&token)
        .header("if-match", "W/\"1\"")
        .header("content-type", "application/scim+json")
        .body(okta_user(&new_address).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let (_, _, now) = app
        .call(
            Method::GET,
            &format!("/scim/v2/Users/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(now["meta"]["version"], "W/\"2\"");

    // A PUT with the current version replaces: what it leaves out is gone.
    let mut replacement = okta_user(&new_address);
    replacement["name"] = json!({"givenName": "Amazing", "familyName": "Grace"});
    let put = app
        .http
        .request(Method::PUT, app.url(&format!("/scim/v2/Users/{id}")))
        .bearer_auth(&token)
        .header("if-match", "W/\"2\"")
        .json(&replacement)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let body: Value = put.json().await.unwrap();
    assert_eq!(body["name"]["givenName"], "Amazing");
    assert!(body
        .get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        .is_none());

    for (ops, scim_type) in [
        (
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "name.givenName", "value": "J"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "frobnicate", "path": "title"}]),
            "invalidSyntax",
        ),
    ] {
        let (status, body) = patch(&app, &token, id, ops).await;
        assert_eq!((status, body["scimType"].as_str()), (400, Some(scim_type)));
    }

    // DELETE: gone for SCIM, `user.deleted` published.
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/scim/v2/Users/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("/scim/v2/Users/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn groups_are_the_roles_and_membership_changes_the_role() {
    let app = TestApp::spawn().await;
    let token = scim_token(&app).await;
    let account = app.register_and_login().await;
    let member = json!([{"value": account.id}]);
    let (status, _, body) = app
        .call(
            Method::PATCH,
            "/scim/v2/Groups/moderator",
            Some(&token),
            Some(&json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": member}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["value"] == account.id.to_string()));
    let role: String = app
        .pg()
        .await
        .query_one("SELECT role FROM users WHERE id = $1", &[&account.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "moderator");
    let (status, _, _) = app
        .call(Method::GET, "/api/auth/me", Some(&account.access), None)
        .await;
    assert_eq!(status, 401, "a role change ends the sessions");
    let (_, _, user) = app
        .call(
            Method::GET,
            &format!("/scim/v2/Users/{}", account.id),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(user["groups"][0]["value"], "moderator");

    // Entra's remove names the member in the value.
    let (status, _, _) = app
        .call(
            Method::PATCH,
            "/scim/v2/Groups/moderator",
            Some(&token),
            Some(&json!({"schemas": [PATCH], "Operations": [{"op": "Remove", "path": "members", "value": member}]})),
        )
        .await;
    assert_eq!(status, 200);
    let role: String = app
        .pg()
        .await
        .query_one("SELECT role FROM users WHERE id = $1", &[&account.id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "user");

    let filter = urlencode("displayName eq \"admin\"");
    let (_, _, groups) = app
        .call(
            Method::GET,
            &format!("/scim/v2/Groups?filter={filter}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(groups["totalResults"], 1);
    let (status, _, _) = app
        .call(
            Method::POST,
            "/scim/v2/Groups",
            Some(&token),
            Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "staff"})),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_scim_token_is_rate_limited_on_its_own() {
    let app = TestApp::spawn_with(TestOptions {
        api_args: vec!["--scim-rate-per-minute".into(), "3".into()],
        ..Default::default()
    })
    .await;
    let token = scim_token(&app).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, headers, _) = app
            .call(Method::GET, "/scim/v2/Users", Some(&token), None)
            .await;
        statuses.push(status);
        if status == 429 {
            assert!(headers.contains_key("retry-after"));
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let other = scim_token(&app).await;
    let (status, _, _) = app
        .call(Method::GET, "/scim/v2/Users", Some(&other), None)
        .await;
    assert_eq!(status, 200, "another token has its own budget");
}
