package conform_test

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/result"
	"github.com/amtp-toolkit/amtp/reports/conform"
)

var _ = Describe("golden files", func() {
	It("keeps the JSON result", func() {
		data, err := fixture().Marshal()
		Expect(err).NotTo(HaveOccurred())
		expectGolden("result.golden.json", data)
	})

	It("keeps the JUnit XML", func() {
		var out bytes.Buffer
		Expect(conform.WriteJUnit(&out, fixture(), conform.JUnitOptions{})).To(Succeed())
		expectGolden("result.golden.xml", out.Bytes())
	})

	It("keeps the Markdown summary", func() {
		var out bytes.Buffer
		Expect(conform.WriteMarkdown(&out, fixture())).To(Succeed())
		expectGolden("result.golden.md", out.Bytes())
	})
})

// junitDoc is the part of the JUnit XML that the tests read back.
type junitDoc struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Suites   []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
			} `xml:"error"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func junitOf(r *result.Result, opts conform.JUnitOptions) (junitDoc, []byte) {
	var out bytes.Buffer
	Expect(conform.WriteJUnit(&out, r, opts)).To(Succeed())
	var doc junitDoc
	Expect(xml.Unmarshal(out.Bytes(), &doc)).To(Succeed())
	return doc, out.Bytes()
}

var _ = Describe("WriteJUnit", func() {
	It("maps each verdict to its element", func() {
		doc, _ := junitOf(fixture(), conform.JUnitOptions{})
		Expect(doc.Tests).To(Equal(8))
		Expect(doc.Failures).To(Equal(1))
		Expect(doc.Errors).To(Equal(1))

		byName := map[string]int{}
		for s, suite := range doc.Suites {
			for c, tc := range suite.Cases {
				byName[tc.Name] = s*100 + c
			}
		}
		get := func(id string) (string, string, bool, bool, bool, string) {
			i, ok := byName[id]
			Expect(ok).To(BeTrue(), "no testcase named %s", id)
			tc := doc.Suites[i/100].Cases[i%100]
			return tc.Name, tc.Classname, tc.Failure != nil, tc.Error != nil, tc.Skipped != nil, tc.SystemOut
		}

		_, classname, failed, errored, skipped, out := get("4.4.1-helo-rejected")
		Expect(classname).To(Equal("4.4.1"))
		Expect(failed).To(BeTrue())
		Expect(errored).To(BeFalse())
		Expect(skipped).To(BeFalse())
		Expect(out).To(ContainSubstring("level: MUST"))
		Expect(out).To(ContainSubstring("role: server MTA"))
		Expect(out).To(ContainSubstring("C: HELO client.example.test"))

		_, _, failed, errored, _, _ = get("4.4.3-mpc-parameter-required")
		Expect(failed).To(BeFalse())
		Expect(errored).To(BeTrue())

		_, _, failed, _, skipped, out = get("rfc5321-4.2.4-unknown-command-500")
		Expect(failed).To(BeFalse(), "a warning is no failure without WarnAsFailure")
		Expect(skipped).To(BeFalse())
		Expect(out).To(ContainSubstring("warning: XYZZY got 502"))

		for _, id := range []string{"4.5-undefined-class-rejected", "6.1-mua-mpc-assignment"} {
			_, _, failed, errored, skipped, _ = get(id)
			Expect(skipped).To(BeTrue(), id)
			Expect(failed || errored).To(BeFalse(), id)
		}

		_, classname, failed, errored, skipped, _ = get("rfc5321-4.2.4-unknown-command-500")
		Expect(classname).To(Equal("RFC 5321 4.2.4"))
		Expect(failed || errored || skipped).To(BeFalse())
	})

	It("files warnings as failures on request", func() {
		doc, _ := junitOf(fixture(), conform.JUnitOptions{WarnAsFailure: true})
		Expect(doc.Failures).To(Equal(2))
	})

	It("puts the skip reason in the message", func() {
		doc, _ := junitOf(fixture(), conform.JUnitOptions{})
		var messages []string
		for _, suite := range doc.Suites {
			for _, tc := range suite.Cases {
				if tc.Skipped != nil {
					messages = append(messages, tc.Skipped.Message)
				}
			}
		}
		Expect(messages).To(ConsistOf(
			"skip: not selected by --focus, --skip or --label-filter",
			"untestable: binds the MUA, which no wire check observes"))
	})

	It("replaces characters that XML forbids", func() {
		r := fixture()
		r.Clauses[1].Reason = "bad \x00 byte and \x1b escape ]]> end"
		_, data := junitOf(r, conform.JUnitOptions{})
		Expect(string(data)).NotTo(ContainSubstring("\x00"))
		Expect(string(data)).To(ContainSubstring(`bad \x00 byte and \x1b escape`))
	})
})

var _ = Describe("JUnit schema", func() {
	var xmllint string

	BeforeEach(func() {
		var err error
		xmllint, err = exec.LookPath("xmllint")
		Expect(err).NotTo(HaveOccurred(), "xmllint is missing; install the Debian package libxml2-utils (bash .ci/deps does)")
	})

	validate := func(schema string, doc []byte) (string, error) {
		path := filepath.Join(GinkgoT().TempDir(), "junit.xml")
		Expect(os.WriteFile(path, doc, 0o644)).To(Succeed())
		out, err := exec.Command(xmllint, "--noout", "--schema", schema, path).CombinedOutput()
		return string(out), err
	}

	It("accepts the report", func() {
		for _, opts := range []conform.JUnitOptions{{}, {WarnAsFailure: true}} {
			_, doc := junitOf(fixture(), opts)
			out, err := validate(filepath.Join("testdata", "junit-ci.xsd"), doc)
			Expect(err).NotTo(HaveOccurred(), out)
		}
	})

	It("accepts the report under AMTP_JUNIT_XSD", func() {
		schema := os.Getenv("AMTP_JUNIT_XSD")
		if schema == "" {
			Skip("set AMTP_JUNIT_XSD to another JUnit XSD, such as the Jenkins xunit plugin's junit-10.xsd, to validate against it too")
		}
		_, doc := junitOf(fixture(), conform.JUnitOptions{})
		out, err := validate(schema, doc)
		Expect(err).NotTo(HaveOccurred(), out)
	})

	It("rejects a testcase without a name", func() {
		_, doc := junitOf(fixture(), conform.JUnitOptions{})
		broken := strings.Replace(string(doc), `<testcase name="4.2-tls-required"`, `<testcase`, 1)
		Expect(broken).NotTo(Equal(string(doc)))
		out, err := validate(filepath.Join("testdata", "junit-ci.xsd"), []byte(broken))
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring("name"))
	})

	It("rejects properties on a testcase", func() {
		_, doc := junitOf(fixture(), conform.JUnitOptions{})
		broken := strings.Replace(string(doc), `<testcase name="4.2-tls-required" classname="4.2" time="0.012">`,
			`<testcase name="4.2-tls-required" classname="4.2" time="0.012"><properties><property name="level" value="MUST"/></properties>`, 1)
		Expect(broken).NotTo(Equal(string(doc)))
		_, err := validate(filepath.Join("testdata", "junit-ci.xsd"), []byte(broken))
		Expect(err).To(HaveOccurred())
	})
})
