//! Small JSON helpers shared by the protocol core and its users.

use serde_json::{Map, Value};

/// Looks up `key` in a JSON object case-insensitively (SCIM attribute names are case-insensitive).
pub fn get_ci<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}
