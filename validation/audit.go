package validation

import "slices"

// MergeAudit is a customer's audit trail as Store.Audit returns it, from
// the two lists a store keeps apart (state changes, and attempts that
// changed nothing): each sorted newest first (an event written late sorts
// into place, ties keep their order), filtered to types when any are
// given, and merged into at most limit events, a state change before an
// attempt of the same instant. Both lists are sorted in place.
func MergeAudit(state, tries []Event, limit int, types ...EventType) []Event {
	lists := [2][]Event{state, tries}
	for i := range lists {
		slices.SortStableFunc(lists[i], func(a, b Event) int { return b.At.Compare(a.At) })
		lists[i] = slices.DeleteFunc(lists[i], func(e Event) bool { return len(types) > 0 && !slices.Contains(types, e.Type) })
	}
	state, tries = lists[0], lists[1]
	events := make([]Event, 0, min(limit, len(state)+len(tries)))
	for len(events) < limit && (len(state) > 0 || len(tries) > 0) {
		if len(tries) == 0 || len(state) > 0 && !state[0].At.Before(tries[0].At) {
			events, state = append(events, state[0]), state[1:]
		} else {
			events, tries = append(events, tries[0]), tries[1:]
		}
	}
	return events
}
