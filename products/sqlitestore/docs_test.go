package sqlitestore_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/arbiter-bank/arbiter/products/issuing"
	"github.com/arbiter-bank/arbiter/products/sqlitestore"
)

// TestDocLegacyInserts runs docs/reconciliation.md's sqlite3 INSERTs of products issued
// outside arbiter against the real schema, and reads them back as the
// holdings feed does: the documented example cannot drift from the schema.
func TestDocLegacyInserts(t *testing.T) {
	doc, err := os.ReadFile("../../docs/reconciliation.md")
	if err != nil {
		t.Fatal(err)
	}
	stmts := regexp.MustCompile(`(?s)sqlite3 (card|loan)\.db "(INSERT INTO products .*?)"`).FindAllStringSubmatch(string(doc), -1)
	if len(stmts) < 3 {
		t.Fatalf("docs/reconciliation.md shows %d sqlite3 INSERTs, want the three of the reconciliation walk-through", len(stmts))
	}
	ctx := context.Background()
	dir := t.TempDir()
	for _, db := range []string{"card", "loan"} {
		path := filepath.Join(dir, db+".db")
		s, err := sqlitestore.Open(ctx, path) // creates the schema
		if err != nil {
			t.Fatal(err)
		}
		conn, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range stmts {
			if m[1] != db {
				continue
			}
			if _, err := conn.Exec(strings.Join(strings.Fields(m[2]), " ")); err != nil {
				t.Errorf("docs/reconciliation.md's INSERT into %s.db fails on the real schema: %v\n%s", db, err, m[2])
			}
			n++
		}
		conn.Close()
		page, err := s.Holdings(ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		hs := page.Products
		if len(hs) != n {
			t.Errorf("%s.db holdings = %+v, want %d", db, hs, n)
		}
		for _, h := range hs {
			if h.Channel != issuing.ChannelLegacy || h.IssuedAt.IsZero() {
				t.Errorf("%s.db holding %+v: want channel legacy and its issued_at", db, h)
			}
		}
		s.Close()
	}
}
