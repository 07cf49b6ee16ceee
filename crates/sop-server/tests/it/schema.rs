//! A checker for the subset of JSON Schema that utoipa emits (`OpenAPI` 3.1): `type`
//! (also as a list), `properties`, `required`, `additionalProperties`, `items`, `$ref`,
//! `oneOf`/`anyOf`/`allOf`, `enum`, `minimum`, `nullable`. An unknown keyword is an
//! error, so a constraint is never skipped silently.

use serde_json::Value;

const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "format",
    "default",
    "example",
    "examples",
    "contentMediaType",
    "deprecated",
];

/// Every way `value` breaks `schema` (empty: it conforms). `doc` resolves `$ref`s.
pub fn check(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    walk(doc, schema, value, "$", &mut errors);
    errors
}

fn walk(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        if schema == &Value::Bool(false) {
            errors.push(format!("{at}: no value allowed"));
        }
        return;
    };
    if value.is_null() && obj.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    for (key, rule) in obj {
        match key.as_str() {
            "$ref" => {
                let target = rule
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/"))
                    .and_then(|p| p.split('/').try_fold(doc, |v, seg| v.get(seg)));
                match target {
                    Some(s) => walk(doc, s, value, at, errors),
                    None => errors.push(format!("{at}: unresolvable $ref {rule}")),
                }
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                if !types.iter().any(|t| has_type(value, t)) {
                    errors.push(format!("{at}: expected {types:?}, found {value}"));
                }
            }
            "properties" => {
                let (Some(props), Some(v)) = (rule.as_object(), value.as_object()) else {
                    continue;
                };
                for (name, s) in props {
                    if let Some(field) = v.get(name) {
                        walk(doc, s, field, &format!("{at}.{name}"), errors);
                    }
                }
            }
            "required" => {
                let Some(v) = value.as_object() else { continue };
                for name in rule
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !v.contains_key(name) {
                        errors.push(format!("{at}: missing required `{name}`"));
                    }
                }
            }
            "additionalProperties" => {
                let Some(v) = value.as_object() else { continue };
                let known = obj.get("properties").and_then(Value::as_object);
                for (name, field) in v {
                    if known.is_some_and(|k| k.contains_key(name)) {
                        continue;
                    }
                    match rule {
                        Value::Bool(false) => {
                            errors.push(format!("{at}: unexpected field `{name}`"));
                        }
                        Value::Bool(true) => {}
                        s => walk(doc, s, field, &format!("{at}.{name}"), errors),
                    }
                }
            }
            "propertyNames" => {
                let Some(v) = value.as_object() else { continue };
                for name in v.keys() {
                    walk(
                        doc,
                        rule,
                        &Value::String(name.clone()),
                        &format!("{at}[key {name}]"),
                        errors,
                    );
                }
            }
            "items" => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    walk(doc, rule, item, &format!("{at}[{i}]"), errors);
                }
            }
            "oneOf" | "anyOf" => {
                let options = rule.as_array().map(Vec::as_slice).unwrap_or_default();
                let matching = options
                    .iter()
                    .filter(|s| check(doc, s, value).is_empty())
                    .count();
                let ok = if key == "oneOf" {
                    matching == 1
                } else {
                    matching >= 1
                };
                if !ok {
                    errors.push(format!(
                        "{at}: {matching} of the {key} alternatives match {value}"
                    ));
                }
            }
            "allOf" => {
                for s in rule.as_array().into_iter().flatten() {
                    walk(doc, s, value, at, errors);
                }
            }
            "enum" => {
                if !rule.as_array().is_some_and(|vs| vs.contains(value)) {
                    errors.push(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "minimum" => {
                if let (Some(min), Some(v)) = (rule.as_f64(), value.as_f64()) {
                    if v < min {
                        errors.push(format!("{at}: {v} is below the minimum {min}"));
                    }
                }
            }
            "nullable" => {}
            k if ANNOTATIONS.contains(&k) => {}
            other => errors.push(format!(
                "{at}: the checker does not know the keyword `{other}`"
            )),
        }
    }
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

#[test]
fn the_checker_finds_what_it_should() {
    let doc = serde_json::json!({"components": {"schemas": {"P": {
        "type": "object", "required": ["a"], "additionalProperties": false,
        "properties": {"a": {"type": "integer", "minimum": 0}, "b": {"type": ["string", "null"]}}
    }}}});
    let p = serde_json::json!({"$ref": "#/components/schemas/P"});
    assert!(check(&doc, &p, &serde_json::json!({"a": 1, "b": null})).is_empty());
    assert_eq!(
        check(&doc, &p, &serde_json::json!({"b": 1, "c": 2})).len(),
        3
    );
    assert_eq!(check(&doc, &p, &serde_json::json!({"a": -1})).len(), 1);
    let unknown = serde_json::json!({"pattern": "x"});
    assert_eq!(check(&doc, &unknown, &serde_json::json!("y")).len(), 1);
}
