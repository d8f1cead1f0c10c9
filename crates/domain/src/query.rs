//! A list query after parsing: what the store runs.

use scim_proto::{AttrPath, Filter};

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
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page {
    /// How many resources match in all.
    pub total: u64,
    /// The resources of this page, in order.
    pub resources: Vec<StoredResource>,
}
