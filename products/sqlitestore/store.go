// Package sqlitestore is the issuing.Store of a product service: one SQLite
// file per service, through modernc.org/sqlite (pure Go, no cgo). It is the
// only package that imports the SQLite driver.
//
// The schema (see schema.sql) has one row per issued product, unique by
// customer_id; the highest arbiter fence seen per customer; the pending work
// that must survive a crash; and the history of closed products. The file
// runs in WAL mode with synchronous=FULL, a busy timeout, and write
// transactions that take the write lock at BEGIN (BEGIN IMMEDIATE), so
// concurrent writers queue instead of failing.
package sqlitestore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // registers driver "sqlite"

	"github.com/arbiter-bank/arbiter/products/issuing"
)

//go:embed schema.sql
var schema string

// Store is an issuing.Store on one SQLite file. It is safe for concurrent
// use by one process; other processes may read the file at the same time.
type Store struct {
	db *sql.DB
}

var _ issuing.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path and applies the
// schema.
func Open(ctx context.Context, path string) (*Store, error) {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite %s: schema: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping reports whether the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

const timeFormat = time.RFC3339Nano

func fmtTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeFormat, s)
	return t
}

// tx runs f in one write transaction (BEGIN IMMEDIATE).
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// highestFence returns the customer's recorded fence, 0 when none.
func highestFence(ctx context.Context, tx *sql.Tx, customerID string) (int64, error) {
	var f int64
	err := tx.QueryRowContext(ctx, `SELECT fence FROM fences WHERE customer_id = ?`, customerID).Scan(&f)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return f, err
}

func raiseFence(ctx context.Context, tx *sql.Tx, customerID string, fence int64) error {
	if fence <= 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO fences (customer_id, fence) VALUES (?, ?)
		ON CONFLICT (customer_id) DO UPDATE SET fence = max(fence, excluded.fence)`, customerID, fence)
	return err
}

// retired returns issuing.ErrClosed or issuing.ErrCompensated when check
// id is retired, nil when it is not (or unknown: "").
func retired(ctx context.Context, tx *sql.Tx, checkID string) error {
	if checkID == "" {
		return nil
	}
	var kind string
	err := tx.QueryRowContext(ctx, `SELECT 'closed' FROM closed_products WHERE check_id = ?1
		UNION ALL SELECT 'compensated' FROM compensations WHERE check_id = ?1 LIMIT 1`, checkID).Scan(&kind)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	case kind == "closed":
		return fmt.Errorf("%w: check %s", issuing.ErrClosed, checkID)
	}
	return fmt.Errorf("%w: check %s", issuing.ErrCompensated, checkID)
}

// insertPending inserts p and returns its id.
func insertPending(ctx context.Context, tx *sql.Tx, p issuing.Pending) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO pending (action, customer_id, check_id, fence, channel, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, p.Action, p.CustomerID, p.CheckID, p.Fence, p.Channel, fmtTime(p.CreatedAt))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// Begin records a pending row and raises the customer's fence; see
// issuing.Store.
func (s *Store) Begin(ctx context.Context, p issuing.Pending) (issuing.Pending, error) {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = time.Now().UTC()
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := retired(ctx, tx, p.CheckID); err != nil {
			return err
		}
		high, err := highestFence(ctx, tx, p.CustomerID)
		if err != nil {
			return err
		}
		if p.Fence > 0 && p.Fence < high {
			return fmt.Errorf("%w: fence %d < %d recorded for %s", issuing.ErrStaleFence, p.Fence, high, p.CustomerID)
		}
		if err := raiseFence(ctx, tx, p.CustomerID, p.Fence); err != nil {
			return err
		}
		p.ID, err = insertPending(ctx, tx, p)
		return err
	})
	return p, err
}

// Issue inserts the product, raises the fence and clears the pending row in
// one transaction; see issuing.Store.
func (s *Store) Issue(ctx context.Context, p issuing.Product, pendingID int64) (issuing.Product, bool, error) {
	var (
		out      = p
		replayed bool
	)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := retired(ctx, tx, p.CheckID); err != nil {
			return err
		}
		have, err := scanProduct(tx.QueryRowContext(ctx, selectProduct+` WHERE customer_id = ?`, p.CustomerID))
		switch {
		case err == nil && have.CheckID == p.CheckID:
			out, replayed = have, true
			_, err = tx.ExecContext(ctx, `DELETE FROM pending WHERE id = ?`, pendingID)
			return err
		case err == nil:
			return fmt.Errorf("%w: %s holds %s from check %s", issuing.ErrAlreadyIssued, p.CustomerID, have.Product, have.CheckID)
		case !errors.Is(err, issuing.ErrNotFound):
			return err
		}
		high, err := highestFence(ctx, tx, p.CustomerID)
		if err != nil {
			return err
		}
		if p.Fence < high {
			return fmt.Errorf("%w: fence %d < %d recorded for %s", issuing.ErrStaleFence, p.Fence, high, p.CustomerID)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO products (customer_id, product, check_id, fence, issued_at, channel)
			VALUES (?, ?, ?, ?, ?, ?)`, p.CustomerID, p.Product, p.CheckID, p.Fence, fmtTime(p.IssuedAt), p.Channel); err != nil {
			return fmt.Errorf("sqlite: insert product: %w", err)
		}
		if err := raiseFence(ctx, tx, p.CustomerID, p.Fence); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM pending WHERE id = ?`, pendingID)
		return err
	})
	if err != nil {
		return issuing.Product{}, false, err
	}
	return out, replayed, nil
}

// Compensate retires the check, swaps the pending issue row for a pending
// release, in one transaction; see issuing.Store.
func (s *Store) Compensate(ctx context.Context, c issuing.Compensation, pendingID int64) (issuing.Pending, error) {
	rel := issuing.Pending{Action: issuing.ActionRelease, CustomerID: c.CustomerID, CheckID: c.CheckID,
		Fence: c.Fence, Channel: issuing.ChannelRecovered, CreatedAt: c.At}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		switch _, err := scanProduct(tx.QueryRowContext(ctx, selectProduct+` WHERE check_id = ?`, c.CheckID)); {
		case err == nil:
			return fmt.Errorf("%w: check %s", issuing.ErrIssued, c.CheckID)
		case !errors.Is(err, issuing.ErrNotFound):
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO compensations (check_id, customer_id, product, fence, reason, compensated_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (check_id) DO NOTHING`,
			c.CheckID, c.CustomerID, c.Product, c.Fence, c.Reason, fmtTime(c.At)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending WHERE id = ?`, pendingID); err != nil {
			return err
		}
		var err error
		rel.ID, err = insertPending(ctx, tx, rel)
		return err
	})
	return rel, err
}

// Done deletes a pending row.
func (s *Store) Done(ctx context.Context, pendingID int64) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM pending WHERE id = ?`, pendingID)
	return err
}

// Pendings returns every pending row, oldest first.
func (s *Store) Pendings(ctx context.Context) ([]issuing.Pending, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, action, customer_id, check_id, fence, channel, created_at FROM pending ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []issuing.Pending
	for rows.Next() {
		var (
			p  issuing.Pending
			at string
		)
		if err := rows.Scan(&p.ID, &p.Action, &p.CustomerID, &p.CheckID, &p.Fence, &p.Channel, &at); err != nil {
			return nil, err
		}
		p.CreatedAt = parseTime(at)
		out = append(out, p)
	}
	return out, rows.Err()
}

const selectProduct = `SELECT customer_id, product, check_id, fence, issued_at, channel FROM products`

type scanner interface{ Scan(...any) error }

func scanProduct(r scanner) (issuing.Product, error) {
	var (
		p  issuing.Product
		at string
	)
	err := r.Scan(&p.CustomerID, &p.Product, &p.CheckID, &p.Fence, &at, &p.Channel)
	if errors.Is(err, sql.ErrNoRows) {
		return p, issuing.ErrNotFound
	}
	p.IssuedAt = parseTime(at)
	return p, err
}

// Product returns the customer's product, or issuing.ErrNotFound.
func (s *Store) Product(ctx context.Context, customerID string) (issuing.Product, error) {
	return scanProduct(s.db.QueryRowContext(ctx, selectProduct+` WHERE customer_id = ?`, customerID))
}

// ProductByCheck returns the product issued from a check, or
// issuing.ErrNotFound.
func (s *Store) ProductByCheck(ctx context.Context, checkID string) (issuing.Product, error) {
	return scanProduct(s.db.QueryRowContext(ctx, selectProduct+` WHERE check_id = ?`, checkID))
}

// CloseProduct moves the customer's product to closed_products and records a
// pending release, in one transaction.
func (s *Store) CloseProduct(ctx context.Context, customerID string, at time.Time) (issuing.Product, issuing.Pending, error) {
	var (
		p  issuing.Product
		pp = issuing.Pending{Action: issuing.ActionRelease, CustomerID: customerID, CreatedAt: at}
	)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if p, err = scanProduct(tx.QueryRowContext(ctx, selectProduct+` WHERE customer_id = ?`, customerID)); err != nil {
			return err
		}
		pp.CheckID, pp.Fence = p.CheckID, p.Fence
		if _, err := tx.ExecContext(ctx, `INSERT INTO closed_products (customer_id, product, check_id, fence, issued_at, channel, closed_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, p.CustomerID, p.Product, p.CheckID, p.Fence, fmtTime(p.IssuedAt), p.Channel, fmtTime(at)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM products WHERE customer_id = ?`, customerID); err != nil {
			return err
		}
		pp.Channel = p.Channel
		pp.ID, err = insertPending(ctx, tx, pp)
		return err
	})
	return p, pp, err
}

// Holdings implements issuing.Store: the page and its proof in one read
// transaction (a WAL snapshot), so writers between pages never make a page
// differ from its own proof. The proof is counted by a range query of its
// own, not from the page's rows.
func (s *Store) Holdings(ctx context.Context, after string, limit int) (issuing.Holdings, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return issuing.Holdings{}, fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	page := issuing.Holdings{Products: []issuing.Product{}}
	rows, err := tx.QueryContext(ctx, selectProduct+` WHERE customer_id > ? ORDER BY customer_id LIMIT ?`, after, limit)
	if err != nil {
		return issuing.Holdings{}, err
	}
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			rows.Close()
			return issuing.Holdings{}, err
		}
		page.Products = append(page.Products, p)
	}
	if err := rows.Err(); err != nil {
		return issuing.Holdings{}, err
	}
	if n := len(page.Products); n == limit {
		page.Next = page.Products[n-1].CustomerID
	}
	page.Proof, err = proofOf(ctx, tx, after, page.Next)
	return page, err
}

// proofOf counts and digests the customers in (after, next], or after
// after when next is "" (docs/reconciliation.md, "The completeness proof").
func proofOf(ctx context.Context, tx *sql.Tx, after, next string) (issuing.HoldingsProof, error) {
	rows, err := tx.QueryContext(ctx, `SELECT customer_id FROM products
		WHERE customer_id > ? AND (? = '' OR customer_id <= ?) ORDER BY customer_id`, after, next, next)
	if err != nil {
		return issuing.HoldingsProof{}, err
	}
	defer rows.Close()
	var p issuing.HoldingsProof
	h, last := sha256.New(), ""
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return issuing.HoldingsProof{}, err
		}
		if p.Holdings++; p.Holdings == 1 || c != last {
			h.Write([]byte(c + "\n"))
			p.Customers++
		}
		last = c
	}
	p.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return p, rows.Err()
}
