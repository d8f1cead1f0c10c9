-- Lists count every visible resource of a kind (totalResults). With `state` in the index the
-- count reads the index alone instead of looking each row up in the table: at 10 000 users
-- that lookup was 40 % of a list's time. `seq` before `state` keeps the index serving the
-- default order (by seq) of every page.
DROP INDEX resources_by_kind;
CREATE INDEX resources_by_kind ON resources (tenant_id, kind, seq, state);

-- Cursor paging (RFC 9865) walks a kind in (created, id) order from any position.
CREATE INDEX resources_by_created ON resources (tenant_id, kind, created, id);
