package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"runtime"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"
)

// The branch UI: a page for branch agents, served at /branch/ from assets
// embedded in the binary (no build step, nothing fetched from elsewhere).
// The page calls the v1 API with the session cookie; see session.go.

//go:embed branch
var branchFiles embed.FS

// branchCSP lets the page load its own script, style and images and talk to
// its own origin, nothing else: no inline script, no framing, no plugins.
const branchCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// asset is one embedded file, with its ETag computed once.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// branchUI holds the branch UI's state: its assets, agents, sessions and
// sign-in throttles.
type branchUI struct {
	cfg         Config
	assets      map[string]asset
	agents      map[string]Agent
	sessions    *sessions
	perUser     *throttle
	perAddr     *throttle
	crossOrigin *http.CrossOriginProtection
	bcryptSlots chan struct{}
}

func newBranchUI(cfg Config) *branchUI {
	idle := cfg.SessionIdle
	if idle <= 0 {
		idle = DefaultSessionIdle
	}
	store := cfg.Sessions
	if store == nil {
		store = newMemorySessions()
	}
	ui := &branchUI{
		cfg:         cfg,
		assets:      loadAssets(),
		agents:      map[string]Agent{},
		sessions:    &sessions{store: store, idle: idle, now: cfg.Now},
		perUser:     &throttle{store: store, prefix: "user:", max: SignInMaxFailures, window: SignInWindow},
		perAddr:     &throttle{store: store, prefix: "addr:", max: SignInMaxFailuresPerAddress, window: SignInWindow},
		crossOrigin: http.NewCrossOriginProtection(),
		bcryptSlots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
	}
	if cfg.Clients != nil {
		for _, a := range cfg.Clients.Agents {
			if _, err := bcrypt.Cost([]byte(a.PasswordBcrypt)); err != nil {
				cfg.Logger.Warn("branch agent cannot sign in: password_bcrypt is not a bcrypt hash", "username", a.Username, "err", err)
				continue
			}
			ui.agents[a.Username] = a
		}
	}
	return ui
}

func loadAssets() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(branchFiles, "branch", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := branchFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		out[p[len("branch/"):]] = asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(err) // embedded at build time: cannot fail at run time
	}
	return out
}

// headers sets the security headers of every /branch response.
func (ui *branchUI) headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", branchCSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		h.Set("Cache-Control", "no-store") // the page shows OTPs: never cached
		return next(c)
	}
}

// handleAsset: GET /branch/ and /branch/{file}. The page itself is never
// cached; scripts and styles are revalidated by ETag on every load, so a
// new arbiter version is picked up at once.
func (ui *branchUI) handleAsset() echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("*")
		if name == "" {
			name = "index.html"
		}
		a, ok := ui.assets[name]
		if !ok {
			return echo.ErrNotFound
		}
		h := c.Response().Header()
		h.Set(echo.HeaderContentType, a.ctype)
		if name != "index.html" {
			h.Set("Cache-Control", "no-cache")
			h.Set("ETag", a.etag)
		}
		http.ServeContent(c.Response(), c.Request(), "", time.Time{}, bytes.NewReader(a.body))
		return nil
	}
}

// redirectToBranch: GET /branch → /branch/, so relative asset paths resolve.
func redirectToBranch(c echo.Context) error {
	return c.Redirect(http.StatusMovedPermanently, "/branch/")
}
