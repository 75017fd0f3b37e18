package validation

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// ReconcileConfig is the policy's reconcile: block: where the product
// systems' holdings feeds are and what a reconciliation may do. Zero values
// mean the defaults.
type ReconcileConfig struct {
	Interval time.Duration `yaml:"interval"`  // between scheduled runs; 0: only on demand
	Grace    time.Duration `yaml:"grace"`     // a grant younger than this is never an orphan; default 15m
	OnOrphan string        `yaml:"on_orphan"` // "report" (default) or "release"
	// PageSize is the limit asked of each feed per page; default 500, at
	// most MaxReconcilePageSize (what cmd/productsvc's feed accepts).
	PageSize int `yaml:"page_size"`
	// Timeout bounds each page request; default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MinShare: a feed that lists fewer customers than this share of its
	// last successful run is treated as partial; nil (absent): 0.5; 0
	// turns the check off (a feed listing no customer is still partial).
	MinShare *float64 `yaml:"min_share"`
	// ReleaseCap is the most orphan grants of one product a run may
	// release; 0: the larger of MinReleaseCap (10) and a tenth of the
	// product's grants. Above it, none is released.
	ReleaseCap int            `yaml:"release_cap"`
	Sources    []SourceConfig `yaml:"sources"`
}

// SourceConfig is one product system's holdings feed.
type SourceConfig struct {
	Product string `yaml:"product"`
	URL     string `yaml:"url"`      // GET {url}?after=&limit=
	KeyFile string `yaml:"key_file"` // the bearer key, read by cmd; empty: no Authorization
	Name    string `yaml:"name"`     // how findings name the system; default the URL's host
}

// Defaults of ReconcileConfig.
const (
	DefaultReconcileGrace    = 15 * time.Minute
	DefaultReconcilePageSize = 500
	DefaultReconcileTimeout  = 30 * time.Second
	DefaultReconcileMinShare = 0.5
	// MaxReconcilePageSize is the largest page_size: the most a feed is
	// asked per page (cmd/productsvc refuses a limit above it).
	MaxReconcilePageSize = 1000
	OnOrphanReport       = "report"
	OnOrphanRelease      = "release"
)

// WithDefaults returns the config with every zero value replaced by its default.
func (r ReconcileConfig) WithDefaults() ReconcileConfig {
	if r.Grace == 0 {
		r.Grace = DefaultReconcileGrace
	}
	if r.OnOrphan == "" {
		r.OnOrphan = OnOrphanReport
	}
	if r.PageSize == 0 {
		r.PageSize = DefaultReconcilePageSize
	}
	if r.Timeout == 0 {
		r.Timeout = DefaultReconcileTimeout
	}
	if r.MinShare == nil {
		share := DefaultReconcileMinShare
		r.MinShare = &share
	}
	r.Sources = slices.Clone(r.Sources) // the policy's own stay as written
	for i, s := range r.Sources {
		if s.Name == "" {
			if u, err := url.Parse(s.URL); err == nil {
				r.Sources[i].Name = u.Host
			}
		}
	}
	return r
}

func (r *ReconcileConfig) validate(p *Policy, lines Lines) error {
	line := lines.of("reconcile")
	switch {
	case r.Interval < 0 || r.Grace < 0 || r.Timeout < 0:
		return fmt.Errorf("line %d: reconcile: durations must not be negative", line)
	case r.OnOrphan != "" && r.OnOrphan != OnOrphanReport && r.OnOrphan != OnOrphanRelease:
		return fmt.Errorf("line %d: reconcile: on_orphan %q must be release or report", line, r.OnOrphan)
	case r.PageSize < 0 || r.PageSize > MaxReconcilePageSize:
		return fmt.Errorf("line %d: reconcile: page_size %d must be 1..%d (the most a holdings feed is asked per page; cmd/productsvc refuses more)", line, r.PageSize, MaxReconcilePageSize)
	case r.ReleaseCap < 0:
		return fmt.Errorf("line %d: reconcile: release_cap %d is negative", line, r.ReleaseCap)
	case r.MinShare != nil && (*r.MinShare < 0 || *r.MinShare > 1):
		return fmt.Errorf("line %d: reconcile: min_share %v must be within 0..1", line, *r.MinShare)
	case r.Interval > 0 && r.Interval < time.Minute:
		return fmt.Errorf("line %d: reconcile: interval %s is under a minute", line, r.Interval)
	}
	seen := map[string]bool{}
	for i, s := range r.Sources {
		if l := lines.of("reconcile", "sources", strconv.Itoa(i)); l != 0 {
			line = l
		}
		u, err := url.Parse(s.URL)
		switch {
		case s.Product == "":
			return fmt.Errorf("line %d: reconcile source: product is missing", line)
		case !p.Knows(s.Product):
			return fmt.Errorf("line %d: reconcile source: unknown product %q", line, s.Product)
		case seen[s.Product]:
			return fmt.Errorf("line %d: reconcile source: product %q has two feeds", line, s.Product)
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return fmt.Errorf("line %d: reconcile source %s: url %q must be an http(s) URL", line, s.Product, s.URL)
		}
		seen[s.Product] = true
	}
	return nil
}

// KeyInClear reports whether the source would send its bearer key
// unencrypted over the network: a key_file with an http:// URL whose host
// is not loopback (localhost, 127.0.0.0/8, ::1). Production refuses it.
func (s SourceConfig) KeyInClear() bool {
	u, err := url.Parse(s.URL)
	if s.KeyFile == "" || err != nil || u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}
