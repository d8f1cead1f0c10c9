//! Small JSON helpers shared by the protocol core and its users.

use serde_json::{Map, Value};

/// Looks up `key` in a JSON object case-insensitively (SCIM attribute names are case-insensitive).
pub fn get_ci<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// The JSON text of `value` with every object's keys sorted, so that two values `==` considers
/// equal (objects compare regardless of key order) have the same text. Lets callers hash JSON
/// values, which `serde_json::Value` does not allow directly.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// Appends the canonical text of `value` (see [`canonical`]) to `out`.
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // `-0.0 == 0.0`, so they must print alike.
        Value::Number(n) if n.is_f64() && n.as_f64() == Some(0.0) => out.push_str("0.0"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
    }
}

/// Appends `s` as a JSON string literal.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_text_ignores_key_order_only() {
        let a = json!({"b": [1, {"y": null, "x": "q\"\n"}], "a": -0.0});
        let b = json!({"a": 0.0, "b": [1, {"x": "q\"\n", "y": null}]});
        assert_eq!(a, b);
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), r#"{"a":0.0,"b":[1,{"x":"q\"\u000a","y":null}]}"#);
        for (x, y) in [(json!(1), json!(1.0)), (json!("1"), json!(1)), (json!([1, 2]), json!([2, 1]))] {
            assert_ne!(x, y);
            assert_ne!(canonical(&x), canonical(&y));
        }
    }
}
