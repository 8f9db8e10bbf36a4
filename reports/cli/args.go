package cli

import (
	"errors"
	"flag"
	"io"
)

// parseInterspersed parses the options in args wherever they stand among
// the positional arguments, and returns the positional arguments in
// order. The flag package stops at the first positional argument, so
// "compare a.json b.json --html cmp.html" would read "--html" as a file.
// An argument "--" ends the options: everything after it is positional.
//
// NOTE: a "--" given as the value of an option, as in "--html --", also
// ends the options, because the flag package does not tell the two apart.
func parseInterspersed(flags *flag.FlagSet, args []string) ([]string, error) {
	var positional []string

	// The flag package prints an invalid option and then the whole usage.
	// Its output is discarded while it parses, so that --help prints the
	// usage once and an invalid option becomes one usage error.
	output := flags.Output()
	flags.SetOutput(io.Discard)
	defer flags.SetOutput(output)

	// Each round consumes at least one argument, so the loop ends after at
	// most len(args) rounds.
	for len(args) > 0 {
		err := flags.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			flags.SetOutput(output)
			flags.Usage()
			return nil, err
		}
		if err != nil {
			return nil, usageErrorf("%v; run '%s --help' for the options", err, flags.Name())
		}
		rest := flags.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return positional, nil
}
