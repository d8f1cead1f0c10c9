-- scimd schema, version 1. Never edit a released migration: add a new file.
-- The tenant is the leading column of every index that serves a query.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    token_lifetime_days INTEGER NOT NULL,
    created_at          TEXT NOT NULL
);

CREATE TABLE tokens (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    prefix          TEXT NOT NULL UNIQUE,
    hash            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    revoked_at      TEXT,
    revoke_reason   TEXT,
    last_used_at    TEXT,
    last_used_agent TEXT
);
CREATE INDEX tokens_by_tenant ON tokens (tenant_id, created_at);

-- Users and Groups. The whole resource is `doc` (canonical JSON without id, meta, a Group's
-- members or a User's groups); the columns beside it are what filters and sorting use.
CREATE TABLE resources (
    seq               INTEGER PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    kind              TEXT NOT NULL,
    id                TEXT NOT NULL,
    user_name         TEXT,
    user_name_fold    TEXT,
    external_id       TEXT,
    display_name      TEXT,
    display_name_fold TEXT,
    active            INTEGER,
    created           TEXT NOT NULL,
    modified          TEXT NOT NULL,
    version           INTEGER NOT NULL,
    doc               TEXT NOT NULL
);
CREATE UNIQUE INDEX resources_by_id ON resources (tenant_id, id);
CREATE UNIQUE INDEX resources_by_user_name ON resources (tenant_id, kind, user_name_fold)
    WHERE user_name_fold IS NOT NULL;
CREATE INDEX resources_by_kind ON resources (tenant_id, kind, seq);
CREATE INDEX resources_by_external_id ON resources (tenant_id, kind, external_id);
CREATE INDEX resources_by_display_name ON resources (tenant_id, kind, display_name_fold);
CREATE INDEX resources_by_modified ON resources (tenant_id, kind, modified);

-- A User's emails, for `emails.value eq` / `emails[type eq "work"]...` filters.
CREATE TABLE resource_emails (
    tenant_id    TEXT NOT NULL,
    resource_seq INTEGER NOT NULL REFERENCES resources (seq) ON DELETE CASCADE,
    value_fold   TEXT,
    type_fold    TEXT,
    is_primary   INTEGER
);
CREATE INDEX resource_emails_by_value ON resource_emails (tenant_id, value_fold);
CREATE INDEX resource_emails_by_resource ON resource_emails (resource_seq);

-- Group membership; a User's `groups` is derived from it.
CREATE TABLE group_members (
    tenant_id   TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    member_id   TEXT NOT NULL,
    member_kind TEXT NOT NULL,
    -- The member's display name as the client sent it; NULL: derived from the member.
    display     TEXT,
    PRIMARY KEY (tenant_id, group_id, member_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES resources (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, member_id) REFERENCES resources (tenant_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX group_members_by_member ON group_members (tenant_id, member_id);
