-- Lists count every visible resource of a kind (totalResults): with `state` in the index the
-- count can be an index-only scan. `seq` before `state` keeps the index serving the default
-- order (by seq) of every page.
DROP INDEX resources_by_kind;
CREATE INDEX resources_by_kind ON resources (tenant_id, kind, seq, state);
