//! List and search parameters (RFC 7644 §3.4.2, §3.4.3): from a query string or a SearchRequest.

use serde_json::Value;

use crate::error::ScimError;
use crate::filter::{self, Filter, FilterLimits};
use crate::path::AttrPath;
use crate::schema::SEARCH_REQUEST_SCHEMA;

/// The parameters of a list or search request, syntax checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListParams {
    /// `filter`: which resources to return; `None` for all.
    pub filter: Option<Filter>,
    /// `sortBy`: the attribute to sort by; `None` for the service's default order.
    pub sort_by: Option<AttrPath>,
    /// `sortOrder=descending`; ascending otherwise.
    pub descending: bool,
    /// 1-based; values below 1 are read as 1 (RFC 7644 §3.4.2.4).
    pub start_index: u64,
    /// Whether `startIndex` was given at all (it cannot be combined with `cursor`).
    pub start_index_given: bool,
    /// `None` when the client did not ask; negative values are read as 0.
    pub count: Option<u64>,
    /// `cursor` (RFC 9865): cursor paging was asked for; empty for the first page, else the
    /// `nextCursor` of the page before, as given.
    pub cursor: Option<String>,
    /// `attributes`: the comma-separated paths to return, as given (see `resource::Projection`).
    pub attributes: Option<String>,
    /// `excludedAttributes`: the comma-separated paths to leave out, as given.
    pub excluded_attributes: Option<String>,
}

impl ListParams {
    /// Reads the parameters from decoded query-string pairs. Names are matched
    /// case-insensitively; unknown parameters are ignored (IdPs append their own flags, e.g.
    /// Entra's `aadOptscim062020`).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        filter_limits: FilterLimits,
    ) -> Result<Self, ScimError> {
        let mut params = ListParams { start_index: 1, ..Default::default() };
        for (name, value) in pairs {
            match name.to_ascii_lowercase().as_str() {
                "filter" => params.filter = Some(filter::parse_limited(value, filter_limits)?),
                "sortby" => params.sort_by = Some(parse_sort_by(value)?),
                "sortorder" => params.descending = parse_sort_order(value)?,
                "startindex" => {
                    params.start_index = parse_start_index(value)?;
                    params.start_index_given = true;
                }
                "count" => params.count = Some(parse_count(value)?),
                "cursor" => params.cursor = Some(value.to_owned()),
                "attributes" => params.attributes = Some(value.to_owned()),
                "excludedattributes" => params.excluded_attributes = Some(value.to_owned()),
                _ => {}
            }
        }
        Ok(params)
    }

    /// Reads the parameters from a `POST /.search` body (a SearchRequest message).
    pub fn from_search_request(body: &Value, filter_limits: FilterLimits) -> Result<Self, ScimError> {
        let obj = body.as_object().ok_or_else(|| {
            ScimError::invalid_syntax("a search request body must be a JSON object (a SearchRequest message)")
        })?;
        let names_schema =
            obj.iter().find(|(k, _)| k.eq_ignore_ascii_case("schemas")).and_then(|(_, v)| v.as_array()).is_some_and(
                |a| a.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(SEARCH_REQUEST_SCHEMA))),
            );
        if !names_schema {
            return Err(ScimError::invalid_syntax(format!(
                "a search request must list \"{SEARCH_REQUEST_SCHEMA}\" in \"schemas\""
            )));
        }
        let mut params = ListParams { start_index: 1, ..Default::default() };
        for (name, value) in obj {
            let key = name.to_ascii_lowercase();
            if key == "schemas" || value.is_null() {
                continue;
            }
            let text = || -> Result<String, ScimError> {
                match value {
                    Value::String(s) => Ok(s.clone()),
                    Value::Array(items) if key.ends_with("attributes") => items
                        .iter()
                        .map(|i| i.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .map(|v| v.join(","))
                        .ok_or_else(|| {
                            ScimError::invalid_value(format!("\"{name}\" must be an array of attribute paths"))
                        }),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(ScimError::invalid_value(format!("\"{name}\" has the wrong type: {value}"))),
                }
            };
            match key.as_str() {
                "filter" => params.filter = Some(filter::parse_limited(&text()?, filter_limits)?),
                "sortby" => params.sort_by = Some(parse_sort_by(&text()?)?),
                "sortorder" => params.descending = parse_sort_order(&text()?)?,
                "startindex" => {
                    params.start_index = parse_start_index(&text()?)?;
                    params.start_index_given = true;
                }
                "count" => params.count = Some(parse_count(&text()?)?),
                "cursor" => params.cursor = Some(text()?),
                "attributes" => params.attributes = Some(text()?),
                "excludedattributes" => params.excluded_attributes = Some(text()?),
                _ => {}
            }
        }
        Ok(params)
    }
}

fn parse_sort_by(value: &str) -> Result<AttrPath, ScimError> {
    AttrPath::parse(value.trim()).map_err(|e| ScimError::invalid_value(format!("sortBy: {}", e.detail)))
}

fn parse_sort_order(value: &str) -> Result<bool, ScimError> {
    match value.to_ascii_lowercase().as_str() {
        "ascending" => Ok(false),
        "descending" => Ok(true),
        _ => {
            Err(ScimError::invalid_value(format!("sortOrder must be \"ascending\" or \"descending\", not \"{value}\"")))
        }
    }
}

fn parse_integer(name: &str, value: &str) -> Result<i64, ScimError> {
    let v = value.trim();
    v.parse::<i64>().or_else(|_| {
        // Very large numbers are still numbers: saturate rather than refuse.
        if !v.is_empty() && v.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()) {
            Ok(if v.starts_with('-') { i64::MIN } else { i64::MAX })
        } else {
            Err(ScimError::invalid_value(format!("{name} must be an integer, not \"{value}\"")))
        }
    })
}

fn parse_start_index(value: &str) -> Result<u64, ScimError> {
    Ok(parse_integer("startIndex", value)?.max(1) as u64)
}

fn parse_count(value: &str) -> Result<u64, ScimError> {
    Ok(parse_integer("count", value)?.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_interpretations_of_out_of_range_values() {
        let p =
            ListParams::from_pairs([("startIndex", "0"), ("count", "-5"), ("aadOptscim062020", "")], FilterLimits::MAX)
                .unwrap();
        assert_eq!(p.start_index, 1);
        assert_eq!(p.count, Some(0));
        assert!(ListParams::from_pairs([("count", "ten")], FilterLimits::MAX).is_err());
        assert!(ListParams::from_pairs([("sortOrder", "up")], FilterLimits::MAX).is_err());
    }

    #[test]
    fn cursor_from_query_and_search_request() {
        let first = ListParams::from_pairs([("cursor", ""), ("count", "10")], FilterLimits::MAX).unwrap();
        assert_eq!(first.cursor.as_deref(), Some(""));
        assert!(!first.start_index_given);
        let body = serde_json::json!({ "schemas": [SEARCH_REQUEST_SCHEMA], "cursor": "abc", "startIndex": 3 });
        let next = ListParams::from_search_request(&body, FilterLimits::MAX).unwrap();
        assert_eq!(next.cursor.as_deref(), Some("abc"));
        assert!(next.start_index_given);
    }
}
