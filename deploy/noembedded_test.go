package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// miniredis is the embedded store's library, which a production build
// must not link.
const miniredis = "github.com/alicebob/miniredis/v2"

// TestProductionBuildHasNoEmbeddedStore: the image is built with -tags
// noembedded, that build does not link miniredis (the default one does,
// for `go run ./cmd/arbiter`), and it refuses an empty ARBITER_REDIS_URL
// with a message that says what to set.
func TestProductionBuildHasNoEmbeddedStore(t *testing.T) {
	docker, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(docker), "go build -tags noembedded ") {
		t.Error("deploy/Dockerfile does not build with -tags noembedded")
	}

	deps := func(tags ...string) string {
		t.Helper()
		cmd := exec.Command("go", append(append([]string{"list", "-deps"}, tags...), "./cmd/arbiter")...)
		cmd.Dir = repoRoot
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %v ./cmd/arbiter: %v", tags, err)
		}
		return string(out)
	}
	if !strings.Contains(deps(), miniredis) {
		t.Fatalf("the default build does not link %s: embedded mode is gone, or this test is stale", miniredis)
	}
	if strings.Contains(deps("-tags", "noembedded"), miniredis) {
		t.Errorf("the noembedded build links %s", miniredis)
	}

	bin := filepath.Join(t.TempDir(), "arbiter")
	build := exec.Command("go", "build", "-tags", "noembedded", "-o", bin, "./cmd/arbiter")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags noembedded: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := exec.CommandContext(ctx, bin)
	run.Env = []string{"ARBITER_ADDR=127.0.0.1:0"}
	out, err := run.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("the noembedded build with no ARBITER_REDIS_URL = %v (%v), want a refusal\n%s", err, ctx.Err(), out)
	}
	if want := "this build has no embedded store; set ARBITER_REDIS_URL"; !strings.Contains(string(out), want) {
		t.Errorf("output does not say %q:\n%s", want, out)
	}
}
