package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/amtp-toolkit/amtp/reference/config"
	"github.com/amtp-toolkit/amtp/reference/dispatch"
	"github.com/amtp-toolkit/amtp/reference/message"
	"github.com/amtp-toolkit/amtp/reference/queue"
)

const queueUsage = `usage: amtpd queue COMMAND --config FILE [ARGS]

commands:
  list              list queued messages with their recipients and last errors (like mailq)
  show ID           print one message's envelope, recipient states and header section
  retry ID... | --all
                    deliver now instead of at the next scheduled attempt
  delete ID...      remove messages from the queue without delivering or bouncing them

retry and delete talk to the running amtpd through the control socket in
queue.dir; when amtpd is not running they change the spool directly.`

// runQueue implements "amtpd queue ...".
func runQueue(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, queueUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	command := args[0]
	switch command {
	case "list", "show", "retry", "delete":
	default:
		fmt.Fprintf(stderr, "amtpd queue: unknown command %q; use list, show, retry or delete\n\n%s\n", command, queueUsage)
		return exitUsage
	}

	flags := flag.NewFlagSet("amtpd queue "+command, flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", "", "path of the amtpd configuration `file` (required)")
	all := flags.Bool("all", false, "retry: every queued message")
	// Parse stops at the first argument that is not a flag, so parse again
	// after each ID to accept "show ID --config FILE" as well.
	var ids []string
	rest := args[1:]
	for {
		if err := flags.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		rest = flags.Args()
		if len(rest) == 0 {
			break
		}
		ids = append(ids, rest[0])
		rest = rest[1:]
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "amtpd queue: --config FILE is required: the spool folder is queue.dir of that configuration")
		return exitUsage
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "amtpd queue: %v\n", err)
		return exitUsage
	}
	dir := cfg.Queue.Dir

	switch {
	case command == "list" && len(ids) == 0:
		return queueList(dir, stdout, stderr)
	case command == "show" && len(ids) == 1:
		return queueShow(dir, ids[0], stdout, stderr)
	case command == "retry" && (*all != (len(ids) > 0)):
		if *all {
			return queueControl(dir, []string{"RETRY-ALL"}, stdout, stderr)
		}
		return queueControl(dir, prefixAll("RETRY ", ids), stdout, stderr)
	case command == "delete" && len(ids) > 0:
		return queueControl(dir, prefixAll("DELETE ", ids), stdout, stderr)
	}
	fmt.Fprintf(stderr, "amtpd queue: invalid arguments for %q\n\n%s\n", command, queueUsage)
	return exitUsage
}

func prefixAll(prefix string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = prefix + id
	}
	return out
}

// readSpool reads every message file of the spool without locking it, so
// it works while amtpd runs.
func readSpool(dir string) ([]*queue.Envelope, map[string]int64, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "msg"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read spool: %w", err)
	}
	var envs []*queue.Envelope
	sizes := map[string]int64{}
	for _, e := range entries {
		env, msg, err := queue.ReadFile(filepath.Join(dir, "msg", e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // delivered since the listing
		}
		if err != nil {
			return nil, nil, err
		}
		envs = append(envs, env)
		sizes[env.ID] = int64(len(msg))
	}
	sort.Slice(envs, func(i, j int) bool { return envs[i].ID < envs[j].ID })
	return envs, sizes, nil
}

// queueList prints the queue in the layout of Postfix's mailq.
func queueList(dir string, stdout, stderr io.Writer) int {
	envs, sizes, err := readSpool(dir)
	if err != nil {
		fmt.Fprintf(stderr, "amtpd queue list: %v\n", err)
		return exitFailure
	}
	if len(envs) == 0 {
		fmt.Fprintln(stdout, "Mail queue is empty")
		return exitOK
	}

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	fmt.Fprintf(w, "%-20s %8s %-24s %s\n", "-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient- (MPC)")
	var total int64
	for _, env := range envs {
		from := env.From
		if from == "" {
			from = "MAILER-DAEMON"
		}
		fmt.Fprintf(w, "%-20s %8d %-24s %s (%s)\n", env.ID, sizes[env.ID], env.ReceivedAt.Local().Format("Mon Jan _2 15:04:05"), from, env.MPC)
		for _, r := range env.Recipients {
			if r.State == queue.Delivered || r.State == queue.Failed {
				continue
			}
			if r.LastError != "" {
				fmt.Fprintf(w, "%54s(%s)\n", "", oneLine(r.LastError, 100))
			}
			fmt.Fprintf(w, "%54s%s\n", "", r.Address)
		}
		fmt.Fprintln(w)
		total += sizes[env.ID]
	}
	fmt.Fprintf(w, "-- %d Kbytes in %d Requests.\n", (total+1023)/1024, len(envs))
	return exitOK
}

func queueShow(dir, id string, stdout, stderr io.Writer) int {
	env, msg, err := queue.ReadFile(filepath.Join(dir, "msg", filepath.Base(id)))
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "amtpd queue show: message %s is not in the queue at %s; run 'amtpd queue list' for the IDs\n", id, dir)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(stderr, "amtpd queue show: %v\n", err)
		return exitFailure
	}

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	fmt.Fprintf(w, "ID:           %s\n", env.ID)
	fmt.Fprintf(w, "From:         <%s>\n", env.From)
	fmt.Fprintf(w, "MPC:          %s\n", env.MPC)
	fmt.Fprintf(w, "Received:     %s from %s (CN %s, private=%t)\n", env.ReceivedAt.Format(time.RFC3339), env.ClientAddr, env.ClientCN, env.Private)
	fmt.Fprintf(w, "Attempts:     %d, next %s\n", env.Attempts, env.NextAttempt.Format(time.RFC3339))
	fmt.Fprintf(w, "Is a bounce:  %t\n", env.Bounce)
	fmt.Fprintf(w, "Bounce sent:  %t (true once a bounce for the failed recipients is queued)\n", env.BounceSent)
	fmt.Fprintf(w, "Size:         %d octets\n", len(msg))
	fmt.Fprintln(w, "Recipients:")
	for _, r := range env.Recipients {
		fmt.Fprintf(w, "  <%s> %s, attempts: %d", r.Address, r.State, r.Attempts)
		if r.LastError != "" {
			fmt.Fprintf(w, ", last: %d %s", r.LastCode, oneLine(r.LastError, 2000))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Header section:")
	w.Write(message.HeaderSection(msg))
	return exitOK
}

// queueControl sends commands to the running amtpd, or applies them to the
// spool directly when amtpd is not running.
func queueControl(dir string, commands []string, stdout, stderr io.Writer) int {
	socket := filepath.Join(dir, dispatch.ControlSocket)
	code := exitOK
	for _, cmd := range commands {
		reply, err := sendControl(socket, cmd)
		if isNotRunning(err) {
			reply, err = applyOffline(dir, cmd)
		}
		if err != nil {
			fmt.Fprintf(stderr, "amtpd queue: %s: %v\n", cmd, err)
			code = exitFailure
			continue
		}
		if strings.HasPrefix(reply, "ERR ") {
			fmt.Fprintf(stderr, "amtpd queue: %s\n", strings.TrimPrefix(reply, "ERR "))
			code = exitFailure
			continue
		}
		fmt.Fprintln(stdout, strings.TrimPrefix(reply, "OK "))
	}
	return code
}

func sendControl(socket, cmd string) (string, error) {
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintln(conn, cmd); err != nil {
		return "", fmt.Errorf("control socket %s: %w", socket, err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("control socket %s: no reply: %w", socket, err)
	}
	return strings.TrimSpace(reply), nil
}

func isNotRunning(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED)
}

// applyOffline carries out a control command on a spool that no amtpd has
// open.
func applyOffline(dir, cmd string) (string, error) {
	spool, err := queue.Open(dir, queue.Options{})
	if err != nil {
		return "", err
	}
	defer spool.Close()

	fields := strings.Fields(cmd)
	now := time.Now()
	switch fields[0] {
	case "RETRY-ALL":
		n := 0
		for _, env := range spool.List() {
			if _, err := spool.Update(env.ID, queue.Record{Time: now, Type: queue.RecordRetry, NextAttempt: now}); err != nil {
				return "", err
			}
			n++
		}
		return fmt.Sprintf("OK %d message(s) will be retried when amtpd starts", n), nil
	case "RETRY":
		if _, ok := spool.Get(fields[1]); !ok {
			return "ERR message " + fields[1] + " is not in the queue; run 'amtpd queue list' for the IDs", nil
		}
		if _, err := spool.Update(fields[1], queue.Record{Time: now, Type: queue.RecordRetry, NextAttempt: now}); err != nil {
			return "", err
		}
		return "OK " + fields[1] + " will be retried when amtpd starts", nil
	case "DELETE":
		if _, ok := spool.Get(fields[1]); !ok {
			return "ERR message " + fields[1] + " is not in the queue; run 'amtpd queue list' for the IDs", nil
		}
		if err := spool.Remove(fields[1]); err != nil {
			return "", err
		}
		return "OK deleted " + fields[1], nil
	}
	return "", fmt.Errorf("unknown command %q", cmd)
}

func oneLine(s string, max int) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
