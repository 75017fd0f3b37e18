package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/arbiter-bank/arbiter/validation"
	"github.com/arbiter-bank/arbiter/validation/reconcile"
)

// Reconciler is what the API needs of reconciliation;
// *reconcile.Reconciler is one.
type Reconciler interface {
	Start(ctx context.Context, actor validation.Actor) (reconcile.Run, error)
	Run(ctx context.Context, actor validation.Actor, id string, offset, limit int) (reconcile.Run, []reconcile.Finding, error)
	Cases(ctx context.Context, limit int) ([]validation.Case, error)
	Resolve(ctx context.Context, actor validation.Actor, customerID, note string) (validation.Case, error)
}

// reconciler returns the configured Reconciler, or an error saying none is.
func (s *Server) reconciler() (Reconciler, error) {
	if s.cfg.Reconciler == nil {
		return nil, validation.Errorf(validation.ReasonNotFound, "reconciliation is not configured")
	}
	return s.cfg.Reconciler, nil
}

type runStartedResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// handleStartReconciliation: POST /v1/reconciliations (admin) → 202.
func (s *Server) handleStartReconciliation() echo.HandlerFunc {
	return func(c echo.Context) error {
		rec, err := s.reconciler()
		if err != nil {
			return err
		}
		run, err := rec.Start(c.Request().Context(), actorOf(c))
		if err != nil {
			return err
		}
		c.Response().Header().Set(echo.HeaderLocation, "/v1/reconciliations/"+run.ID)
		return c.JSON(http.StatusAccepted, runStartedResponse{ID: run.ID, Status: string(run.Status)})
	}
}

type sourceView struct {
	Product   string `json:"product"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Holdings  int    `json:"holdings"`
	Customers int    `json:"customers"`
	Proven    bool   `json:"proven"` // every page matched its completeness proof
	Error     string `json:"error"`  // "" when none
}

type findingView struct {
	Kind       string   `json:"kind"`
	CustomerID string   `json:"customer_id"`
	Products   []string `json:"products"`
	Detail     string   `json:"detail"`
	Action     string   `json:"action"`
}

type runResponse struct {
	ID         string         `json:"id"`
	Status     string         `json:"status"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt *time.Time     `json:"finished_at"` // null while running
	StartedBy  string         `json:"started_by"`
	Error      string         `json:"error"` // "" when none
	Sources    []sourceView   `json:"sources"`
	Counts     map[string]int `json:"counts"`
	Findings   []findingView  `json:"findings"`
	// FindingsTotal is how many findings are stored; Next the offset of
	// the next page, absent on the last.
	FindingsTotal int  `json:"findings_total"`
	Next          *int `json:"next,omitempty"`
}

// handleGetReconciliation: GET /v1/reconciliations/{id}?offset=&limit= (admin).
func (s *Server) handleGetReconciliation() echo.HandlerFunc {
	return func(c echo.Context) error {
		rec, err := s.reconciler()
		if err != nil {
			return err
		}
		offset, err := intParam(c, "offset", 0, 0, reconcile.MaxStoredFindings)
		if err != nil {
			return err
		}
		limit, err := intParam(c, "limit", 100, 1, 1000)
		if err != nil {
			return err
		}
		run, fs, err := rec.Run(c.Request().Context(), actorOf(c), c.Param("id"), offset, limit)
		if err != nil {
			return err
		}
		resp := runResponse{ID: run.ID, Status: string(run.Status), StartedAt: run.StartedAt, FinishedAt: optTime(run.FinishedAt),
			StartedBy: run.StartedBy, Error: run.Error, Sources: []sourceView{}, Counts: map[string]int{},
			Findings: []findingView{}, FindingsTotal: run.Findings}
		for _, src := range run.Sources {
			resp.Sources = append(resp.Sources, sourceView{Product: src.Product, Name: src.Name, Status: string(src.Status),
				Holdings: src.Holdings, Customers: src.Customers, Proven: src.Proven, Error: src.Error})
		}
		for _, k := range reconcile.FindingKinds {
			resp.Counts[string(k)] = run.Counts[k]
		}
		for _, f := range fs {
			resp.Findings = append(resp.Findings, findingView{Kind: string(f.Kind), CustomerID: f.CustomerID,
				Products: f.Products, Detail: f.Detail, Action: f.Action})
		}
		if next := offset + len(fs); len(fs) == limit && next < run.Findings {
			resp.Next = &next
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, resp)
	}
}

type caseView struct {
	CustomerID string    `json:"customer_id"`
	Products   []string  `json:"products"`
	Detail     string    `json:"detail"`
	OpenedAt   time.Time `json:"opened_at"`
	RunID      string    `json:"reconciliation_id"`
}

func viewCase(k validation.Case) caseView {
	return caseView{CustomerID: k.CustomerID, Products: k.Products, Detail: k.Detail, OpenedAt: k.OpenedAt, RunID: k.RunID}
}

// handleCases: GET /v1/cases?limit= (checker): the open cases, oldest first.
func (s *Server) handleCases() echo.HandlerFunc {
	return func(c echo.Context) error {
		rec, err := s.reconciler()
		if err != nil {
			return err
		}
		limit, err := intParam(c, "limit", 100, 1, 1000)
		if err != nil {
			return err
		}
		cases, err := rec.Cases(c.Request().Context(), limit)
		if err != nil {
			return err
		}
		out := make([]caseView, 0, len(cases))
		for _, k := range cases {
			out = append(out, viewCase(k))
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, map[string]any{"cases": out})
	}
}

type resolveRequest struct {
	Note string `json:"note"`
}

type resolvedResponse struct {
	caseView
	ResolvedBy string `json:"resolved_by"`
	Note       string `json:"note"`
}

// handleResolveCase: POST /v1/cases/{customer_id}/resolution {"note"}
// (admin) → 200 the case closed; audited case_resolved.
func (s *Server) handleResolveCase() echo.HandlerFunc {
	return func(c echo.Context) error {
		rec, err := s.reconciler()
		if err != nil {
			return err
		}
		var req resolveRequest
		if err := decode(c, &req); err != nil {
			return err
		}
		actor := actorOf(c)
		k, err := rec.Resolve(c.Request().Context(), actor, c.Param("customer_id"), req.Note)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, resolvedResponse{caseView: viewCase(k), ResolvedBy: actor.ID, Note: req.Note})
	}
}

// intParam reads an optional integer query parameter within [lo, hi].
func intParam(c echo.Context, name string, def, lo, hi int) (int, error) {
	q := c.QueryParam(name)
	if q == "" {
		return def, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < lo || n > hi {
		return 0, validation.Errorf(validation.ReasonInvalidRequest, "%s must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}
