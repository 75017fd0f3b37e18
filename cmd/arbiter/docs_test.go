package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

// TestConfigurationDocListsEverySetting keeps docs/configuration.md's table
// complete: every flag and environment variable arbiter reads appears there,
// in code, as `-flag` and `ENV`.
func TestConfigurationDocListsEverySetting(t *testing.T) {
	raw, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	var c config
	for _, v := range flags(&c, func(string) string { return "" }, io.Discard).Vars() {
		if !strings.Contains(doc, "`-"+v.Flag+"`") || !strings.Contains(doc, "`"+v.Env+"`") {
			t.Errorf("docs/configuration.md does not list -%s / %s", v.Flag, v.Env)
		}
	}
}
