//! Checks a value against the bounds of a schema (`maxLength`, `maxItems`, `maxProperties`,
//! `minimum`, `maximum`), as the API server would: `archlab run` checks a manifest against the
//! CRD's schema, so it refuses with a field path what `kubectl apply` refuses, and the trainer
//! checks its config against the config type's own schema, so every bound is declared once,
//! on the Rust type. Types and unknown fields are serde's to judge; a node that keeps unknown
//! fields (`x-kubernetes-preserve-unknown-fields`) is not looked into. JSON has no infinity or
//! NaN, so [`non_finite`] finds them in the YAML form first.

use serde_json::Value;

/// A bound a value exceeds: where (`spec.seeds[2].name`) and what the bound is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Exceeded {
    pub path: String,
    pub message: String,
}

/// The first bound of `schema` that `value` (found at `path`) exceeds.
pub fn check(schema: &Value, value: &Value, path: &str) -> Result<(), Exceeded> {
    let exceeded = |message: String| {
        Err(Exceeded {
            path: path.to_string(),
            message,
        })
    };
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    match value {
        Value::String(text) => {
            let chars = text.chars().count();
            if let Some(max) = bound("maxLength")
                && chars as f64 > max
            {
                return exceeded(format!("at most {max} characters, found {chars}"));
            }
        }
        Value::Number(number) => {
            // An integer beyond f64's exact range is compared as the nearest float: the
            // schema's bounds are floats too.
            let n = number.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = bound("minimum")
                && n < min
            {
                return exceeded(format!("at least {min}, found {number}"));
            }
            if let Some(max) = bound("maximum")
                && n > max
            {
                return exceeded(format!("at most {max}, found {number}"));
            }
        }
        Value::Array(items) => {
            if let Some(max) = bound("maxItems")
                && items.len() as f64 > max
            {
                return exceeded(format!("at most {max} items, found {}", items.len()));
            }
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{index}]"))?;
                }
            }
        }
        Value::Object(fields) => {
            if schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true)
            {
                return Ok(());
            }
            if let Some(max) = bound("maxProperties")
                && fields.len() as f64 > max
            {
                return exceeded(format!("at most {max} entries, found {}", fields.len()));
            }
            let properties = schema.get("properties");
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (name, field) in fields {
                let field_path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                if let Some(field_schema) = properties.and_then(|p| p.get(name)).or(additional) {
                    check(field_schema, field, &field_path)?;
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
    Ok(())
}

/// The path of the first non-finite number in a YAML document, if any.
pub fn non_finite(value: &serde_yaml::Value, path: &str) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_yaml::Value::Number(number) => number
            .as_f64()
            .filter(|n| !n.is_finite())
            .map(|_| path.to_string()),
        serde_yaml::Value::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| non_finite(item, &format!("{path}[{index}]"))),
        serde_yaml::Value::Mapping(fields) => fields.iter().find_map(|(key, field)| {
            let key = key
                .as_str()
                .map_or_else(|| format!("{key:?}"), str::to_string);
            non_finite(field, &join(&key))
        }),
        serde_yaml::Value::Tagged(tagged) => non_finite(&tagged.value, path),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 3},
                "count": {"type": "integer", "minimum": 0, "maximum": 10},
                "list": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 1}},
                "map": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string", "maxLength": 2}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        })
    }

    fn refused(value: Value) -> String {
        check(&schema(), &value, "spec").unwrap_err().to_string()
    }

    #[test]
    fn a_value_within_every_bound_passes() {
        let value = json!({"name": "äöü", "count": 10, "list": ["a", "b"], "map": {"k": "vv"},
            "free": {"anything": "x".repeat(100)}, "unknown": "x".repeat(100)});
        assert_eq!(check(&schema(), &value, "spec"), Ok(()));
    }

    #[test]
    fn each_bound_is_refused_at_its_field_path() {
        assert_eq!(
            refused(json!({"name": "abcd"})),
            "spec.name: at most 3 characters, found 4"
        );
        assert_eq!(
            refused(json!({"count": 11})),
            "spec.count: at most 10, found 11"
        );
        assert_eq!(
            refused(json!({"count": -1})),
            "spec.count: at least 0, found -1"
        );
        assert_eq!(
            refused(json!({"list": ["a", "b", "c"]})),
            "spec.list: at most 2 items, found 3"
        );
        assert_eq!(
            refused(json!({"list": ["a", "bb"]})),
            "spec.list[1]: at most 1 characters, found 2"
        );
        assert_eq!(
            refused(json!({"map": {"a": "b", "c": "d"}})),
            "spec.map: at most 1 entries, found 2"
        );
        assert_eq!(
            refused(json!({"map": {"a": "bcd"}})),
            "spec.map.a: at most 2 characters, found 3"
        );
    }

    #[test]
    fn the_first_non_finite_number_is_found_with_its_path() {
        let document: serde_yaml::Value =
            serde_yaml::from_str("a: 1.5\nb: {c: [1, .inf]}\nd: .nan").unwrap_or_default();
        assert_eq!(non_finite(&document, ""), Some("b.c[1]".to_string()));
        let finite: serde_yaml::Value = serde_yaml::from_str("a: [1, 2.5]").unwrap_or_default();
        assert_eq!(non_finite(&finite, "spec"), None);
    }

    #[test]
    fn an_integer_past_u32_is_refused_by_a_u32_maximum() {
        let schema = json!({"type": "integer", "minimum": 0, "maximum": u32::MAX});
        assert!(check(&schema, &json!(4_294_967_296_u64), "spec.parallelism").is_err());
        assert!(check(&schema, &json!(u32::MAX), "spec.parallelism").is_ok());
    }
}
