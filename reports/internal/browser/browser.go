// Package browser opens a report file in headless Chromium for tests: it
// takes a screenshot, dumps the rendered DOM and lists the network
// requests that the page made, from Chromium's net log.
package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// Timeout bounds one Chromium run.
const Timeout = 90 * time.Second

// Page is the outcome of opening a report in Chromium.
type Page struct {
	// DOM is the serialized DOM after the page's scripts ran.
	DOM string
	// Screenshot is the path of the PNG screenshot.
	Screenshot string
	// Requests are the URLs of the requests that the page started. The
	// requests of Chromium's own services, such as update checks, have the
	// initiator "not an origin" and are left out. The page's own file does
	// not appear in the net log.
	Requests []string
	// IsolatedNetwork is true when Chromium ran in a network namespace of
	// its own, where only an unconfigured loopback exists.
	IsolatedNetwork bool
}

// Find returns the Chromium command, or an error that names the package
// to install.
func Find() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", errors.New("chromium not found in PATH; install the Debian package chromium (bash .ci/deps does)")
}

// Open renders the HTML file at path in headless Chromium with a window
// of width by height pixels and writes the screenshot and the net log
// into dir. The path may end in a URL fragment, such as "#clause-x",
// which the page's scripts see in location.hash.
//
// Chromium runs in a new network namespace (unshare -n) when the system
// allows it, so that neither the page nor Chromium's background services
// can reach any host. It also gets a proxy on a closed loopback port and
// a host resolver that resolves nothing, for systems without namespaces.
func Open(ctx context.Context, chromium, path, dir string, width, height int) (*Page, error) {
	absolute, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open %s in Chromium: %w", path, err)
	}
	page := &Page{Screenshot: filepath.Join(dir, "screenshot.png")}
	netLog := filepath.Join(dir, "netlog.json")

	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()

	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
		"--no-first-run", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-default-apps", "--no-pings",
		"--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
		"--log-net-log=" + netLog,
		fmt.Sprintf("--window-size=%d,%d", width, height),
		"--virtual-time-budget=5000",
	}
	url := "file://" + absolute

	if _, err := run(ctx, chromium, args, "--screenshot="+page.Screenshot, url); err != nil {
		return nil, err
	}
	dom, err := run(ctx, chromium, args, "--dump-dom", url)
	if err != nil {
		return nil, err
	}
	page.DOM = string(dom)
	page.IsolatedNetwork = canUnshare()

	page.Requests, err = pageRequests(netLog)
	if err != nil {
		return nil, err
	}
	return page, nil
}

// PrintPages prints the HTML file at path to PDF in headless Chromium and
// returns the number of pages, counted from the PDF's page objects.
func PrintPages(ctx context.Context, chromium, path, dir string) (int, error) {
	absolute, err := filepath.Abs(path)
	if err != nil {
		return 0, fmt.Errorf("print %s in Chromium: %w", path, err)
	}
	pdf := filepath.Join(dir, "print.pdf")

	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()

	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
		"--no-first-run", "--disable-background-networking", "--disable-component-update",
		"--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
		"--no-pdf-header-footer",
	}
	if _, err := run(ctx, chromium, args, "--print-to-pdf="+pdf, "file://"+absolute); err != nil {
		return 0, err
	}
	data, err := os.ReadFile(pdf)
	if err != nil {
		return 0, fmt.Errorf("read the printed PDF: %w", err)
	}
	return len(pdfPage.FindAll(data, -1)), nil
}

// pdfPage matches the type of a page object, and not of the page tree
// ("/Type /Pages").
var pdfPage = regexp.MustCompile(`/Type\s*/Page[^s]`)

// run runs Chromium once, in a new network namespace when possible, and
// returns its stdout.
func run(ctx context.Context, chromium string, args []string, extra ...string) ([]byte, error) {
	all := append(append([]string{}, args...), extra...)
	var cmd *exec.Cmd
	if canUnshare() {
		cmd = exec.CommandContext(ctx, "unshare", append([]string{"-n", chromium}, all...)...)
	} else {
		cmd = exec.CommandContext(ctx, chromium, all...)
	}
	cmd.Env = append(os.Environ(), "HOME="+os.TempDir())
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("chromium %v: %w; stderr: %s", extra, err, stderr.String())
	}
	return out, nil
}

// canUnshare reports whether this process may create a network
// namespace, which needs root or unprivileged user namespaces.
func canUnshare() bool {
	if _, err := exec.LookPath("unshare"); err != nil {
		return false
	}
	return exec.Command("unshare", "-n", "true").Run() == nil
}

// pageRequests returns the URLs of the requests in a Chromium net log
// that a page started.
func pageRequests(netLog string) ([]string, error) {
	data, err := os.ReadFile(netLog)
	if err != nil {
		return nil, fmt.Errorf("read Chromium net log: %w", err)
	}
	var log struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int `json:"type"`
			Params struct {
				URL       string `json:"url"`
				Initiator string `json:"initiator"`
			} `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(data, &log); err != nil {
		return nil, fmt.Errorf("parse Chromium net log %s: %w", netLog, err)
	}
	start, ok := log.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	if !ok {
		return nil, fmt.Errorf("Chromium net log %s has no URL_REQUEST_START_JOB event type", netLog)
	}

	var urls []string
	for _, event := range log.Events {
		if event.Type == start && event.Params.URL != "" && event.Params.Initiator != "not an origin" {
			urls = append(urls, event.Params.URL)
		}
	}
	return urls, nil
}

// limitedBuffer keeps the first 64 KiB written to it.
type limitedBuffer struct {
	data []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	room := 64<<10 - len(b.data)
	b.data = append(b.data, p[:min(room, len(p))]...)
	return len(p), nil
}

func (b *limitedBuffer) String() string { return string(b.data) }
