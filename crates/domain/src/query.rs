//! A list query after parsing: what the store runs.

use scim_proto::{AttrPath, Filter};
use time::OffsetDateTime;

use crate::resources::StoredResource;

/// Filter, order and page of a list or search request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Only resources matching this, if given.
    pub filter: Option<Filter>,
    /// The attribute to order by, if any (else creation order).
    pub sort_by: Option<AttrPath>,
    /// Descending instead of ascending.
    pub descending: bool,
    /// 1-based index of the first result.
    pub start_index: u64,
    /// Page size; 0 asks only for the total.
    pub count: u64,
    /// Cursor paging (RFC 9865) instead of `start_index`: `Some` pages in `(created, id)` order
    /// from the start or after a position; `None` pages by `start_index` in the asked order.
    pub cursor: Option<CursorPage>,
}

impl ListQuery {
    /// How many matching rows come before the page: none under cursor paging (the position is
    /// a condition), `startIndex - 1` otherwise.
    pub fn offset(&self) -> u64 {
        if self.cursor.is_some() { 0 } else { self.start_index.saturating_sub(1) }
    }

    /// How many rows a store reads for the page: one more than `count` under cursor paging,
    /// whose presence decides `nextCursor` (see [`Page::of`]).
    pub fn rows_to_read(&self) -> u64 {
        if self.cursor.is_some() { self.count.saturating_add(1) } else { self.count }
    }
}

/// Which cursor page a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorPage {
    /// The first page.
    First,
    /// The page after this position.
    After(CursorPosition),
}

/// A place in the `(meta.created, id)` order of cursor paging. Both are the tenant's own public
/// values, so a cursor tells nothing about other tenants, and it stays valid whatever is created
/// or deleted meanwhile (paging never expires).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorPosition {
    /// `meta.created` of the last resource of the page before.
    pub created: OffsetDateTime,
    /// Its id.
    pub id: String,
}

impl CursorPosition {
    /// The position of a resource.
    pub fn of(res: &StoredResource) -> Self {
        CursorPosition { created: res.created, id: res.id.clone() }
    }

    /// The opaque `nextCursor` text: hex of `<created as Unix microseconds>.<id>`.
    pub fn encode(&self) -> String {
        let micros = self.created.unix_timestamp_nanos() / 1000;
        hex::encode(format!("{micros}.{}", self.id))
    }

    /// Reads a cursor [`Self::encode`] made; `None` for anything else.
    pub fn decode(cursor: &str) -> Option<Self> {
        let text = String::from_utf8(hex::decode(cursor).ok()?).ok()?;
        let (micros, id) = text.split_once('.')?;
        let created =
            OffsetDateTime::from_unix_timestamp_nanos(micros.parse::<i128>().ok()?.checked_mul(1000)?).ok()?;
        (!id.is_empty()).then(|| CursorPosition { created, id: id.to_owned() })
    }
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page {
    /// How many resources match in all.
    pub total: u64,
    /// The resources of this page, in order.
    pub resources: Vec<StoredResource>,
    /// Under cursor paging, where the next page starts; `None` on the last page.
    pub next: Option<CursorPosition>,
}

impl Page {
    /// A page of index paging.
    pub fn indexed(total: u64, resources: Vec<StoredResource>) -> Self {
        Page { total, resources, next: None }
    }

    /// The page of `query` from the [`ListQuery::rows_to_read`] resources a store read in its
    /// order: under cursor paging the extra one only tells that there is a next page.
    pub fn of(query: &ListQuery, total: u64, mut resources: Vec<StoredResource>) -> Self {
        if query.cursor.is_none() {
            return Page::indexed(total, resources);
        }
        let count = usize::try_from(query.count).unwrap_or(usize::MAX);
        let more = resources.len() > count;
        resources.truncate(count);
        let next = if more { resources.last().map(CursorPosition::of) } else { None };
        Page { total, resources, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_765_000_000_123_456_000).unwrap();
        let position = CursorPosition { created: at, id: "2c1d5e6f-0000-4000-8000-000000000001".into() };
        let text = position.encode();
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
        assert_eq!(CursorPosition::decode(&text), Some(position));
        for bad in [
            "",
            "zz",
            "616263",
            &hex::encode("12."),
            &hex::encode("x.id"),
            &hex::encode("99999999999999999999999999.a"),
        ] {
            assert_eq!(CursorPosition::decode(bad), None, "{bad}");
        }
    }
}
