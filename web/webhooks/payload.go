package webhooks

import (
	"encoding/json"
	"time"

	"github.com/arbiter-bank/arbiter/validation"
)

// payload is the body of every announcement. Its shape is a contract
// with the product services (products/client.WebhookEvent decodes it; the
// tests hold the two together): change neither alone.
type payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      data      `json:"data"`
}

// data is the announced record; fields after Actor are left out when
// empty.
type data struct {
	ID            string               `json:"id"`
	CustomerID    string               `json:"customer_id"`
	Seq           int64                `json:"seq"`
	Event         validation.EventType `json:"event"`
	At            time.Time            `json:"at"`
	Product       string               `json:"product"`
	CheckID       string               `json:"check_id"`
	Actor         string               `json:"actor"`
	Agent         string               `json:"agent,omitempty"`
	Reason        validation.Reason    `json:"reason,omitempty"`
	Reasons       []validation.Reason  `json:"reasons,omitempty"`
	Note          string               `json:"note,omitempty"`
	Fence         int64                `json:"fence,omitempty"`
	PolicyVersion string               `json:"policy_version,omitempty"`
}

// body encodes the announcement of r as webhook type typ. Times are UTC;
// the record's time is kept to the millisecond, as arbiter stamps events.
func body(typ string, r validation.Record) ([]byte, error) {
	at := r.At.UTC().Truncate(time.Millisecond)
	return json.Marshal(payload{Type: typ, Timestamp: r.At.UTC(), Data: data{
		ID: r.ID, CustomerID: r.Customer, Seq: r.Seq, Event: r.Type, At: at,
		Product: r.Product, CheckID: r.CheckID, Actor: r.Actor, Agent: r.Agent,
		Reason: r.Reason, Reasons: r.Reasons, Note: r.Note, Fence: r.Fence, PolicyVersion: r.PolicyVersion,
	}})
}
