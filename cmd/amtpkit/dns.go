package main

import (
	"context"
	"io"
)

// TODO: replaced by the DNS fixture command.
func runDNS(ctx context.Context, args []string, stdout io.Writer) error {
	return usageErrorf("not implemented")
}
