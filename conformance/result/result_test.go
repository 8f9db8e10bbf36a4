package result_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/probe"
	"github.com/amtp-toolkit/amtp/conformance/result"
)

// sample returns a small result with one clause per interesting verdict.
func sample() *result.Result {
	transcript := probe.NewTranscript(0, 0)
	transcript.Note("TCP connect to 127.0.0.1:4025")
	clauses := []result.Clause{
		{ID: "4.4.1-helo-rejected", Section: "4.4.1", Source: "draft-weinman-amtp-03", Level: "MUST", Role: "server MTA",
			Outcome: result.Outcome{Verdict: result.Fail, Reason: "HELO got 250", Transcript: []result.Evidence{
				{Label: "HELO after the greeting", Record: transcript, Rendered: transcript.Render()},
			}},
			Rerun: "amtpkit conform --target 127.0.0.1:4025 --pki pki --focus 4.4.1-helo-rejected"},
		{ID: "4.4.2-mpc-declaration-line", Section: "4.4.2", Source: "draft-weinman-amtp-03", Level: "MAY", Role: "server MTA",
			Outcome: result.Outcome{Verdict: result.Info, Reason: "no MPC line"}},
		{ID: "rfc5321-4.2.4-unknown-command-500", Section: "4.2.4", Source: "RFC 5321", Level: "SHOULD", Role: "server MTA",
			Outcome: result.Outcome{Verdict: result.Warn, Reason: "XYZZY got 502"}},
		{ID: "4.2-tls-required", Section: "4.2", Source: "draft-weinman-amtp-03", Level: "REQUIRED", Role: "server MTA",
			Outcome: result.Outcome{Verdict: result.Error, Reason: "could not connect"}},
		{ID: "6.1-mua-mpc-assignment", Section: "6.1", Source: "draft-weinman-amtp-03", Level: "MUST", Role: "MUA",
			Outcome: result.Outcome{Verdict: result.Untestable, Reason: "binds the MUA"}},
	}
	return &result.Result{
		SchemaVersion: result.SchemaVersion,
		Environment: result.Environment{
			SuiteVersion: "test",
			Draft:        result.Draft,
			Target:       "127.0.0.1:4025",
			Start:        time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			End:          time.Date(2026, 1, 2, 3, 4, 9, 0, time.UTC),
		},
		Summary: result.Summarize(clauses),
		Clauses: clauses,
	}
}

var _ = Describe("Summarize", func() {
	It("counts per verdict, level and section", func() {
		s := sample().Summary
		Expect(s.Clauses).To(Equal(5))
		Expect(s.Verdicts).To(Equal(result.Counts{result.Fail: 1, result.Info: 1, result.Warn: 1, result.Error: 1, result.Untestable: 1}))
		Expect(s.ByLevel["MUST"]).To(Equal(result.Counts{result.Fail: 1, result.Untestable: 1}))
		Expect(s.BySection["RFC 5321 4.2.4"]).To(Equal(result.Counts{result.Warn: 1}))
		Expect(s.BySection["4.4.1"]).To(Equal(result.Counts{result.Fail: 1}))
		Expect(s.Failed).To(Equal([]string{"4.4.1-helo-rejected"}))
		Expect(s.Errors).To(Equal([]string{"4.2-tls-required"}))
	})
})

var _ = Describe("Count", func() {
	It("uses the singular for one", func() {
		Expect(result.Count(1, "clause", "clauses")).To(Equal("1 clause"))
	})

	It("uses the plural otherwise", func() {
		Expect(result.Count(0, "clause", "clauses")).To(Equal("0 clauses"))
		Expect(result.Count(53, "reply", "replies")).To(Equal("53 replies"))
	})
})

var _ = Describe("MustFailures", func() {
	It("lists failed clauses of absolute levels only", func() {
		r := sample()
		failed := r.MustFailures()
		Expect(failed).To(HaveLen(1))
		Expect(failed[0].ID).To(Equal("4.4.1-helo-rejected"))
	})

	It("ignores a fail verdict on a SHOULD clause", func() {
		r := sample()
		r.Clauses[0].Level = "SHOULD"
		Expect(r.MustFailures()).To(BeEmpty())
	})

	It("lists harness errors", func() {
		errs := sample().HarnessErrors()
		Expect(errs).To(HaveLen(1))
		Expect(errs[0].ID).To(Equal("4.2-tls-required"))
	})
})

var _ = Describe("Write and Load", func() {
	var path string

	BeforeEach(func() {
		path = filepath.Join(GinkgoT().TempDir(), "result.json")
	})

	It("round-trips a result", func() {
		r := sample()
		Expect(r.Write(path)).To(Succeed())

		loaded, err := result.Load(path)
		Expect(err).NotTo(HaveOccurred())
		Expect(loaded.SchemaVersion).To(Equal(1))
		Expect(loaded.Environment.Draft).To(Equal("draft-weinman-amtp-03"))
		Expect(loaded.Summary).To(Equal(r.Summary))
		Expect(loaded.Clauses).To(HaveLen(5))

		helo, ok := loaded.Clause("4.4.1-helo-rejected")
		Expect(ok).To(BeTrue())
		Expect(helo.Verdict).To(Equal(result.Fail))
		Expect(helo.Rerun).To(ContainSubstring("--focus 4.4.1-helo-rejected"))
		Expect(helo.Transcript).To(HaveLen(1))
		Expect(helo.Transcript[0].Record.Render()).To(ContainSubstring("TCP connect to 127.0.0.1:4025"))
	})

	It("writes the field names of the schema", func() {
		Expect(sample().Write(path)).To(Succeed())
		data, err := os.ReadFile(path)
		Expect(err).NotTo(HaveOccurred())

		var raw map[string]any
		Expect(json.Unmarshal(data, &raw)).To(Succeed())
		Expect(raw).To(HaveKeyWithValue("schema_version", BeNumerically("==", 1)))
		Expect(raw).To(HaveKey("environment"))
		Expect(raw).To(HaveKey("summary"))

		clause := raw["clauses"].([]any)[0].(map[string]any)
		for _, key := range []string{"id", "section", "level", "role", "verdict", "reason", "transcript", "rerun"} {
			Expect(clause).To(HaveKey(key))
		}
	})

	It("rejects a newer schema version", func() {
		Expect(os.WriteFile(path, []byte(`{"schema_version": 2, "clauses": []}`), 0o644)).To(Succeed())
		_, err := result.Load(path)
		Expect(err).To(MatchError(result.ErrNewerSchema))
		Expect(err.Error()).To(ContainSubstring("schema_version 2 is newer than version 1"))
	})

	It("rejects a file without schema_version", func() {
		Expect(os.WriteFile(path, []byte(`{"clauses": []}`), 0o644)).To(Succeed())
		_, err := result.Load(path)
		Expect(err).To(MatchError(ContainSubstring("schema_version is missing")))
	})

	It("rejects an unknown verdict", func() {
		Expect(os.WriteFile(path, []byte(`{"schema_version": 1, "clauses": [{"id": "x", "verdict": "maybe"}]}`), 0o644)).To(Succeed())
		_, err := result.Load(path)
		Expect(err).To(MatchError(ContainSubstring(`unknown verdict "maybe"`)))
	})

	It("rejects invalid JSON", func() {
		Expect(os.WriteFile(path, []byte(`{`), 0o644)).To(Succeed())
		_, err := result.Load(path)
		Expect(err).To(MatchError(ContainSubstring("invalid JSON")))
	})
})

var _ = Describe("Parse", func() {
	It("ignores fields it does not know", func() {
		r, err := result.Parse([]byte(`{"schema_version": 1, "added_later": true,
			"clauses": [{"id": "x", "level": "MUST", "section": "4.4.1", "verdict": "pass", "added_later": 1}],
			"summary": {"clauses": 1, "verdicts": {"pass": 1}, "by_level": {"MUST": {"pass": 1}},
				"by_section": {"4.4.1": {"pass": 1}}, "failed": [], "errors": []}}`))
		Expect(err).NotTo(HaveOccurred())
		Expect(r.Clauses).To(HaveLen(1))
		Expect(r.Clauses[0].Verdict).To(Equal(result.Pass))
	})

	It("rejects a result without clauses", func() {
		_, err := result.Parse([]byte(`{"schema_version": 1, "clauses": [], "summary": {"clauses": 0}}`))
		Expect(err).To(MatchError(ContainSubstring("the result has no clauses")))
	})

	It("rejects a summary that disagrees with the clauses", func() {
		_, err := result.Parse([]byte(`{"schema_version": 1,
			"clauses": [{"id": "x", "level": "MUST", "section": "4.4.1", "verdict": "fail"}],
			"summary": {"clauses": 1, "verdicts": {"pass": 1}, "by_level": {"MUST": {"pass": 1}},
				"by_section": {"4.4.1": {"pass": 1}}, "failed": [], "errors": []}}`))
		Expect(err).To(MatchError(ContainSubstring("the verdict count is map[pass:1] in the summary but map[fail:1] in the clauses")))
	})
})

var _ = Describe("Clause.Sentence", func() {
	It("returns the stored text", func() {
		c := result.Clause{ID: "4.4.1-helo-rejected", Text: "stored sentence"}
		Expect(c.Sentence()).To(Equal("stored sentence"))
	})

	It("falls back to the catalogue", func() {
		c := result.Clause{ID: "4.4.1-helo-rejected"}
		Expect(c.Sentence()).To(ContainSubstring("HELO"))
	})

	It("returns nothing for an unknown ID", func() {
		Expect(result.Clause{ID: "no-such-clause"}.Sentence()).To(BeEmpty())
	})
})
