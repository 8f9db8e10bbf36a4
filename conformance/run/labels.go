package run

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/onsi/ginkgo/v2/formatter"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/amtp-toolkit/amtp/conformance/specs"
)

// LabelExample is a label filter that shows the syntax of --label-filter.
const LabelExample = "level:MUST && !needs:maildir"

// LabelGroup is one kind of label that --label-filter can name, with
// every label of that kind that a spec carries.
type LabelGroup struct {
	// Prefix is the part before the value, such as "level:".
	Prefix string
	Labels []string
}

// LabelGroups returns the level, section and "needs:" labels of the
// specs, sorted within each group. Besides these, each spec carries its
// clause ID as a label. The groups are empty until Ginkgo has built the
// spec tree, which Run and List do.
func LabelGroups() []LabelGroup {
	groups := []LabelGroup{
		{Prefix: specs.LevelLabelPrefix},
		{Prefix: specs.SectionLabelPrefix},
		{Prefix: specs.NeedsLabelPrefix},
	}
	for _, id := range specs.SpecIDs() {
		for _, label := range specs.SpecLabels(id) {
			for i := range groups {
				if strings.HasPrefix(label, groups[i].Prefix) && !slices.Contains(groups[i].Labels, label) {
					groups[i].Labels = append(groups[i].Labels, label)
				}
			}
		}
	}
	for i := range groups {
		slices.Sort(groups[i].Labels)
	}
	return groups
}

// checkSelection returns an error wrapping ErrInvalidOptions when filter
// selects no spec, so that a mistyped label cannot pass a run that checked
// nothing. given are the options as the user passed them, for the message.
func checkSelection(filter string, given Options) error {
	if filter == "" {
		return nil
	}
	selected, err := types.ParseLabelFilter(filter)
	if err != nil {
		return invalidf("label filter %q: %s", filter, plainFilterError(err))
	}
	for _, id := range specs.SpecIDs() {
		if selected(specs.SpecLabels(id)) {
			return nil
		}
	}

	var options []string
	for _, value := range given.Focus {
		options = append(options, "--focus "+value)
	}
	for _, value := range given.Skip {
		options = append(options, "--skip "+value)
	}
	if given.LabelFilter != "" {
		options = append(options, fmt.Sprintf("--label-filter %q", given.LabelFilter))
	}
	var valid []string
	for _, group := range LabelGroups() {
		valid = append(valid, strings.Join(group.Labels, " "))
	}
	return invalidf("the selection %s (label filter %q) leaves no clause to check on the wire; "+
		"valid labels are the clause IDs that 'amtpkit conform --list' prints and: %s",
		strings.Join(options, " "), filter, strings.Join(valid, "; "))
}

// plainFilterError returns the text of a label filter error without the
// colour codes that Ginkgo puts in it, on one line.
func plainFilterError(err error) string {
	var ginkgoErr types.GinkgoError
	if !errors.As(err, &ginkgoErr) {
		return err.Error()
	}
	plain := formatter.New(formatter.ColorModeNone)
	text := plain.F(ginkgoErr.Heading + ": " + ginkgoErr.Message)
	return strings.Join(strings.Fields(strings.ReplaceAll(text, "\n", "; ")), " ")
}
