-- Lists count every visible resource of a kind (totalResults): with `state` in the index the
-- count can be an index-only scan. `seq` before `state` keeps the index serving the default
-- order (by seq) of every page.
DROP INDEX resources_by_kind;
CREATE INDEX resources_by_kind ON resources (tenant_id, kind, seq, state);

-- Cursor paging (RFC 9865) walks a kind in (created, id) order from any position; the id in
-- byte order, as the cursor compares it.
CREATE INDEX resources_by_created ON resources (tenant_id, kind, created, id COLLATE "C");
