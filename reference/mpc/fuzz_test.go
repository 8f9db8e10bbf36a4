package mpc_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/amtp-toolkit/amtp/reference/mpc"
)

// FuzzParse checks that Parse never panics, accepts only registry values
// and keeps the spelling of what it accepts.
func FuzzParse(f *testing.F) {
	f.Add("per/individual")
	f.Add("mpc/individual")
	f.Add("mpc/optin")
	f.Add("Com/OptIn")
	f.Add("individual/confirmed")
	f.Add("com/autoresponder")
	f.Add("*/*")
	f.Add("-per/individual")

	f.Fuzz(func(t *testing.T, s string) {
		v, err := mpc.Parse(s)
		if err != nil {
			if !errors.Is(err, mpc.ErrSyntax) && !errors.Is(err, mpc.ErrUndefined) {
				t.Fatalf("Parse(%q) error %v wraps neither ErrSyntax nor ErrUndefined", s, err)
			}
			return
		}

		if !slices.ContainsFunc(mpc.Roles, func(r string) bool { return strings.EqualFold(r, v.Role) }) {
			t.Errorf("Parse(%q) accepted role %q, which is not in Roles", s, v.Role)
		}
		if !slices.ContainsFunc(mpc.Classes, func(c string) bool { return strings.EqualFold(c, v.Class) }) {
			t.Errorf("Parse(%q) accepted class %q, which is not in Classes", s, v.Class)
		}
		if strings.EqualFold(v.Role, "mpc") && !v.IsIndividualMPC() {
			t.Errorf("Parse(%q) accepted role mpc with class %q", s, v.Class)
		}
		if v.String() != s {
			t.Errorf("Parse(%q).String() = %q, want the input unchanged", s, v.String())
		}
	})
}
