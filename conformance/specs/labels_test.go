package specs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/amtp-toolkit/amtp/conformance/catalogue"
)

// TestSpecLabelsNameCatalogueClauses builds the spec tree in a Ginkgo dry
// run and reads the labels of every spec from Ginkgo's JSON report. Each
// spec must name exactly one clause ID, the ID must be in the catalogue,
// and the section and level labels must match the catalogue.
// This binary has no other Ginkgo specs, so the dry run finds the
// conformance specs alone.
func TestSpecLabelsNameCatalogueClauses(t *testing.T) {
	reportPath := filepath.Join(t.TempDir(), "report.json")
	suiteConfig := types.NewDefaultSuiteConfig()
	suiteConfig.DryRun = true
	reporterConfig := types.NewDefaultReporterConfig()
	reporterConfig.JSONReport = reportPath
	reporterConfig.Succinct = true
	reporterConfig.NoColor = true

	Register()
	ginkgo.RunSpecs(t, SuiteDescription, suiteConfig, reporterConfig)

	data, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatalf("read the Ginkgo JSON report: %v", err)
	}
	var reports []types.Report
	if err := json.Unmarshal(data, &reports); err != nil {
		t.Fatalf("parse the Ginkgo JSON report: %v", err)
	}
	if len(reports) != 1 {
		t.Fatalf("the JSON report has %d suites, expected 1", len(reports))
	}

	seen := map[string]bool{}
	specCount := 0
	for _, spec := range reports[0].SpecReports {
		if spec.LeafNodeType != types.NodeTypeIt {
			continue
		}
		specCount++
		var ids []string
		labels := map[string]bool{}
		for _, label := range spec.Labels() {
			labels[label] = true
			if !strings.Contains(label, ":") {
				ids = append(ids, label)
			}
		}
		if len(ids) != 1 {
			t.Errorf("spec %q has the clause ID labels %v, expected exactly one", spec.LeafNodeText, ids)
			continue
		}
		id := ids[0]
		clause, ok := catalogue.ByID(id)
		if !ok {
			t.Errorf("spec %q names the clause ID %q, which is not in the catalogue", spec.LeafNodeText, id)
			continue
		}
		if seen[id] {
			t.Errorf("clause %s has more than one spec", id)
		}
		seen[id] = true
		if !labels[SectionLabel(clause)] {
			t.Errorf("spec of %s lacks the label %s", id, SectionLabel(clause))
		}
		if !labels[LevelLabel(clause.Level)] {
			t.Errorf("spec of %s lacks the label %s", id, LevelLabel(clause.Level))
		}
		if !strings.HasPrefix(spec.LeafNodeText, id+": ") {
			t.Errorf("spec title %q does not start with its clause ID %s", spec.LeafNodeText, id)
		}
		if clause.Role != catalogue.RoleServer && clause.Role != catalogue.RoleClient {
			t.Errorf("spec of %s checks a clause of the role %q; the suite observes server MTAs and, at its sinks, client MTAs only", id, clause.Role)
		}
		if !clause.Testable() {
			t.Errorf("spec of %s checks a clause that the catalogue marks untestable", id)
		}
	}
	if specCount == 0 {
		t.Fatal("the dry run found no specs")
	}
	if unknown := UnknownIDs(); len(unknown) > 0 {
		t.Errorf("specs name IDs missing from the catalogue: %v", unknown)
	}
	if got := len(SpecIDs()); got != specCount {
		t.Errorf("SpecIDs has %d IDs, but the tree has %d specs", got, specCount)
	}
}

// TestRegisterSpecRejectsUnknownID checks the guard that makes a spec with
// a made-up ID fail.
func TestRegisterSpecRejectsUnknownID(t *testing.T) {
	_, err := registerSpec("9.9-made-up-clause", nil)
	if err == nil {
		t.Fatal("registerSpec accepted an ID that is not in the catalogue")
	}
	if !strings.Contains(err.Error(), "9.9-made-up-clause") {
		t.Errorf("error %q does not name the ID", err)
	}
	found := false
	for _, id := range UnknownIDs() {
		found = found || id == "9.9-made-up-clause"
	}
	if !found {
		t.Errorf("UnknownIDs() = %v, expected it to contain the made-up ID", UnknownIDs())
	}
}
