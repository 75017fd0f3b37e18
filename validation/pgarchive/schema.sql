-- arbiter's durable record in PostgreSQL (package pgarchive).
--
-- Every audit event arbiter decides reaches this archive exactly once per
-- record id, whatever the exporter retries. The archive is append-only: no
-- statement of arbiter's updates or deletes a row of arbiter_events or
-- arbiter_event_conflicts. Only the webhook queue is worked on (claimed,
-- retried, deleted once delivered).
--
-- Open applies this file at every start, under a transaction-scoped
-- advisory lock, so several instances starting at once apply it one after
-- the other; every statement is idempotent (IF NOT EXISTS). A change to
-- the schema is a new statement appended here, never an edit of one that
-- has run.

-- arbiter_events: one row per audit event (validation.Record), as the
-- deciding Redis script wrote it.
CREATE TABLE IF NOT EXISTS arbiter_events (
    -- "<customer>/<seq>" (validation.RecordID): stable across exports.
    id             text        PRIMARY KEY,
    customer_id    text        NOT NULL,
    -- The customer's sequence number: the order of its events.
    seq            bigint      NOT NULL,
    -- When the event happened (arbiter's decision time), to the millisecond.
    at             timestamptz NOT NULL,
    -- The audit event type: checked, refused, redeemed, cancelled, expired,
    -- released, imported, blocked, unblocked, otp_failed, ...
    type           text        NOT NULL,
    product        text        NOT NULL DEFAULT '',
    check_id       text        NOT NULL DEFAULT '',
    -- Who acted: a client id, or "arbiter" for expiries.
    actor          text        NOT NULL DEFAULT '',
    -- The bank agent on whose behalf the actor acted, if any.
    agent          text        NOT NULL DEFAULT '',
    -- Refusals: the first failed rule; cancellations: why. NULL when none.
    reason         text,
    -- Refusals: every failed rule, in order. NULL when none.
    reasons        text[],
    -- Blocks: the reason the admin gave.
    note           text        NOT NULL DEFAULT '',
    -- The hold's fencing token.
    fence          bigint      NOT NULL DEFAULT 0,
    -- The policy version a decision was taken under ('' when none applies).
    policy_version text        NOT NULL DEFAULT '',
    -- When this archive received the record (not when it happened).
    archived_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (customer_id, seq)
);

-- "Every decision for customer C between two dates."
CREATE INDEX IF NOT EXISTS arbiter_events_customer_at
    ON arbiter_events (customer_id, at);

-- "Every refusal (or any other type) under policy version V, by date."
CREATE INDEX IF NOT EXISTS arbiter_events_policy_type_at
    ON arbiter_events (policy_version, type, at);

-- arbiter_event_conflicts: a record that arrived with a known id but other
-- content than the archived one. Only a Redis failover that lost
-- acknowledged writes can cause one; the first content stays in
-- arbiter_events, every different later content is kept here, once, for
-- investigation. Nothing is dropped, nothing overwritten.
CREATE TABLE IF NOT EXISTS arbiter_event_conflicts (
    id             text        NOT NULL, -- the id both contents claim
    -- A digest of the conflicting content, so that exporting the same
    -- conflicting record again keeps it once.
    digest         text        NOT NULL,
    customer_id    text        NOT NULL,
    seq            bigint      NOT NULL,
    at             timestamptz NOT NULL,
    type           text        NOT NULL,
    product        text        NOT NULL DEFAULT '',
    check_id       text        NOT NULL DEFAULT '',
    actor          text        NOT NULL DEFAULT '',
    agent          text        NOT NULL DEFAULT '',
    reason         text,
    reasons        text[],
    note           text        NOT NULL DEFAULT '',
    fence          bigint      NOT NULL DEFAULT 0,
    policy_version text        NOT NULL DEFAULT '',
    -- When this content was first seen.
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, digest)
);

-- arbiter_webhook_queue: the deliveries still owed, one row per subscriber
-- and record. A row is written in the transaction that archives its
-- record, and deleted once the subscriber acknowledged it. A subscriber's
-- deliveries are made in sequence order per customer: only the row with the
-- smallest seq of its (subscriber, customer) is ever claimed.
CREATE TABLE IF NOT EXISTS arbiter_webhook_queue (
    subscriber  text        NOT NULL, -- the product service's client id
    event_id    text        NOT NULL REFERENCES arbiter_events (id),
    customer_id text        NOT NULL,
    seq         bigint      NOT NULL,
    -- Delivery attempts made (claims), successful or not.
    attempts    integer     NOT NULL DEFAULT 0,
    -- When the row may next be claimed: the event's time when queued, the
    -- end of the lease while a sender holds it, the retry time after a
    -- failure.
    next_at     timestamptz NOT NULL,
    -- Why the last attempt failed ('' before any failure).
    last_error  text        NOT NULL DEFAULT '',
    PRIMARY KEY (subscriber, event_id)
);

-- The head of each customer's queue (the smallest seq), for Claim.
CREATE INDEX IF NOT EXISTS arbiter_webhook_queue_order
    ON arbiter_webhook_queue (subscriber, customer_id, seq);

-- The due rows of a subscriber, for Claim.
CREATE INDEX IF NOT EXISTS arbiter_webhook_queue_due
    ON arbiter_webhook_queue (subscriber, next_at);

-- arbiter_records: every record, the archived ones and those kept aside
-- as conflicts (conflict true). A Redis failover that lost acknowledged
-- writes (no WAIT) can give a later decision the number of a lost one; the
-- later record is then only in arbiter_event_conflicts, so compliance's
-- queries read this view, which misses neither.
CREATE OR REPLACE VIEW arbiter_records AS
    SELECT id, customer_id, seq, at, type, product, check_id, actor, agent, reason, reasons, note, fence,
           policy_version, false AS conflict
    FROM arbiter_events
    UNION ALL
    SELECT id, customer_id, seq, at, type, product, check_id, actor, agent, reason, reasons, note, fence,
           policy_version, true AS conflict
    FROM arbiter_event_conflicts;
