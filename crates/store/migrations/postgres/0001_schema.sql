-- scimd schema on PostgreSQL, version 1: the same tables as SQLite's migrations 0001–0004, in
-- native types (timestamptz, boolean, bigint identity, json). Never edit a released migration:
-- add a new file. The tenant is the leading column of every index that serves a query.
--
-- Portable on purpose: no triggers, stored procedures, extensions or LISTEN-dependent state, so
-- that a PostgreSQL-compatible distributed engine can run it (see docs/scaling.md). Documents are
-- `json` (kept as sent, key order included); nothing queries inside them.

CREATE TABLE settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE tenants (
    id                  text PRIMARY KEY,
    name                text NOT NULL CONSTRAINT tenants_name_key UNIQUE,
    token_lifetime_days bigint NOT NULL,
    created_at          timestamptz NOT NULL,
    settings            json NOT NULL DEFAULT '{}'
);

CREATE TABLE tokens (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id),
    prefix          text NOT NULL CONSTRAINT tokens_prefix_key UNIQUE,
    hash            text NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoke_reason   text,
    last_used_at    timestamptz,
    last_used_agent text
);
CREATE INDEX tokens_by_tenant ON tokens (tenant_id, created_at);

CREATE TABLE regions (
    id                     text PRIMARY KEY,
    name                   text NOT NULL CONSTRAINT regions_name_key UNIQUE,
    health                 text NOT NULL,
    health_since           timestamptz NOT NULL,
    probe_url              text,
    probe_interval_seconds bigint,
    last_probe_at          timestamptz,
    last_probe_result      text
);

-- Users and Groups: the document beside the columns that filters and sorting use.
CREATE TABLE resources (
    seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenants (id),
    kind              text NOT NULL,
    id                text NOT NULL,
    user_name         text,
    user_name_fold    text,
    external_id       text,
    display_name      text,
    display_name_fold text,
    active            boolean,
    created           timestamptz NOT NULL,
    modified          timestamptz NOT NULL,
    version           bigint NOT NULL,
    doc               json NOT NULL,
    -- A user's provisioning state (NULL for groups).
    state             text,
    state_since       timestamptz,
    profile_id        text,
    region_id         text,
    pending_cause     text,
    preserved_by      text,
    managed_by        text,
    claimed_email     text,
    CONSTRAINT resources_id_key UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX resources_user_name_key ON resources (tenant_id, kind, user_name_fold)
    WHERE user_name_fold IS NOT NULL;
CREATE INDEX resources_by_kind ON resources (tenant_id, kind, seq);
CREATE INDEX resources_by_external_id ON resources (tenant_id, kind, external_id);
CREATE INDEX resources_by_display_name ON resources (tenant_id, kind, display_name_fold);
CREATE INDEX resources_by_modified ON resources (tenant_id, kind, modified);
CREATE INDEX resources_pending ON resources (tenant_id, state_since, seq) WHERE state = 'pending';
CREATE INDEX resources_by_profile ON resources (tenant_id, profile_id, state);

CREATE TABLE resource_emails (
    tenant_id    text NOT NULL,
    resource_seq bigint NOT NULL REFERENCES resources (seq) ON DELETE CASCADE,
    value_fold   text,
    type_fold    text,
    is_primary   boolean
);
CREATE INDEX resource_emails_by_value ON resource_emails (tenant_id, value_fold);
CREATE INDEX resource_emails_by_resource ON resource_emails (resource_seq);

CREATE TABLE group_members (
    tenant_id   text NOT NULL,
    group_id    text NOT NULL,
    member_id   text NOT NULL,
    member_kind text NOT NULL,
    -- The member's display name as the client sent it; NULL: derived from the member.
    display     text,
    PRIMARY KEY (tenant_id, group_id, member_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES resources (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT group_members_member_fkey
        FOREIGN KEY (tenant_id, member_id) REFERENCES resources (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_by_member ON group_members (tenant_id, member_id);

CREATE TABLE tenant_regions (
    tenant_id text NOT NULL REFERENCES tenants (id),
    region_id text NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, region_id)
);

CREATE TABLE profiles (
    tenant_id    text NOT NULL REFERENCES tenants (id),
    id           text NOT NULL,
    name         text NOT NULL,
    max_users    bigint NOT NULL,
    -- Seats taken, kept in the transaction that changes them.
    active_users bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT profiles_name_key UNIQUE (tenant_id, name)
);

CREATE TABLE mappings (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    id         text NOT NULL,
    name       text NOT NULL,
    priority   bigint NOT NULL,
    filter     text,
    profile_id text NOT NULL,
    region_id  text NOT NULL REFERENCES regions (id),
    enabled    boolean NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, profile_id) REFERENCES profiles (tenant_id, id)
);
CREATE INDEX mappings_by_priority ON mappings (tenant_id, priority, created_at);

-- Cloud-wide email uniqueness: one claim per normalised email, across all tenants.
CREATE TABLE email_claims (
    email      text PRIMARY KEY,
    tenant_id  text NOT NULL,
    user_id    text NOT NULL,
    claimed_at timestamptz NOT NULL
);
CREATE INDEX email_claims_by_user ON email_claims (tenant_id, user_id);

-- The provisioning log: one row per SCIM request.
CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    tenant_id   text,
    token_id    text,
    request_id  text NOT NULL,
    idp         text NOT NULL,
    method      text NOT NULL,
    path        text NOT NULL,
    operation   text NOT NULL,
    subject     text,
    mentions    text,
    outcome     text NOT NULL,
    cause       text NOT NULL,
    status      bigint NOT NULL,
    detail      text,
    duration_ms bigint NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant_id, id);
CREATE INDEX events_by_tenant_cause ON events (tenant_id, cause, id);
CREATE INDEX events_by_at ON events (at);

CREATE TABLE webhooks (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    id         text NOT NULL CONSTRAINT webhooks_id_key UNIQUE,
    url        text NOT NULL,
    secret     text NOT NULL,
    enabled    boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL,
    cursor     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id)
);

-- A tenant's outbox ids grow in commit order: appends take the tenant's outbox lock first (see
-- the store), so that a feed reader's cursor never skips a row committed late.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL,
    kind            text NOT NULL,
    type            text NOT NULL,
    subject_id      text,
    idempotency_key text NOT NULL CONSTRAINT outbox_idempotency_key UNIQUE,
    payload         json NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX outbox_tenant ON outbox (tenant_id, id);

CREATE TABLE deliveries (
    webhook_id      text NOT NULL,
    outbox_id       bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempts        bigint NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    delivered_at    timestamptz,
    last_attempt_at timestamptz,
    last_status     bigint,
    last_error      text,
    PRIMARY KEY (webhook_id, outbox_id)
);
CREATE INDEX deliveries_by_outbox ON deliveries (outbox_id);

CREATE TABLE warning_state (
    tenant_id text NOT NULL,
    condition text NOT NULL,
    fired_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, condition)
);

CREATE TABLE accounts (
    id              text PRIMARY KEY,
    email           text NOT NULL CONSTRAINT accounts_email_key UNIQUE,
    password_hash   text NOT NULL,
    role            text NOT NULL CHECK (role IN ('operator', 'tenant_admin')),
    tenant_id       text REFERENCES tenants (id),
    created_at      timestamptz NOT NULL,
    last_sign_in_at timestamptz,
    CHECK ((role = 'tenant_admin') = (tenant_id IS NOT NULL))
);

CREATE TABLE sessions (
    hash       text PRIMARY KEY,
    account_id text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    prefix       text NOT NULL CONSTRAINT api_keys_prefix_key UNIQUE,
    hash         text NOT NULL,
    name         text NOT NULL,
    account_id   text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_by_account ON api_keys (account_id, created_at);

CREATE TABLE audit_log (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL,
    actor     text NOT NULL,
    tenant_id text,
    action    text NOT NULL,
    target    text NOT NULL,
    before    json,
    after     json
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, id);

-- Background work that must run on one node at a time: a lease per job, renewed while it runs
-- and taken over by another node when its holder stops renewing (a node died mid-job).
CREATE TABLE job_leases (
    job        text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL
);
