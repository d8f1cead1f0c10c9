-- scimd schema, version 2: provisioning rules and the provisioning log.

-- Storage regions: cloud-wide, managed by the operator.
CREATE TABLE regions (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL UNIQUE,
    health                 TEXT NOT NULL,
    health_since           TEXT NOT NULL,
    probe_url              TEXT,
    probe_interval_seconds INTEGER,
    last_probe_at          TEXT,
    last_probe_result      TEXT
);

-- A tenant restricted to some regions has rows here; a tenant with none may use every region.
CREATE TABLE tenant_regions (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    region_id TEXT NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, region_id)
) WITHOUT ROWID;

-- A tenant's provisioning settings, as JSON (see TenantSettings).
ALTER TABLE tenants ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';

CREATE TABLE profiles (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    max_users    INTEGER NOT NULL,
    -- Seats taken: active users whose profile this is, kept in the transaction that changes them.
    active_users INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE mappings (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    priority   INTEGER NOT NULL,
    filter     TEXT,
    profile_id TEXT NOT NULL,
    region_id  TEXT NOT NULL REFERENCES regions (id),
    enabled    INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, profile_id) REFERENCES profiles (tenant_id, id)
);
CREATE INDEX mappings_by_priority ON mappings (tenant_id, priority, created_at);

-- Cloud-wide email uniqueness: one claim per normalised email, across all tenants.
CREATE TABLE email_claims (
    email      TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    claimed_at TEXT NOT NULL
);
CREATE INDEX email_claims_by_user ON email_claims (tenant_id, user_id);

-- A user's provisioning state beside its SCIM document (NULL for groups).
ALTER TABLE resources ADD COLUMN state TEXT;
ALTER TABLE resources ADD COLUMN state_since TEXT;
ALTER TABLE resources ADD COLUMN profile_id TEXT;
ALTER TABLE resources ADD COLUMN region_id TEXT;
ALTER TABLE resources ADD COLUMN pending_cause TEXT;
ALTER TABLE resources ADD COLUMN preserved_by TEXT;
ALTER TABLE resources ADD COLUMN managed_by TEXT;
ALTER TABLE resources ADD COLUMN claimed_email TEXT;
CREATE INDEX resources_pending ON resources (tenant_id, state_since, seq) WHERE state = 'pending';
CREATE INDEX resources_by_profile ON resources (tenant_id, profile_id, state);

-- The provisioning log: one row per SCIM request.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    tenant_id   TEXT,
    token_id    TEXT,
    request_id  TEXT NOT NULL,
    idp         TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    operation   TEXT NOT NULL,
    subject     TEXT,
    -- Other identifiers of the subject, lower case, space-separated and space-enclosed.
    mentions    TEXT,
    outcome     TEXT NOT NULL,
    cause       TEXT NOT NULL,
    status      INTEGER NOT NULL,
    detail      TEXT,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant_id, id);
CREATE INDEX events_by_tenant_cause ON events (tenant_id, cause, id);
CREATE INDEX events_by_at ON events (at);
