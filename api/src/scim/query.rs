//! A SCIM list query (RFC 7644 §3.4.2) in Registrar's terms: the filter mapped onto
//! the stored attributes (`store::scim::Condition`), the sort, the page, and the
//! projection of `attributes` / `excludedAttributes`.

use chrono::{DateTime, Utc};
use common::store::scim::{Condition, Field, Op, Sort, Value};
use serde_json::{Map, Value as Json};

use super::filter::{self, AttrPath, CompareOp, Filter};
use super::schema::{self, Kind, ENTERPRISE, USER};
use super::ScimError;

/// How a path is stored, and how its values compare.
struct Target {
    field: Field,
    kind: Typed,
    ignore_case: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Typed {
    Text,
    Bool,
    Time,
    Id,
}

fn text(field: Field, ignore_case: bool) -> Target {
    Target {
        field,
        kind: Typed::Text,
        ignore_case,
    }
}

/// Where a User attribute path is stored. `within` is the multi-valued attribute of an
/// enclosing value filter (`emails[...]`).
fn user_target(path: &AttrPath, within: Option<&str>) -> Result<Target, ScimError> {
    let unknown = || ScimError::invalid_filter(format!("{path} cannot be filtered on"));
    if let Some(array) = within {
        // Inside `emails[...]`: `value` is the account's address; the rest is kept as sent.
        if array.eq_ignore_ascii_case("emails") && path.name.eq_ignore_ascii_case("value") {
            return Ok(text(Field::Email, true));
        }
        let attr = schema::find(schema::USER_ATTRS, array).ok_or_else(unknown)?;
        let sub = schema::find(attr.sub, &path.name).ok_or_else(unknown)?;
        return Ok(text(
            Field::StoredElement {
                array: vec![attr.name.to_owned()],
                sub: sub.name.to_owned(),
            },
            true,
        ));
    }
    match &path.urn {
        Some(urn) if urn.eq_ignore_ascii_case(ENTERPRISE) => {
            let attr = schema::find(schema::ENTERPRISE_ATTRS, &path.name).ok_or_else(unknown)?;
            let mut keys = vec![ENTERPRISE.to_owned(), attr.name.to_owned()];
            match (&path.sub, attr.kind) {
                (Some(sub), Kind::Complex) => {
                    keys.push(
                        schema::find(attr.sub, sub)
                            .ok_or_else(unknown)?
                            .name
                            .to_owned(),
                    );
                }
                (None, Kind::Complex) => keys.push("value".into()),
                (Some(_), _) => return Err(unknown()),
                (None, _) => {}
            }
            return Ok(text(Field::Stored(keys), true));
        }
        Some(urn) if !urn.eq_ignore_ascii_case(USER) => return Err(unknown()),
        _ => {}
    }
    let name = path.name.to_ascii_lowercase();
    let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
    Ok(match (name.as_str(), sub.as_deref()) {
        ("id", None) => Target {
            field: Field::Id,
            kind: Typed::Id,
            ignore_case: false,
        },
        ("username", None) => text(Field::UserName, true),
        ("externalid", None) => text(Field::ExternalId, false),
        ("emails", None | Some("value")) => text(Field::Email, true),
        ("name", Some("givenname")) => text(Field::GivenName, true),
        ("name", Some("familyname")) => text(Field::FamilyName, true),
        ("title", None) => text(Field::Title, true),
        ("active", None) => Target {
            field: Field::Active,
            kind: Typed::Bool,
            ignore_case: false,
        },
        ("meta", Some("created")) => Target {
            field: Field::Created,
            kind: Typed::Time,
            ignore_case: false,
        },
        ("meta", Some("lastmodified")) => Target {
            field: Field::LastModified,
            kind: Typed::Time,
            ignore_case: false,
        },
        ("groups", None | Some("value") | Some("display")) => text(Field::Role, false),
        _ => {
            let attr = schema::find(schema::USER_ATTRS, &path.name).ok_or_else(unknown)?;
            match (attr.kind, attr.multi, &path.sub) {
                (Kind::Complex, true, sub) => {
                    let sub = sub.as_deref().unwrap_or("value");
                    let sub = schema::find(attr.sub, sub).ok_or_else(unknown)?;
                    text(
                        Field::StoredElement {
                            array: vec![attr.name.to_owned()],
                            sub: sub.name.to_owned(),
                        },
                        true,
                    )
                }
                (Kind::Complex, false, Some(sub)) => {
                    let sub = schema::find(attr.sub, sub).ok_or_else(unknown)?;
                    text(
                        Field::Stored(vec![attr.name.to_owned(), sub.name.to_owned()]),
                        true,
                    )
                }
                (Kind::String | Kind::Reference, false, None) => {
                    text(Field::Stored(vec![attr.name.to_owned()]), true)
                }
                _ => return Err(unknown()),
            }
        }
    })
}

fn op_of(op: CompareOp) -> Op {
    match op {
        CompareOp::Eq => Op::Eq,
        CompareOp::Ne => Op::Ne,
        CompareOp::Co => Op::Contains,
        CompareOp::Sw => Op::StartsWith,
        CompareOp::Ew => Op::EndsWith,
        CompareOp::Gt => Op::Gt,
        CompareOp::Ge => Op::Ge,
        CompareOp::Lt => Op::Lt,
        CompareOp::Le => Op::Le,
    }
}

fn compare(
    target: Target,
    op: CompareOp,
    value: &Json,
    path: &AttrPath,
) -> Result<Condition, ScimError> {
    let bad = |why: &str| ScimError::invalid_filter(format!("{path}: {why}"));
    if value.is_null() {
        return match op {
            CompareOp::Eq => Ok(Condition::Not(Box::new(Condition::Present(target.field)))),
            CompareOp::Ne => Ok(Condition::Present(target.field)),
            _ => Err(bad("only eq and ne compare with null")),
        };
    }
    let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    let value = match (target.kind, value) {
        (Typed::Bool, Json::Bool(b))
            if !substring && matches!(op, CompareOp::Eq | CompareOp::Ne) =>
        {
            Value::Bool(*b)
        }
        (Typed::Bool, _) => return Err(bad("compares with true or false, by eq or ne")),
        (Typed::Time, Json::String(s)) if !substring => Value::Time(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| bad("needs an RFC 3339 date-time"))?
                .with_timezone(&Utc),
        ),
        (Typed::Time, _) => return Err(bad("compares with a date-time string")),
        (Typed::Id, Json::String(s)) => match (uuid::Uuid::parse_str(s), op) {
            (Ok(id), CompareOp::Eq | CompareOp::Ne) => Value::Uuid(id),
            (Err(_), CompareOp::Eq) => return Ok(Condition::Nothing),
            (Err(_), CompareOp::Ne) => return Ok(Condition::Present(Field::Id)),
            _ => return Err(bad("ids compare by eq or ne")),
        },
        (Typed::Id, _) => return Err(bad("ids are strings")),
        (Typed::Text, Json::String(s)) => Value::Text(s.clone()),
        // Kept values are compared as their JSON text (`true`, `42`).
        (Typed::Text, Json::Bool(b)) if !substring => Value::Text(b.to_string()),
        (Typed::Text, Json::Number(n)) if !substring => Value::Text(n.to_string()),
        (Typed::Text, _) => return Err(bad("compares with a string")),
    };
    let value = match (&target.field, value) {
        (Field::Role, Value::Text(t)) => Value::Text(t.to_ascii_lowercase()),
        (_, v) => v,
    };
    Ok(Condition::Compare {
        field: target.field,
        op: op_of(op),
        value,
        ignore_case: target.ignore_case,
    })
}

fn convert(filter: &Filter, within: Option<&str>) -> Result<Condition, ScimError> {
    Ok(match filter {
        Filter::And(a, b) => {
            Condition::And(Box::new(convert(a, within)?), Box::new(convert(b, within)?))
        }
        Filter::Or(a, b) => {
            Condition::Or(Box::new(convert(a, within)?), Box::new(convert(b, within)?))
        }
        Filter::Not(a) => Condition::Not(Box::new(convert(a, within)?)),
        Filter::Present(path) => Condition::Present(user_target(path, within)?.field),
        Filter::Compare { path, op, value } => {
            compare(user_target(path, within)?, *op, value, path)?
        }
        Filter::ValuePath { path, filter } => {
            if within.is_some() || path.sub.is_some() {
                return Err(ScimError::invalid_filter("value filters do not nest"));
            }
            let attr = schema::find(schema::USER_ATTRS, &path.name)
                .filter(|a| a.multi)
                .ok_or_else(|| ScimError::invalid_filter(format!("{path} is not multi-valued")))?;
            convert(filter, Some(attr.name))?
        }
    })
}

/// A `filter` on Users, mapped onto what is stored.
pub fn user_condition(raw: &str) -> Result<Condition, ScimError> {
    let filter = filter::parse(raw).map_err(|e| ScimError::invalid_filter(e.0))?;
    convert(&filter, None)
}

/// `sortBy` and `sortOrder` on Users.
pub fn user_sort(
    sort_by: Option<&str>,
    sort_order: Option<&str>,
) -> Result<Option<Sort>, ScimError> {
    let descending = match sort_order.map(str::to_ascii_lowercase).as_deref() {
        None | Some("ascending") => false,
        Some("descending") => true,
        Some(_) => {
            return Err(ScimError::invalid_value(
                "sortOrder must be ascending or descending",
            ))
        }
    };
    let Some(sort_by) = sort_by.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let path = AttrPath::parse(sort_by).map_err(|e| ScimError::invalid_value(e.0))?;
    let target = user_target(&path, None)
        .map_err(|_| ScimError::invalid_value(format!("cannot sort by {sort_by}")))?;
    if matches!(target.field, Field::StoredElement { .. }) {
        return Err(ScimError::invalid_value(format!(
            "cannot sort by {sort_by}"
        )));
    }
    Ok(Some(Sort {
        field: target.field,
        descending,
    }))
}

/// `startIndex` (1-based) and `count` as an offset and a limit, `count` capped at
/// `max`.
pub fn page(start_index: Option<i64>, count: Option<i64>, max: usize) -> (i64, i64) {
    let max = i64::try_from(max).unwrap_or(200);
    let offset = start_index.unwrap_or(1).max(1) - 1;
    let limit = count.unwrap_or(max).clamp(0, max);
    (offset, limit)
}

fn parse_list(raw: Option<&str>) -> Vec<String> {
    raw.map(|r| {
        r.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// Splits a projection entry into the object it lives in (the core resource or an
/// extension) and its path there.
fn locate(entry: &str) -> (Option<String>, Vec<String>) {
    for urn in [ENTERPRISE, USER, schema::GROUP] {
        if entry.len() > urn.len()
            && entry[..urn.len()].eq_ignore_ascii_case(urn)
            && entry.as_bytes()[urn.len()] == b':'
        {
            let rest = &entry[urn.len() + 1..];
            let container = (urn == ENTERPRISE).then(|| urn.to_owned());
            return (container, rest.split('.').map(str::to_owned).collect());
        }
        if entry.eq_ignore_ascii_case(urn) && urn == ENTERPRISE {
            return (Some(urn.to_owned()), Vec::new());
        }
    }
    (None, entry.split('.').map(str::to_owned).collect())
}

fn key_in(map: &Map<String, Json>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Attributes that are always returned (RFC 7643 §7 `returned: always`).
const ALWAYS: &[&str] = &["id", "schemas", "meta"];

/// Applies `attributes` (only these, plus those always returned) or
/// `excludedAttributes` (all but these) to a resource.
pub fn project(resource: Json, attributes: Option<&str>, excluded: Option<&str>) -> Json {
    let (wanted, unwanted) = (parse_list(attributes), parse_list(excluded));
    let Json::Object(full) = resource else {
        return resource;
    };
    if !wanted.is_empty() {
        let mut out = Map::new();
        for key in ALWAYS {
            if let Some(v) = full.get(*key) {
                out.insert((*key).to_owned(), v.clone());
            }
        }
        for entry in &wanted {
            let (container, path) = locate(entry);
            let source = match &container {
                Some(urn) => full.get(urn).and_then(Json::as_object),
                None => Some(&full),
            };
            let Some(source) = source else { continue };
            let target = match &container {
                Some(urn) => out
                    .entry(urn.clone())
                    .or_insert_with(|| Json::Object(Map::new()))
                    .as_object_mut(),
                None => Some(&mut out),
            };
            let Some(target) = target else { continue };
            if path.is_empty() {
                target.extend(source.clone());
                continue;
            }
            let Some(key) = key_in(source, &path[0]) else {
                continue;
            };
            match (path.get(1), &source[&key]) {
                (None, v) => {
                    target.insert(key, v.clone());
                }
                (Some(sub), Json::Object(o)) => {
                    if let Some(sk) = key_in(o, sub) {
                        let slot = target
                            .entry(key)
                            .or_insert_with(|| Json::Object(Map::new()));
                        if let Some(slot) = slot.as_object_mut() {
                            slot.insert(sk.clone(), o[&sk].clone());
                        }
                    }
                }
                (Some(sub), Json::Array(items)) => {
                    let picked: Vec<Json> = items
                        .iter()
                        .filter_map(|i| {
                            let o = i.as_object()?;
                            let sk = key_in(o, sub)?;
                            Some(serde_json::json!({ sk.clone(): o[&sk].clone() }))
                        })
                        .collect();
                    target.insert(key, Json::Array(picked));
                }
                _ => {}
            }
        }
        // An extension that ended up empty is not shown.
        out.retain(|_, v| !v.as_object().is_some_and(Map::is_empty));
        return Json::Object(out);
    }
    let mut out = full;
    for entry in &unwanted {
        let (container, path) = locate(entry);
        if path
            .first()
            .is_some_and(|p| ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(p)))
            && container.is_none()
        {
            continue;
        }
        let target = match &container {
            Some(urn) if path.is_empty() => {
                if let Some(k) = key_in(&out, urn) {
                    out.remove(&k);
                }
                continue;
            }
            Some(urn) => key_in(&out, urn)
                .and_then(|k| out.get_mut(&k))
                .and_then(Json::as_object_mut),
            None => Some(&mut out),
        };
        let Some(target) = target else { continue };
        let Some(key) = key_in(target, &path[0]) else {
            continue;
        };
        match path.get(1) {
            None => {
                target.remove(&key);
            }
            Some(sub) => match target.get_mut(&key) {
                Some(Json::Object(o)) => {
                    if let Some(sk) = key_in(o, sub) {
                        o.remove(&sk);
                    }
                }
                Some(Json::Array(items)) => {
                    for i in items.iter_mut().filter_map(Json::as_object_mut) {
                        if let Some(sk) = key_in(i, sub) {
                            i.remove(&sk);
                        }
                    }
                }
                _ => {}
            },
        }
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_filters_map_onto_columns_and_kept_attributes() {
        let c = user_condition(
            r#"userName eq "Ada" and emails[type eq "work" and value sw "ada@"] and not (active eq false)"#,
        )
        .unwrap();
        let text = format!("{c:?}");
        assert!(text.contains("UserName"));
        assert!(text.contains("StoredElement"));
        assert!(text.contains("Email"));
        assert!(text.contains("Active"));
        let c = user_condition(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Ops""#,
        )
        .unwrap();
        assert!(format!("{c:?}").contains("department"));
        assert_eq!(
            user_condition(r#"id eq "not-a-uuid""#).unwrap(),
            Condition::Nothing
        );
    }

    #[test]
    fn filters_on_what_cannot_be_compared_are_refused() {
        for bad in [
            r#"password eq "x""#,
            r#"active co "t""#,
            r#"meta.created gt "yesterday""#,
            r#"title gt true and x eq 1"#,
            r#"emails[value eq "a"].value eq "b""#,
            r#"urn:example:other:attr eq "x""#,
        ] {
            let e = user_condition(bad).expect_err(bad);
            assert_eq!(e.scim_type, Some("invalidFilter"), "{bad}");
        }
    }

    #[test]
    fn pages_are_one_based_and_capped() {
        assert_eq!(page(None, None, 200), (0, 200));
        assert_eq!(page(Some(0), Some(5000), 200), (0, 200));
        assert_eq!(page(Some(11), Some(10), 200), (10, 10));
        assert_eq!(page(Some(3), Some(-1), 200), (2, 0));
    }

    #[test]
    fn attributes_keep_only_what_is_named_and_always_id_and_meta() {
        let user = json!({
            "schemas": [USER], "id": "1", "meta": {"version": "W/\"1\""},
            "userName": "ada", "name": {"givenName": "Ada", "familyName": "L"},
            "emails": [{"value": "a@x.org", "type": "work"}],
            ENTERPRISE: {"department": "Ops", "costCenter": "7"}
        });
        let p = project(user.clone(), Some("userName,name.givenName,emails.type,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"), None);
        assert_eq!(
            p,
            json!({
                "schemas": [USER], "id": "1", "meta": {"version": "W/\"1\""},
                "userName": "ada", "name": {"givenName": "Ada"},
                "emails": [{"type": "work"}],
                ENTERPRISE: {"department": "Ops"}
            })
        );
        let p = project(user, None, Some("name.familyName,emails,id,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
        assert!(p.get("emails").is_none() && p.get(ENTERPRISE).is_none());
        assert_eq!(p["name"], json!({"givenName": "Ada"}));
        assert_eq!(p["id"], "1", "always returned");
    }
}
