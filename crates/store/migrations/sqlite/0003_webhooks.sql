-- scimd schema, version 3: outbound events (lifecycle and warnings), webhooks and their deliveries.

-- A tenant's webhook receivers. `cursor` is the id of the last outbox row delivered to it:
-- delivery is strictly in outbox order per webhook, so one number says how far it got. A new
-- webhook starts at the tenant's newest row (it receives what happens from then on; the past is
-- readable through the feed).
CREATE TABLE webhooks (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    id         TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    cursor     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX webhooks_id ON webhooks (id);

-- Everything a tenant's consumers are told, in order: the id is the feed's cursor. Lifecycle
-- rows are written in the transaction of the change they describe.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,           -- lifecycle | warning | test
    type            TEXT NOT NULL,           -- user.created, warning.token_expiring_30d, ...
    subject_id      TEXT,
    idempotency_key TEXT NOT NULL UNIQUE,
    payload         TEXT NOT NULL,           -- the event's `data`, JSON
    created_at      TEXT NOT NULL
);
CREATE INDEX outbox_tenant ON outbox (tenant_id, id);

-- Every attempt to deliver an outbox row to a webhook (the delivery log).
CREATE TABLE deliveries (
    webhook_id      TEXT NOT NULL,
    outbox_id       INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    delivered_at    TEXT,
    last_attempt_at TEXT,
    last_status     INTEGER,
    last_error      TEXT,
    PRIMARY KEY (webhook_id, outbox_id)
);
-- Pruning the outbox cascades here: without this index every pruned row would scan the table.
CREATE INDEX deliveries_by_outbox ON deliveries (outbox_id);

-- Warnings that have fired and not yet cleared: a condition fires once, and again only after
-- its row is gone (the condition cleared).
CREATE TABLE warning_state (
    tenant_id TEXT NOT NULL,
    condition TEXT NOT NULL,
    fired_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, condition)
) WITHOUT ROWID;
