//! SCIM 2.0 endpoints at `/scim/v2` (RFC 7644): discovery, Users and Groups. Every
//! resource endpoint needs a SCIM token (`ScimClient`); the discovery endpoints answer
//! anyone, as RFC 7644 §4 allows.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use common::domain::Role;
use common::store::scim::ScimToken;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::caller::RequestContext;
use crate::scim::{
    self, answer, base_url, body, if_match, patch, query, resource, schema, user, ScimError,
};
use crate::service::scim as service;
use crate::state::AppState;

/// An authenticated SCIM client: a live SCIM token, within its rate limit.
#[derive(Debug, Clone)]
pub struct ScimClient {
    pub token: ScimToken,
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ScimError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(ScimError::unauthenticated)?;
        let token = service::authenticate(app, token).await?.ok_or_else(|| {
            tracing::info!(event = "scim_token_refused");
            ScimError::unauthenticated()
        })?;
        service::limit(app, &token).await?;
        Ok(Self { token })
    }
}

type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;

/// The query parameters, names matched without case.
fn params(raw: Params) -> Result<HashMap<String, String>, ScimError> {
    let Query(map) = raw.map_err(|e| ScimError::invalid_syntax(e.body_text()))?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect())
}

fn number(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ScimError> {
    params
        .get(&name.to_ascii_lowercase())
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer")))
        })
        .transpose()
}

fn list_response(resources: Vec<Value>, total: i64, offset: i64) -> Value {
    json!({
        "schemas": [schema::LIST],
        "totalResults": total,
        "startIndex": offset + 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

fn projected(value: Value, p: &HashMap<String, String>) -> Value {
    query::project(
        value,
        p.get("attributes").map(String::as_str),
        p.get("excludedattributes").map(String::as_str),
    )
}

// --- discovery ------------------------------------------------------------------------

pub async fn service_provider_config(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&app, &headers);
    answer(
        StatusCode::OK,
        &schema::service_provider_config(&base, app.scim.max_results),
    )
}

/// A discovery list (every item, one page).
fn discovery_list(all: Vec<Value>) -> Response {
    let total = all.len() as i64;
    answer(StatusCode::OK, &list_response(all, total, 0))
}

/// One discovery item by its id.
fn discovery_item(all: Vec<Value>, id: &str, what: &str) -> Result<Response, ScimError> {
    all.into_iter()
        .find(|item| item["id"] == id)
        .map(|item| answer(StatusCode::OK, &item))
        .ok_or_else(|| ScimError::not_found(what))
}

pub async fn resource_types(State(app): State<AppState>, headers: HeaderMap) -> Response {
    discovery_list(schema::resource_types(&base_url(&app, &headers)))
}

pub async fn resource_type(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let all = schema::resource_types(&base_url(&app, &headers));
    discovery_item(all, &id, "ResourceType")
}

pub async fn schemas(State(app): State<AppState>, headers: HeaderMap) -> Response {
    discovery_list(schema::schemas(&base_url(&app, &headers)))
}

pub async fn schema_by_id(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    discovery_item(schema::schemas(&base_url(&app, &headers)), &id, "Schema")
}

/// Any other path under `/scim/v2`.
pub async fn not_found() -> ScimError {
    ScimError::not_found("Resource")
}

// --- users ----------------------------------------------------------------------------

/// The parameters of a `POST …/.search` body (RFC 7644 §3.4.3), as query parameters.
fn search_params(headers: &HeaderMap, bytes: &[u8]) -> Result<HashMap<String, String>, ScimError> {
    let request = body(headers, bytes)?;
    if !request.is_object() {
        return Err(ScimError::invalid_syntax(
            "a SearchRequest is a JSON object",
        ));
    }
    let mut p = HashMap::new();
    for name in [
        "filter",
        "sortBy",
        "sortOrder",
        "startIndex",
        "count",
        "attributes",
        "excludedAttributes",
    ] {
        let text = match scim::filter::get(&request, name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ScimError::invalid_value(format!("{name} must list strings")))?
                .join(","),
            Some(_) => {
                return Err(ScimError::invalid_value(format!(
                    "{name} has the wrong type"
                )))
            }
        };
        p.insert(name.to_ascii_lowercase(), text);
    }
    Ok(p)
}

/// Users matching the parameters: the total and one page, projected.
async fn users_page(
    app: &AppState,
    base: &str,
    p: &HashMap<String, String>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<Value>), ScimError> {
    let condition = p
        .get("filter")
        .filter(|f| !f.trim().is_empty())
        .map(|f| query::user_condition(f))
        .transpose()?;
    let sort = query::user_sort(
        p.get("sortby").map(String::as_str),
        p.get("sortorder").map(String::as_str),
    )?;
    let (total, users) =
        service::list_users(app, condition.as_ref(), sort.as_ref(), offset, limit).await?;
    Ok((
        total,
        users
            .iter()
            .map(|u| projected(user::render(u, base), p))
            .collect(),
    ))
}

fn page_of(app: &AppState, p: &HashMap<String, String>) -> Result<(i64, i64), ScimError> {
    Ok(query::page(
        number(p, "startIndex")?,
        number(p, "count")?,
        app.scim.max_results,
    ))
}

/// A page of users as a ListResponse.
async fn users_answer(
    app: &AppState,
    headers: &HeaderMap,
    p: &HashMap<String, String>,
) -> Result<Response, ScimError> {
    let (offset, limit) = page_of(app, p)?;
    let (total, resources) = users_page(app, &base_url(app, headers), p, offset, limit).await?;
    Ok(answer(
        StatusCode::OK,
        &list_response(resources, total, offset),
    ))
}

pub async fn list_users(
    State(app): State<AppState>,
    _client: ScimClient,
    headers: HeaderMap,
    raw: Params,
) -> Result<Response, ScimError> {
    users_answer(&app, &headers, &params(raw)?).await
}

/// `POST /scim/v2/Users/.search`.
pub async fn search_users(
    State(app): State<AppState>,
    _client: ScimClient,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    users_answer(&app, &headers, &search_params(&headers, &bytes)?).await
}

/// `POST /scim/v2/.search`: Users, then Groups, as one list.
pub async fn search_all(
    State(app): State<AppState>,
    _client: ScimClient,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    let p = search_params(&headers, &bytes)?;
    let (offset, limit) = page_of(&app, &p)?;
    let base = base_url(&app, &headers);
    let (users_total, mut resources) = users_page(&app, &base, &p, offset, limit).await?;
    let groups = matching_groups(&app, &base, p.get("filter")).await?;
    let total = users_total + groups.len() as i64;
    let room = usize::try_from(limit)
        .unwrap_or(0)
        .saturating_sub(resources.len());
    let skip = usize::try_from((offset - users_total).max(0)).unwrap_or(0);
    resources.extend(
        groups
            .into_iter()
            .skip(skip)
            .take(room)
            .map(|g| projected(g, &p)),
    );
    Ok(answer(
        StatusCode::OK,
        &list_response(resources, total, offset),
    ))
}

pub async fn get_user(
    State(app): State<AppState>,
    _client: ScimClient,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Params,
) -> Result<Response, ScimError> {
    let p = params(raw)?;
    let found = service::get_user(&app, &id).await?;
    let rendered = user::render(&found, &base_url(&app, &headers));
    // A conditional GET whose version still holds: nothing to send again.
    if let Some(tag) = headers
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if tag.trim() == user::etag(found.version) {
            let mut r = answer(StatusCode::NOT_MODIFIED, &Value::Null);
            *r.body_mut() = axum::body::Body::empty();
            return Ok(r);
        }
    }
    Ok(resource(StatusCode::OK, &projected(rendered, &p)))
}

pub async fn create_user(
    State(app): State<AppState>,
    client: ScimClient,
    context: RequestContext,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    let document = body(&headers, &bytes)?;
    let parsed = user::parse(&document)?;
    let created = service::create_user(&app, &client.token, &context, parsed).await?;
    Ok(resource(
        StatusCode::CREATED,
        &user::render(&created, &base_url(&app, &headers)),
    ))
}

pub async fn replace_user(
    State(app): State<AppState>,
    client: ScimClient,
    context: RequestContext,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    let document = body(&headers, &bytes)?;
    let expected = if_match(&headers)?;
    let current = service::get_user(&app, &id).await?;
    let mut parsed = user::parse(&document)?;
    // `groups` are read-only and a PUT leaves what it cannot set; `active` left out of a
    // PUT stays as it was rather than reactivating the account.
    if scim::filter::get(&document, "active").is_none() {
        parsed.active = current.disabled_at.is_none();
    }
    let updated =
        service::write_user(&app, &client.token, &context, current.id, expected, parsed).await?;
    Ok(resource(
        StatusCode::OK,
        &user::render(&updated, &base_url(&app, &headers)),
    ))
}

pub async fn patch_user(
    State(app): State<AppState>,
    client: ScimClient,
    context: RequestContext,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    let operations = body(&headers, &bytes)?;
    let expected = if_match(&headers)?;
    let base = base_url(&app, &headers);
    let current = service::get_user(&app, &id).await?;
    if expected.is_some_and(|v| v != current.version) {
        return Err(crate::failure::ServiceError::PreconditionFailed.into());
    }
    let mut document = user::render(&current, &base);
    patch::apply(&mut document, &operations, &patch::USER_ATTRIBUTES)?;
    let parsed = user::parse(&document)?;
    // The version read above: a change in between is refused, not overwritten.
    let updated = service::write_user(
        &app,
        &client.token,
        &context,
        current.id,
        Some(current.version),
        parsed,
    )
    .await?;
    Ok(resource(StatusCode::OK, &user::render(&updated, &base)))
}

pub async fn delete_user(
    State(app): State<AppState>,
    client: ScimClient,
    context: RequestContext,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ScimError> {
    let expected = if_match(&headers)?;
    service::delete_user(&app, &client.token, &context, &id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- groups ---------------------------------------------------------------------------

async fn render_group(app: &AppState, role: Role, base: &str) -> Result<Value, ScimError> {
    let (size, members) = service::group_members(app, role).await?;
    let id = role.as_str();
    let version = format!(
        "W/\"{size}-{}\"",
        members_digest(
            &members
                .iter()
                .map(|(u, _)| u.to_string())
                .collect::<Vec<_>>()
        )
    );
    let members: Vec<Value> = members
        .into_iter()
        .map(|(uid, name)| {
            json!({ "value": uid, "$ref": format!("{base}/Users/{uid}"), "display": name, "type": "User" })
        })
        .collect();
    let mut group = json!({
        "schemas": [schema::GROUP],
        "id": id,
        "displayName": id,
        "members": members,
        "meta": {
            "resourceType": "Group",
            "location": format!("{base}/Groups/{id}"),
            // The membership is the version: it changes when a member comes or goes.
            "version": version,
        },
    });
    if i64::try_from(app.scim.max_results).unwrap_or(200) < size {
        group["meta"]["membersListed"] = json!(app.scim.max_results);
    }
    Ok(group)
}

fn members_digest(ids: &[String]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn matching_groups(
    app: &AppState,
    base: &str,
    filter: Option<&String>,
) -> Result<Vec<Value>, ScimError> {
    let filter = filter
        .filter(|f| !f.trim().is_empty())
        .map(|f| scim::filter::parse(f).map_err(|e| ScimError::invalid_filter(e.0)))
        .transpose()?;
    let mut groups = Vec::new();
    for role in service::GROUP_ROLES {
        let group = render_group(app, role, base).await?;
        if filter
            .as_ref()
            .is_none_or(|f| scim::filter::matches(f, &group))
        {
            groups.push(group);
        }
    }
    Ok(groups)
}

pub async fn list_groups(
    State(app): State<AppState>,
    _client: ScimClient,
    headers: HeaderMap,
    raw: Params,
) -> Result<Response, ScimError> {
    let p = params(raw)?;
    let groups = matching_groups(&app, &base_url(&app, &headers), p.get("filter")).await?;
    let total = groups.len() as i64;
    let (offset, limit) = page_of(&app, &p)?;
    let page: Vec<Value> = groups
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(0))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|g| projected(g, &p))
        .collect();
    Ok(answer(StatusCode::OK, &list_response(page, total, offset)))
}

pub async fn get_group(
    State(app): State<AppState>,
    _client: ScimClient,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Params,
) -> Result<Response, ScimError> {
    let p = params(raw)?;
    let role = service::group_role(&id)?;
    let group = render_group(&app, role, &base_url(&app, &headers)).await?;
    Ok(resource(StatusCode::OK, &projected(group, &p)))
}

/// Groups are Registrar's roles: they are neither created nor deleted.
pub async fn fixed_groups(_client: ScimClient) -> ScimError {
    ScimError::new(
        403,
        None,
        "groups are Registrar's roles (admin, moderator): change their members, not the groups",
    )
}

/// The members a changed group document names, against those it had.
fn member_changes(before: &Value, after: &Value) -> Result<(Vec<Uuid>, Vec<Uuid>), ScimError> {
    let ids = |v: &Value| -> Result<Vec<Uuid>, ScimError> {
        v.get("members")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .map(|m| {
                        m.get("value")
                            .and_then(Value::as_str)
                            .and_then(|s| Uuid::parse_str(s).ok())
                            .ok_or_else(|| {
                                ScimError::invalid_value("each member needs the value of a User id")
                            })
                    })
                    .collect()
            })
            .unwrap_or(Ok(Vec::new()))
    };
    let (old, new) = (ids(before)?, ids(after)?);
    let added = new.iter().filter(|id| !old.contains(id)).copied().collect();
    let removed = old.iter().filter(|id| !new.contains(id)).copied().collect();
    Ok((added, removed))
}

async fn change_group(
    app: &AppState,
    client: &ScimClient,
    context: &RequestContext,
    headers: &HeaderMap,
    id: &str,
    change: impl FnOnce(&Value) -> Result<Value, ScimError>,
) -> Result<Response, ScimError> {
    let role = service::group_role(id)?;
    let base = base_url(app, headers);
    let before = render_group(app, role, &base).await?;
    if before["meta"].get("membersListed").is_some() {
        return Err(ScimError::new(
            400,
            Some("tooMany"),
            "the group has more members than SCIM_MAX_RESULTS: change members with PATCH add and remove by value",
        ));
    }
    if let Some(tag) = headers
        .get(axum::http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if tag.trim() != "*" && tag.trim() != before["meta"]["version"] {
            return Err(crate::failure::ServiceError::PreconditionFailed.into());
        }
    }
    let after = change(&before)?;
    let (added, removed) = member_changes(&before, &after)?;
    service::change_members(app, &client.token, context, role, &added, &removed).await?;
    let group = render_group(app, role, &base).await?;
    Ok(resource(StatusCode::OK, &group))
}

pub async fn patch_group(
    State(app): State<AppState>,
    client: ScimClient,
    context: RequestContext,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    let operations = body(&headers, &bytes)?;
    change_group(&app, &client, &context, &headers, &id, |before| {
        let mut doc = before.clone();
        patch::apply(&mut doc, &operations, &patch::GROUP_ATTRIBUTES)?;
        Ok(doc)
    })
    .await
}

pub async fn replace_group(
    State(app): State<AppState>,
    client: ScimClient,
    context: RequestContext,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ScimError> {
    let document = body(&headers, &bytes)?;
    change_group(&app, &client, &context, &headers, &id, |before| {
        if let Some(name) = scim::filter::get(&document, "displayName") {
            if name != &before["displayName"] {
                return Err(ScimError::mutability("displayName is the role's name"));
            }
        }
        let mut doc = before.clone();
        doc["members"] = scim::filter::get(&document, "members")
            .cloned()
            .unwrap_or(json!([]));
        Ok(doc)
    })
    .await
}
