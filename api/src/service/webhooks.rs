//! Webhook endpoints, for admins (the API and `api webhook`): register one (its secret
//! shown once), list, show, change, rotate the secret with an overlap, delete; read the
//! delivery log and send deliveries again. Every change is audited in the acting
//! admin's trail (`webhook.created`, `.updated`, `.secret_rotated`, `.deleted`,
//! `.redelivered`). The consumer delivers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::events::user::UserEventType;
use common::store::webhooks::{self, DeliveryRecord, WebhookEndpoint};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::caller::{Caller, RequestContext};
use crate::service::{accounts, ServiceError};
use crate::state::AppState;

/// How long the old secret keeps signing after a rotation, unless the admin says.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// The longest overlap an admin may ask for.
const MAX_OVERLAP_SECS: u64 = 7 * 24 * 3600;

/// What an admin asks for.
#[derive(Debug, Clone, Default)]
pub struct EndpointSpec {
    pub url: Option<String>,
    pub description: Option<String>,
    /// Empty: every type.
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// An endpoint as created or rotated: the secret is here once.
pub struct WithSecret {
    pub endpoint: WebhookEndpoint,
    pub secret: Option<SecretString>,
}

fn field(name: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(name, message)
}

fn apply(
    app: &AppState,
    mut e: WebhookEndpoint,
    spec: EndpointSpec,
) -> Result<WebhookEndpoint, ServiceError> {
    if let Some(url) = spec.url {
        app.webhook_guard
            .check_url(url.trim())
            .map_err(|m| field("url", m))?;
        e.url = url.trim().to_owned();
    }
    if let Some(description) = spec.description {
        if description.chars().count() > 200 {
            return Err(field("description", "must be at most 200 characters"));
        }
        e.description = description;
    }
    if let Some(mut types) = spec.event_types {
        if let Some(bad) = types.iter().find(|t| UserEventType::parse(t).is_none()) {
            return Err(field(
                "eventTypes",
                format!(
                    "{bad} is not one of {}",
                    UserEventType::ALL.map(UserEventType::as_str).join(", ")
                ),
            ));
        }
        types.sort();
        types.dedup();
        e.event_types = types;
    }
    if let Some(enabled) = spec.enabled {
        e.enabled = enabled;
    }
    Ok(e)
}

async fn audit(
    tx: &deadpool_postgres::Transaction<'_>,
    actor: Option<&Caller>,
    context: &RequestContext,
    action: &str,
    details: serde_json::Value,
) -> Result<(), ServiceError> {
    if let Some(c) = actor {
        accounts::ensure_current(&**tx, c).await?;
    }
    let actor = actor.map(|c| c.id);
    let ctx = context.audit(actor);
    Ok(common::store::oidc::audit_client_change(&**tx, actor, action, &ctx, details).await?)
}

/// Registers an endpoint; its secret is in the answer, once.
pub async fn create(
    app: &AppState,
    actor: Option<&Caller>,
    context: &RequestContext,
    spec: EndpointSpec,
) -> Result<WithSecret, ServiceError> {
    super::require_admin(actor)?;
    if spec.url.is_none() {
        return Err(field("url", "is required"));
    }
    let now = Utc::now();
    let secret = webhooks::new_secret();
    let blank = WebhookEndpoint {
        id: Uuid::now_v7(),
        url: String::new(),
        description: String::new(),
        event_types: Vec::new(),
        secret: secret.clone(),
        previous_secret_until: None,
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        owner_id: actor.map(|c| c.id),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let endpoint = apply(app, blank, spec)?;
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    webhooks::insert_endpoint(&*tx, &endpoint).await?;
    audit(
        &tx,
        actor,
        context,
        "webhook.created",
        json!({ "endpointId": endpoint.id, "url": endpoint.url, "eventTypes": endpoint.event_types }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "webhook_endpoint_created", endpoint = %endpoint.id, actor = ?actor.map(|c| c.id));
    Ok(WithSecret {
        endpoint,
        secret: Some(SecretString::from(secret)),
    })
}

pub async fn list(
    app: &AppState,
    actor: Option<&Caller>,
) -> Result<Vec<WebhookEndpoint>, ServiceError> {
    super::require_admin(actor)?;
    let db = app.db().await?;
    Ok(webhooks::list_endpoints(&**db).await?)
}

pub async fn get(
    app: &AppState,
    actor: Option<&Caller>,
    id: Uuid,
) -> Result<WebhookEndpoint, ServiceError> {
    super::require_admin(actor)?;
    let db = app.db().await?;
    webhooks::find_endpoint(&**db, id)
        .await?
        .ok_or(ServiceError::NotFound("Webhook endpoint"))
}

/// Changes an endpoint; with `rotate` it gets a new secret (in the answer, once) and
/// the old one keeps signing beside it for `overlap`. Enabling a disabled endpoint sends
/// what waited for it, in order.
pub async fn update(
    app: &AppState,
    actor: Option<&Caller>,
    context: &RequestContext,
    id: Uuid,
    spec: EndpointSpec,
    rotate: Option<Option<u64>>,
) -> Result<WithSecret, ServiceError> {
    super::require_admin(actor)?;
    let overlap = match rotate {
        Some(Some(secs)) if secs > MAX_OVERLAP_SECS => {
            return Err(field(
                "secretOverlapSecs",
                format!("must be 0-{MAX_OVERLAP_SECS}"),
            ))
        }
        Some(Some(secs)) => Some(Duration::from_secs(secs)),
        Some(None) => Some(DEFAULT_OVERLAP),
        None => None,
    };
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    let current = webhooks::find_endpoint(&*tx, id)
        .await?
        .ok_or(ServiceError::NotFound("Webhook endpoint"))?;
    let changed = apply(app, current, spec)?;
    let mut endpoint = webhooks::update_endpoint(&*tx, &changed)
        .await?
        .ok_or(ServiceError::NotFound("Webhook endpoint"))?;
    let mut secret = None;
    if let Some(overlap) = overlap {
        let new = webhooks::new_secret();
        endpoint = webhooks::rotate_secret(&*tx, id, &new, overlap)
            .await?
            .ok_or(ServiceError::NotFound("Webhook endpoint"))?;
        secret = Some(SecretString::from(new));
    }
    let action = if secret.is_some() {
        "webhook.secret_rotated"
    } else {
        "webhook.updated"
    };
    audit(
        &tx,
        actor,
        context,
        action,
        json!({ "endpointId": id, "url": endpoint.url, "eventTypes": endpoint.event_types,
                "enabled": endpoint.enabled, "overlapSecs": overlap.map(|o| o.as_secs()) }),
    )
    .await?;
    tx.commit().await?;
    Ok(WithSecret { endpoint, secret })
}

pub async fn delete(
    app: &AppState,
    actor: Option<&Caller>,
    context: &RequestContext,
    id: Uuid,
) -> Result<(), ServiceError> {
    super::require_admin(actor)?;
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    if !webhooks::delete_endpoint(&*tx, id).await? {
        return Err(ServiceError::NotFound("Webhook endpoint"));
    }
    audit(
        &tx,
        actor,
        context,
        "webhook.deleted",
        json!({ "endpointId": id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The delivery log of an endpoint, newest first.
pub async fn deliveries(
    app: &AppState,
    actor: Option<&Caller>,
    id: Uuid,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryRecord>, ServiceError> {
    get(app, actor, id).await?;
    if let Some(s) = state {
        if !["pending", "in_flight", "delivered", "failed"].contains(&s) {
            return Err(field(
                "state",
                "must be pending, in_flight, delivered or failed",
            ));
        }
    }
    let db = app.db().await?;
    Ok(webhooks::log(&**db, id, state, before, limit).await?)
}

/// Sends finished deliveries again: one, or those written in `[from, to)`. Returns how
/// many were queued.
pub async fn redeliver(
    app: &AppState,
    actor: Option<&Caller>,
    context: &RequestContext,
    id: Uuid,
    delivery: Option<i64>,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<u64, ServiceError> {
    super::require_admin(actor)?;
    if let Some((from, to)) = range {
        if from >= to {
            return Err(field("to", "must be after from"));
        }
    }
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    webhooks::find_endpoint(&*tx, id)
        .await?
        .ok_or(ServiceError::NotFound("Webhook endpoint"))?;
    let queued = webhooks::redeliver(&*tx, id, delivery, range).await?;
    if delivery.is_some() && queued == 0 {
        return Err(ServiceError::NotFound("Finished delivery"));
    }
    audit(
        &tx,
        actor,
        context,
        "webhook.redelivered",
        json!({ "endpointId": id, "delivery": delivery, "from": range.map(|r| r.0),
                "to": range.map(|r| r.1), "queued": queued }),
    )
    .await?;
    tx.commit().await?;
    Ok(queued)
}
