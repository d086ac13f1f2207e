//! SCIM PATCH (RFC 7644 §3.5.2): `add`, `replace` and `remove` operations applied, in
//! order, to a resource's JSON document. The caller checks the result against the schema
//! (`user::parse`) and stores it, so a PATCH is exactly "a PUT of the patched document".
//!
//! Accepted as the big providers send them: operation names in any case (Entra ID sends
//! `Replace`), a `replace` without a path whose value holds dotted paths
//! (`{"name.givenName": "Ada"}`), string booleans (`"False"`), a plain id for `manager`,
//! and an `add`/`replace` through a value filter that matches nothing, which creates the
//! value the filter describes (`emails[type eq "work"].value`).

use serde_json::{Map, Value};

use super::filter::{self, AttrPath, CompareOp, Filter, PatchPath};
use super::schema::{self, Attr, Kind, Mutability, ENTERPRISE, USER};
use super::ScimError;

/// The most operations one PATCH may carry.
pub const MAX_OPERATIONS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// The operations of a PatchOp body, checked.
pub fn operations(body: &Value) -> Result<Vec<(String, Option<String>, Value)>, ScimError> {
    let schemas_ok = filter::get(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|s| s.as_str() == Some(schema::PATCH_OP)));
    if !schemas_ok {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH body's schemas must hold {}",
            schema::PATCH_OP
        )));
    }
    let ops = filter::get(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    if ops.is_empty() || ops.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_syntax(format!(
            "Operations must hold 1 to {MAX_OPERATIONS} operations"
        )));
    }
    ops.iter()
        .map(|op| {
            let name = filter::get(op, "op")
                .and_then(Value::as_str)
                .ok_or_else(|| ScimError::invalid_syntax("each operation needs an op"))?;
            let path = match filter::get(op, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(p.clone()),
                Some(_) => return Err(ScimError::invalid_path("path must be a string")),
            };
            let value = filter::get(op, "value").cloned().unwrap_or(Value::Null);
            Ok((name.to_ascii_lowercase(), path, value))
        })
        .collect()
}

/// The attributes a document of this kind has: the core schema's and the extension's.
pub struct Attributes {
    pub core: &'static [Attr],
    pub extension: Option<(&'static str, &'static [Attr])>,
}

pub const USER_ATTRIBUTES: Attributes = Attributes {
    core: schema::USER_ATTRS,
    extension: Some((ENTERPRISE, schema::ENTERPRISE_ATTRS)),
};

pub const GROUP_ATTRIBUTES: Attributes = Attributes {
    core: schema::GROUP_ATTRS,
    extension: None,
};

/// Applies a PatchOp body to `document`.
pub fn apply(document: &mut Value, body: &Value, attrs: &Attributes) -> Result<(), ScimError> {
    for (name, path, value) in operations(body)? {
        let op = match name.as_str() {
            "add" => Op::Add,
            "replace" => Op::Replace,
            "remove" => Op::Remove,
            other => {
                return Err(ScimError::invalid_syntax(format!(
                    "{other:?} is not add, replace or remove"
                )))
            }
        };
        let Some(object) = document.as_object_mut() else {
            return Err(ScimError::invalid_syntax("the resource is not an object"));
        };
        match path {
            Some(path) => apply_path(object, op, &path, value, attrs)?,
            None if op == Op::Remove => {
                return Err(ScimError::no_target("remove needs a path"));
            }
            None => {
                let Value::Object(fields) = value else {
                    return Err(ScimError::invalid_value(
                        "an operation without a path needs an object value",
                    ));
                };
                for (key, value) in fields {
                    if key.eq_ignore_ascii_case(schema::PATCH_OP) || key == "schemas" {
                        continue;
                    }
                    apply_path(object, op, &key, value, attrs)?;
                }
            }
        }
    }
    Ok(())
}

/// The key under which `name` is stored in `object` (matching without case), or the
/// schema's spelling for a new one.
fn key_of(object: &Map<String, Value>, name: &str, attr: Option<&Attr>) -> String {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| attr.map_or(name.to_owned(), |a| a.name.to_owned()))
}

/// A value for a complex attribute: a bare string is its `value` (Entra sends a
/// manager's id alone).
fn complex_value(attr: &Attr, value: Value) -> Value {
    match value {
        Value::String(s)
            if attr.kind == Kind::Complex && schema::find(attr.sub, "value").is_some() =>
        {
            serde_json::json!({ "value": s })
        }
        other => other,
    }
}

fn as_items(attr: &Attr, value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.into_iter().map(|v| complex_value(attr, v)).collect(),
        Value::Null => Vec::new(),
        single => vec![complex_value(attr, single)],
    }
}

fn apply_path(
    document: &mut Map<String, Value>,
    op: Op,
    raw: &str,
    value: Value,
    attrs: &Attributes,
) -> Result<(), ScimError> {
    // The whole extension at once.
    if let Some((urn, _)) = attrs
        .extension
        .filter(|(urn, _)| raw.eq_ignore_ascii_case(urn))
    {
        let key = key_of(document, urn, None);
        return match (op, value) {
            (Op::Remove, _) => {
                document.remove(&key);
                Ok(())
            }
            (_, Value::Object(fields)) => {
                for (k, v) in fields.into_iter().filter(|(k, _)| k != "schemas") {
                    apply_path(document, op, &format!("{urn}:{k}"), v, attrs)?;
                }
                Ok(())
            }
            _ => Err(ScimError::invalid_value(format!("{urn} takes an object"))),
        };
    }
    let path = filter::parse_patch_path(raw).map_err(|e| ScimError::invalid_path(e.0))?;
    let (container, table): (&mut Map<String, Value>, &[Attr]) = match &path.attr.urn {
        None => (document, attrs.core),
        Some(urn) if urn.eq_ignore_ascii_case(USER) || urn.eq_ignore_ascii_case(schema::GROUP) => {
            (document, attrs.core)
        }
        Some(urn) => match attrs.extension {
            Some((ext, table)) if urn.eq_ignore_ascii_case(ext) => {
                let key = key_of(document, ext, None);
                if op == Op::Remove && !document.contains_key(&key) {
                    return Ok(());
                }
                let entry = document
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                (entry.as_object_mut().expect("made an object"), table)
            }
            _ => return Err(ScimError::invalid_path(format!("{raw:?}: unknown schema"))),
        },
    };
    let name = &path.attr.name;
    if ["id", "meta", "schemas"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    {
        return Err(ScimError::mutability(format!("{name} is read-only")));
    }
    let attr = schema::find(table, name);
    if name.eq_ignore_ascii_case("externalId") {
        return set_simple(container, "externalId", op, value);
    }
    let Some(attr) = attr else {
        return Err(ScimError::invalid_path(format!(
            "{raw:?}: no such attribute"
        )));
    };
    if attr.mutability == Mutability::ReadOnly {
        return Err(ScimError::mutability(format!("{} is read-only", attr.name)));
    }
    let key = key_of(container, name, Some(attr));
    match (&path, attr.multi) {
        (
            PatchPath {
                filter: Some(f),
                sub_after_filter,
                ..
            },
            true,
        ) => apply_filtered(
            container,
            &key,
            attr,
            op,
            f,
            sub_after_filter.as_deref(),
            value,
        ),
        (
            PatchPath {
                filter: Some(_), ..
            },
            false,
        ) => Err(ScimError::invalid_path(format!(
            "{raw:?}: a value filter needs a multi-valued attribute"
        ))),
        (
            PatchPath {
                attr: AttrPath { sub: Some(sub), .. },
                ..
            },
            true,
        ) => {
            // `emails.value`: every element.
            let items = container.get_mut(&key).and_then(Value::as_array_mut);
            match (op, items) {
                (_, None) if op == Op::Remove => Ok(()),
                (_, None) => Err(ScimError::no_target(format!("{raw:?}: no values"))),
                (Op::Remove, Some(items)) => {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        remove_key(item, sub);
                    }
                    Ok(())
                }
                (_, Some(items)) => {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        let k = key_of(item, sub, schema::find(attr.sub, sub));
                        item.insert(k, value.clone());
                    }
                    Ok(())
                }
            }
        }
        (
            PatchPath {
                attr: AttrPath { sub: Some(sub), .. },
                ..
            },
            false,
        ) => {
            if op == Op::Remove {
                if let Some(obj) = container.get_mut(&key).and_then(Value::as_object_mut) {
                    remove_key(obj, sub);
                    if obj.is_empty() {
                        container.remove(&key);
                    }
                }
                return Ok(());
            }
            let entry = container
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let obj = entry.as_object_mut().expect("made an object");
            let k = key_of(obj, sub, schema::find(attr.sub, sub));
            obj.insert(k, value);
            Ok(())
        }
        (_, true) => {
            match op {
                // Entra ID removes group members by naming them in the value.
                Op::Remove if value.is_array() => {
                    let gone: Vec<Value> = as_items(attr, value)
                        .iter()
                        .filter_map(|v| filter::get(v, "value").cloned())
                        .collect();
                    if let Some(items) = container.get_mut(&key).and_then(Value::as_array_mut) {
                        items.retain(|i| filter::get(i, "value").is_none_or(|v| !gone.contains(v)));
                    }
                }
                Op::Remove => {
                    container.remove(&key);
                }
                Op::Replace => {
                    container.insert(key, Value::Array(as_items(attr, value)));
                }
                Op::Add => {
                    let new = as_items(attr, value);
                    let clears_primary = new
                        .iter()
                        .any(|v| v.get("primary") == Some(&Value::Bool(true)));
                    let entry = container
                        .entry(key)
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if !entry.is_array() {
                        *entry = Value::Array(Vec::new());
                    }
                    let items = entry.as_array_mut().expect("made an array");
                    if clears_primary {
                        for item in items.iter_mut().filter_map(Value::as_object_mut) {
                            item.remove("primary");
                        }
                    }
                    for v in new {
                        if !items.contains(&v) {
                            items.push(v);
                        }
                    }
                }
            }
            Ok(())
        }
        (_, false) if attr.kind == Kind::Complex => {
            match (op, complex_value(attr, value)) {
                (Op::Remove, _) => {
                    container.remove(&key);
                }
                (_, Value::Object(fields)) => {
                    // Sub-attributes not named stay (RFC 7644 §3.5.2.1, §3.5.2.3).
                    let entry = container
                        .entry(key)
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !entry.is_object() {
                        *entry = Value::Object(Map::new());
                    }
                    let obj = entry.as_object_mut().expect("made an object");
                    for (k, v) in fields {
                        let k = key_of(obj, &k, schema::find(attr.sub, &k));
                        obj.insert(k, v);
                    }
                }
                (_, Value::Null) => {
                    container.remove(&key);
                }
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "{} takes an object",
                        attr.name
                    )))
                }
            }
            Ok(())
        }
        _ => set_simple(container, &key, op, value),
    }
}

fn set_simple(
    container: &mut Map<String, Value>,
    key: &str,
    op: Op,
    value: Value,
) -> Result<(), ScimError> {
    let key = key_of(container, key, None);
    if op == Op::Remove || value.is_null() {
        container.remove(&key);
    } else {
        container.insert(key, value);
    }
    Ok(())
}

fn remove_key(object: &mut Map<String, Value>, name: &str) {
    let key = key_of(object, name, None);
    object.remove(&key);
}

/// The fields a filter of `eq` comparisons (joined by `and`) describes: what a value
/// created through it holds.
fn described(filter: &Filter, into: &mut Map<String, Value>) -> bool {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.sub.is_none() && path.urn.is_none() => {
            into.insert(path.name.clone(), value.clone());
            true
        }
        Filter::And(a, b) => described(a, into) && described(b, into),
        _ => false,
    }
}

fn apply_filtered(
    container: &mut Map<String, Value>,
    key: &str,
    attr: &Attr,
    op: Op,
    filter: &Filter,
    sub: Option<&str>,
    value: Value,
) -> Result<(), ScimError> {
    let entry = container
        .entry(key.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        *entry = Value::Array(Vec::new());
    }
    let items = entry.as_array_mut().expect("made an array");
    let matched: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, v)| filter::matches(filter, v))
        .map(|(i, _)| i)
        .collect();
    match op {
        Op::Remove => {
            match sub {
                None => {
                    let mut i = 0;
                    items.retain(|_| {
                        let keep = !matched.contains(&i);
                        i += 1;
                        keep
                    });
                }
                Some(sub) => {
                    for &i in &matched {
                        if let Some(obj) = items[i].as_object_mut() {
                            remove_key(obj, sub);
                        }
                    }
                }
            }
            if items.is_empty() {
                container.remove(key);
            }
            Ok(())
        }
        Op::Add | Op::Replace if matched.is_empty() => {
            // Nothing matches: create what the filter describes (Entra ID's way of
            // setting `emails[type eq "work"].value` on a user without one).
            let mut created = Map::new();
            if !described(filter, &mut created) {
                return Err(ScimError::no_target(
                    "the value filter matches no value, and it does not describe one to create",
                ));
            }
            match (sub, value) {
                (Some(sub), v) => {
                    created.insert(sub.to_owned(), v);
                }
                (None, v) => match complex_value(attr, v) {
                    Value::Object(fields) => created.extend(fields),
                    _ => return Err(ScimError::invalid_value("the value must be an object")),
                },
            }
            items.push(Value::Object(created));
            Ok(())
        }
        Op::Add | Op::Replace => {
            for &i in &matched {
                match (sub, &value) {
                    (Some(sub), v) => {
                        if let Some(obj) = items[i].as_object_mut() {
                            let k = key_of(obj, sub, schema::find(attr.sub, sub));
                            obj.insert(k, v.clone());
                        }
                    }
                    (None, Value::Object(fields)) if op == Op::Add => {
                        if let Some(obj) = items[i].as_object_mut() {
                            for (k, v) in fields {
                                obj.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    (None, Value::Object(_)) => items[i] = value.clone(),
                    (None, _) => {
                        return Err(ScimError::invalid_value("the value must be an object"));
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(doc: &mut Value, ops: Value) -> Result<(), ScimError> {
        apply(
            doc,
            &json!({"schemas": [schema::PATCH_OP], "Operations": ops}),
            &USER_ATTRIBUTES,
        )
    }

    fn user() -> Value {
        json!({
            "schemas": [USER], "id": "1", "userName": "ada",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "ada@x.org", "type": "work", "primary": true},
                       {"value": "ada@home.org", "type": "home"}],
            "active": true
        })
    }

    #[test]
    fn okta_deactivates_with_a_pathless_replace() {
        let mut u = user();
        patch(
            &mut u,
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .unwrap();
        assert_eq!(u["active"], false);
    }

    #[test]
    fn entra_style_operations_with_dotted_keys_and_capitalised_names() {
        let mut u = user();
        patch(
            &mut u,
            json!([
                {"op": "Replace", "value": {"name.givenName": "Augusta", "active": "False"}},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "42"},
                {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+44 20"}
            ]),
        )
        .unwrap();
        assert_eq!(u["name"]["givenName"], "Augusta");
        assert_eq!(
            u["name"]["familyName"], "Lovelace",
            "other sub-attributes stay"
        );
        assert_eq!(
            u["active"], "False",
            "the schema check reads string booleans"
        );
        assert_eq!(u[ENTERPRISE]["manager"], json!({"value": "42"}));
        assert_eq!(
            u["phoneNumbers"],
            json!([{"type": "work", "value": "+44 20"}])
        );
    }

    #[test]
    fn value_filters_select_what_is_replaced_or_removed() {
        let mut u = user();
        patch(
            &mut u,
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@x.org"}]),
        )
        .unwrap();
        assert_eq!(u["emails"][0]["value"], "new@x.org");
        assert_eq!(u["emails"][1]["value"], "ada@home.org");
        patch(
            &mut u,
            json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
        )
        .unwrap();
        assert_eq!(u["emails"].as_array().unwrap().len(), 1);
        patch(&mut u, json!([{"op": "remove", "path": "name.givenName"}])).unwrap();
        assert!(u["name"].get("givenName").is_none());
    }

    #[test]
    fn adding_a_primary_value_takes_primary_from_the_others() {
        let mut u = user();
        patch(
            &mut u,
            json!([{"op": "add", "path": "emails", "value": [{"value": "b@x.org", "primary": true}]}]),
        )
        .unwrap();
        let primaries: Vec<_> = u["emails"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["primary"] == true)
            .collect();
        assert_eq!(primaries, [&json!({"value": "b@x.org", "primary": true})]);
    }

    #[test]
    fn bad_operations_are_refused_with_their_scim_type() {
        for (ops, scim_type) in [
            (json!([{"op": "move", "path": "title"}]), "invalidSyntax"),
            (json!([{"op": "remove"}]), "noTarget"),
            (
                json!([{"op": "replace", "path": "id", "value": "2"}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "groups", "value": []}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "path": "nope", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq", "value": 1}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "emails[type ne \"x\" or primary eq true].display", "value": "d"},
                       {"op": "replace", "path": "phoneNumbers[type ne \"x\"].value", "value": "1"}]),
                "noTarget",
            ),
            (json!([]), "invalidSyntax"),
        ] {
            let e = patch(&mut user(), ops.clone()).expect_err(&ops.to_string());
            assert_eq!(e.scim_type, Some(scim_type), "{ops}");
        }
        let e = apply(&mut user(), &json!({"Operations": []}), &USER_ATTRIBUTES).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidSyntax"), "no PatchOp schema");
    }
}
