package web

import (
	"os"
	"strings"
	"testing"
)

// TestAPIDocListsEveryReason: every reason of the error table, and
// internal, appears in docs/api.md as `reason`, so a new refusal cannot
// ship without its words for the people who read the handbook.
func TestAPIDocListsEveryReason(t *testing.T) {
	raw, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	if !strings.Contains(doc, "`internal`") {
		t.Error("docs/api.md does not document reason internal")
	}
	for r := range problemTypes {
		if !strings.Contains(doc, "`"+string(r)+"`") {
			t.Errorf("docs/api.md does not document reason %s", r)
		}
	}
}
