package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// k6Dir holds the k6 scripts this tool is the Go twin of.
const k6Dir = "../../deploy/k6"

// importRe matches an ES module import's source.
var importRe = regexp.MustCompile(`(?m)^\s*import\s[^;]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'`)

// k6Modules are the only modules a script may import besides ./lib.js.
var k6Modules = map[string]bool{"k6": true, "k6/http": true, "k6/metrics": true, "k6/execution": true, "./lib.js": true}

// TestK6ScriptsStayValidK6 guards what k6 cannot run: Node-only APIs, npm or
// remote modules. Each scenario script must set thresholds (so `k6 run`
// exits non-zero on a miss), an arrival-rate executor, and handleSummary.
func TestK6ScriptsStayValidK6(t *testing.T) {
	for _, name := range []string{"lib.js", "checks.js", "contention.js", "soak.js"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(k6Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			src := string(data)
			for _, bad := range []string{"require(", "process.", "module.exports", "__dirname", "Buffer.", "setTimeout(", "async ", "await ", "fetch("} {
				if strings.Contains(src, bad) {
					t.Errorf("%s uses %q, which k6 does not provide", name, bad)
				}
			}
			imports := importRe.FindAllStringSubmatch(src, -1)
			for _, m := range imports {
				mod := m[1] + m[2]
				if !k6Modules[mod] {
					t.Errorf("%s imports %q; only k6's own modules and ./lib.js are allowed", name, mod)
				}
			}
			if name == "lib.js" {
				if !strings.Contains(src, "export function summarize(") {
					t.Error("lib.js does not export summarize")
				}
				return
			}
			if got := len(imports); got == 0 {
				t.Fatalf("%s imports nothing", name)
			}
			for _, want := range []string{
				"export const options", "thresholds:", "checks: ['rate==1']", "http_req_failed",
				"'http_req_duration{name:check}'", "executor: 'constant-arrival-rate'",
				"export default function", "export function handleSummary(data)",
				"http.setResponseCallback(http.expectedStatuses(",
			} {
				if !strings.Contains(src, want) {
					t.Errorf("%s lacks %q", name, want)
				}
			}
		})
	}
}

func TestContentionScriptFailsOnViolation(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(k6Dir, "contention.js"))
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	for _, want := range []string{
		"new Counter('invariant_violations')", "invariant_violations: ['count==0']",
		"export function teardown(data)", "products.length > 1",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("contention.js lacks %q", want)
		}
	}
}
