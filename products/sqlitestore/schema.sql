-- Products issued by this service: at most one per customer.
CREATE TABLE IF NOT EXISTS products (
  customer_id TEXT    NOT NULL PRIMARY KEY,
  product     TEXT    NOT NULL,
  check_id    TEXT    NOT NULL UNIQUE, -- arbiter's check: a retry of the same application finds it
  fence       INTEGER NOT NULL CHECK (fence > 0),
  issued_at   TEXT    NOT NULL,        -- RFC 3339, UTC
  channel     TEXT    NOT NULL
) STRICT;

-- The highest arbiter fence seen per customer; it never goes down. An
-- approval with a lower fence is stale and refused.
CREATE TABLE IF NOT EXISTS fences (
  customer_id TEXT    NOT NULL PRIMARY KEY,
  fence       INTEGER NOT NULL
) STRICT;

-- Work started at arbiter that must be finished after a crash: written
-- before the call, deleted in the transaction that completes it.
CREATE TABLE IF NOT EXISTS pending (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  action      TEXT    NOT NULL CHECK (action IN ('issue', 'release')),
  customer_id TEXT    NOT NULL,
  check_id    TEXT    NOT NULL,        -- '' when not known yet (OTP applications)
  fence       INTEGER NOT NULL,        -- 0 when not known yet
  channel     TEXT    NOT NULL,
  created_at  TEXT    NOT NULL
) STRICT;

-- Closed products, for the record.
CREATE TABLE IF NOT EXISTS closed_products (
  customer_id TEXT    NOT NULL,
  product     TEXT    NOT NULL,
  check_id    TEXT    NOT NULL,
  fence       INTEGER NOT NULL,
  issued_at   TEXT    NOT NULL,
  channel     TEXT    NOT NULL,
  closed_at   TEXT    NOT NULL
) STRICT;

-- A closed product's check is retired: an application presenting it again
-- is refused (issuing.ErrClosed), whatever arbiter answers.
CREATE INDEX IF NOT EXISTS closed_products_check ON closed_products (check_id);

-- Checks whose grant this service released because it could not issue the
-- product (a failed insert, a stale fence, another product already here):
-- retired like closed ones, so a client's retry is refused
-- (issuing.ErrCompensated) instead of issuing a product with no grant.
CREATE TABLE IF NOT EXISTS compensations (
  check_id       TEXT    NOT NULL PRIMARY KEY,
  customer_id    TEXT    NOT NULL,
  product        TEXT    NOT NULL,
  fence          INTEGER NOT NULL,
  reason         TEXT    NOT NULL,   -- issue_failed, stale_fence or already_issued
  compensated_at TEXT    NOT NULL
) STRICT;
