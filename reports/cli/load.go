package cli

import (
	"fmt"
	"io"
)

// writeLoad renders a load result.
func writeLoad(data []byte, path string, out Outputs) error {
	return fmt.Errorf("load reports: not written yet for %s", path)
}

// compareLoad renders two load results side by side.
func compareLoad(args []string, htmlPath, markdownPath string, stdout io.Writer) error {
	return fmt.Errorf("load comparison: not written yet")
}
