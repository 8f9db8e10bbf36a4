package specs

import (
	"fmt"
	"slices"
	"sync"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/conformance/result"
)

// store holds what the specs of one run recorded. It is package-level
// because Ginkgo specs are package-level, and Reset clears it per run.
var store = struct {
	sync.Mutex
	outcomes map[string]result.Outcome
	// specIDs are the clause IDs that have a spec, in tree order. The tree
	// is built once per process, so Reset keeps them.
	specIDs []string
	// specLabels are the Ginkgo labels of each spec, by clause ID.
	specLabels map[string][]string
	// unknownIDs are IDs that a spec names but the catalogue lacks.
	unknownIDs []string
	// baselines are the baseline sessions of the run, by listener.
	baselines map[listenerKind]*baselineState
	// idle is the run's idle-session observation, nil until a timeout
	// check makes it.
	idle *idleResult
	// cutShort are the clause IDs whose verdict was recorded after the
	// check's context ended while the run's context had not.
	cutShort map[string]bool
}{outcomes: map[string]result.Outcome{}, specLabels: map[string][]string{}, baselines: map[listenerKind]*baselineState{}, cutShort: map[string]bool{}}

// baselineState is the outcome of the first session with the valid client
// certificate.
type baselineState struct {
	ok       bool
	reason   string
	tls      *probe.TLSFacts
	evidence []result.Evidence
	// step and reply are the command line and the reply that ended a
	// failed baseline session, when a reply ended it. step is
	// greetingStep for the greeting.
	step  string
	reply *probe.Reply
}

// Reset clears the outcomes and the baseline session of the previous run.
func Reset() {
	store.Lock()
	defer store.Unlock()
	store.outcomes = map[string]result.Outcome{}
	store.baselines = map[listenerKind]*baselineState{}
	store.idle = nil
	store.cutShort = map[string]bool{}
}

// markCutShort notes that the verdict of id was recorded after its check's
// context ended.
func markCutShort(id string) {
	store.Lock()
	defer store.Unlock()
	store.cutShort[id] = true
}

// replaceCutShort replaces the outcome of id with the result of change
// when the verdict of id was recorded after its check's context ended. It
// reports whether it did.
func replaceCutShort(id string, change func(result.Outcome) result.Outcome) bool {
	store.Lock()
	defer store.Unlock()
	o, ok := store.outcomes[id]
	if !ok || !store.cutShort[id] {
		return false
	}
	store.outcomes[id] = change(o)
	delete(store.cutShort, id)
	return true
}

// Outcomes returns a copy of the outcomes recorded so far, by clause ID.
func Outcomes() map[string]result.Outcome {
	store.Lock()
	defer store.Unlock()
	outcomes := make(map[string]result.Outcome, len(store.outcomes))
	for id, o := range store.outcomes {
		outcomes[id] = o
	}
	return outcomes
}

// SpecIDs returns the clause IDs that have a spec. It is empty until
// Ginkgo has built the spec tree, which RunSpecs does, also in a dry run.
func SpecIDs() []string {
	store.Lock()
	defer store.Unlock()
	return slices.Clone(store.specIDs)
}

// UnknownIDs returns the IDs that a spec names but the catalogue does not
// contain. The specs of such IDs fail.
func UnknownIDs() []string {
	store.Lock()
	defer store.Unlock()
	return slices.Clone(store.unknownIDs)
}

// SpecLabels returns the Ginkgo labels of the spec of a clause ID.
func SpecLabels(id string) []string {
	store.Lock()
	defer store.Unlock()
	return slices.Clone(store.specLabels[id])
}

// Baseline returns whether the valid client certificate could open a
// session on the public listener, why not, and the TLS facts of that
// session. ran is false when no spec needed the session.
func Baseline() (ran, ok bool, reason string, tls *probe.TLSFacts) {
	store.Lock()
	defer store.Unlock()
	state := store.baselines[publicListener]
	if state == nil {
		return false, false, "", nil
	}
	return true, state.ok, state.reason, state.tls
}

// record stores the outcome of a clause unless one is stored already. The
// first outcome wins, so a spec that Ginkgo gave up on at its timeout
// cannot replace the error recorded for it when it returns later.
func record(id string, o result.Outcome) {
	store.Lock()
	_, seen := store.outcomes[id]
	if !seen {
		store.outcomes[id] = o
	}
	store.Unlock()

	if !seen {
		reportProgress(id, o.Verdict)
	}
}

func recorded(id string) (result.Outcome, bool) {
	store.Lock()
	defer store.Unlock()
	o, ok := store.outcomes[id]
	return o, ok
}

// registerSpec notes that id has a spec with labels, and returns its
// clause or an error when the catalogue does not contain id.
func registerSpec(id string, labels []string) (catalogue.Clause, error) {
	clause, ok := catalogue.ByID(id)

	store.Lock()
	defer store.Unlock()
	if !ok {
		if !slices.Contains(store.unknownIDs, id) {
			store.unknownIDs = append(store.unknownIDs, id)
		}
		return catalogue.Clause{}, fmt.Errorf("clause ID %q is not in the catalogue; use an ID from conformance/catalogue", id)
	}
	if !slices.Contains(store.specIDs, id) {
		store.specIDs = append(store.specIDs, id)
	}
	store.specLabels[id] = labels
	return clause, nil
}
