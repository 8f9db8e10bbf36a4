package main

import (
	"context"
	"io"
)

// TODO: replaced by the PKI fixture command.
func runPKI(ctx context.Context, args []string, stdout io.Writer) error {
	return usageErrorf("not implemented")
}
