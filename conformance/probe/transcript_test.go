package probe_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/amtp-toolkit/amtp/conformance/probe"
)

// conversation returns a transcript with a short AMTP exchange and some
// hostile server output.
func conversation() *probe.Transcript {
	transcript := probe.NewTranscript(0, 0)
	probe.AddEvent(transcript, probe.DirClient, []byte("EHLO client.example.test\r\n"), false)
	probe.AddEvent(transcript, probe.DirServer, []byte("250-mx.example.test\r\n"), false)
	probe.AddEvent(transcript, probe.DirServer, []byte("250 MPC ALLOW */*\r\n"), false)
	probe.AddEvent(transcript, probe.DirClient, []byte("MAIL FROM:<a@example.test> MPC=com/optin\r\nRCPT TO:<b@example.test>\r\n"), false)
	probe.AddEvent(transcript, probe.DirServer, []byte("250 ok\n"), false)
	probe.AddEvent(transcript, probe.DirServer, []byte("550 bad\x00\xff\\x\tend\r\n"), false)
	probe.AddEvent(transcript, probe.DirServer, []byte("\u202e421 reversed\r\n"), false)
	probe.AddEvent(transcript, probe.DirServer, []byte("220 slo"), true)
	transcript.Note("read reply: timed out")
	return transcript
}

var _ = Describe("Transcript", func() {
	It("renders C, S and meta lines", func() {
		Expect(conversation().Render()).To(Equal(strings.Join([]string{
			"C: EHLO client.example.test",
			"S: 250-mx.example.test",
			"S: 250 MPC ALLOW */*",
			"C: MAIL FROM:<a@example.test> MPC=com/optin",
			"C: RCPT TO:<b@example.test>",
			`S: 250 ok\n`,
			`S: 550 bad\x00\xff\\x\tend`,
			`S: \xe2\x80\xae421 reversed`,
			"S: 220 slo [no line ending]",
			"* read reply: timed out",
			"",
		}, "\n")))
	})

	It("round-trips through JSON", func() {
		original := conversation()

		encoded, err := json.Marshal(original)
		Expect(err).NotTo(HaveOccurred())
		Expect(utf8.Valid(encoded)).To(BeTrue())
		Expect(string(encoded)).To(ContainSubstring(`"data":"550 bad\\x00\\xff\\\\x\tend\r\n"`))
		Expect(string(encoded)).To(ContainSubstring(`"dir":"S"`))
		Expect(string(encoded)).To(ContainSubstring(`"partial":true`))

		decoded := &probe.Transcript{}
		Expect(json.Unmarshal(encoded, decoded)).To(Succeed())
		want := original.Events()
		got := decoded.Events()
		Expect(got).To(HaveLen(len(want)))
		for i := range want {
			Expect(got[i].Dir).To(Equal(want[i].Dir), "event %d", i)
			Expect(got[i].Data).To(Equal(want[i].Data), "event %d", i)
			Expect(got[i].Offset).To(Equal(want[i].Offset), "event %d", i)
			Expect(got[i].Time.Equal(want[i].Time)).To(BeTrue(), "event %d", i)
			Expect(got[i].Partial).To(Equal(want[i].Partial), "event %d", i)
			Expect(got[i].Size).To(Equal(want[i].Size), "event %d", i)
		}
		Expect(decoded.Render()).To(Equal(original.Render()))
		Expect(decoded.Start().Equal(original.Start())).To(BeTrue())
	})

	It("measures offsets from the start", func() {
		transcript := probe.NewTranscript(0, 0)
		probe.AddEvent(transcript, probe.DirClient, []byte("NOOP\r\n"), false)
		time.Sleep(20 * time.Millisecond)
		probe.AddEvent(transcript, probe.DirServer, []byte("250 ok\r\n"), false)

		events := transcript.Events()
		Expect(events[0].Offset).To(BeNumerically(">=", 0))
		Expect(events[1].Offset - events[0].Offset).To(BeNumerically(">=", 20*time.Millisecond))
		Expect(events[1].Time.Sub(transcript.Start())).To(BeNumerically("~", events[1].Offset, time.Millisecond))
	})

	It("cuts an oversized event", func() {
		transcript := probe.NewTranscript(100, 10_000)
		probe.AddEvent(transcript, probe.DirServer, []byte(strings.Repeat("x", 150)), true)

		events := transcript.Events()
		Expect(events).To(HaveLen(1))
		Expect(events[0].Data).To(HaveLen(100))
		Expect(events[0].Size).To(Equal(150))
		Expect(events[0].Truncated).To(BeTrue())
		Expect(transcript.Render()).To(HaveSuffix("* event cut to 100 of 150 bytes\n"))
	})

	It("drops events beyond the limit", func() {
		const maxSize = 10_000
		transcript := probe.NewTranscript(0, maxSize)
		for range 1000 {
			probe.AddEvent(transcript, probe.DirServer, []byte(strings.Repeat("y", 48)+"\r\n"), false)
		}
		transcript.Note("closing")

		Expect(transcript.StoredSize()).To(BeNumerically("<=", maxSize+probe.EventOverhead+len("closing")))
		events, dataBytes := transcript.Dropped()
		Expect(events).To(BeNumerically(">", 0))
		Expect(dataBytes).To(Equal(int64(events * 50)))
		stored := transcript.Events()
		Expect(len(stored) + events).To(Equal(1000 + 1))
		Expect(stored[len(stored)-1].Dir).To(Equal(probe.DirMeta))
		Expect(transcript.Render()).To(ContainSubstring("* transcript limit of 10000 bytes reached: "))
	})

	It("charges empty events against the limit", func() {
		transcript := probe.NewTranscript(0, 64<<10)
		for range 100_000 {
			probe.AddEvent(transcript, probe.DirServer, []byte("\n"), false)
		}

		Expect(len(transcript.Events())).To(BeNumerically("<=", (64<<10)/probe.EventOverhead))
		Expect(transcript.StoredSize()).To(BeNumerically("<=", 64<<10))
	})

	It("bounds the transcript of a flooding server", func() {
		server := startServer("127.0.0.1:0", func(conn net.Conn) {
			line := strings.Repeat("z", 100) + "\r\n"
			for range 200_000 {
				if _, err := io.WriteString(conn, line); err != nil {
					return
				}
			}
			// Stay open after the flood, so a fast flood still leaves
			// the connection open at the deadline.
			io.Copy(io.Discard, conn)
		})
		opts := plainOptions(server.addr, 500*time.Millisecond)
		opts.MaxTranscriptSize = 16 << 10
		conn := dial(opts)

		closed, err := conn.ExpectClose(context.Background())

		Expect(err).NotTo(HaveOccurred())
		Expect(closed).To(BeFalse())
		Expect(conn.Transcript().StoredSize()).To(BeNumerically("<=", 16<<10+64<<10))
		droppedEvents, _ := conn.Transcript().Dropped()
		Expect(droppedEvents).To(BeNumerically(">", 0))
		Expect(conn.Transcript().Render()).To(ContainSubstring("* connection still open after"))
	})

	It("cuts a large send", func() {
		server := startServer("127.0.0.1:0", hold)
		conn := dial(plainOptions(server.addr, time.Second))

		Expect(conn.Send([]byte(strings.Repeat("D", 200<<10)))).To(Succeed())

		var sent []probe.Event
		for _, event := range conn.Transcript().Events() {
			if event.Dir == probe.DirClient {
				sent = append(sent, event)
			}
		}
		Expect(sent).To(HaveLen(1))
		Expect(sent[0].Data).To(HaveLen(probe.DefaultMaxEventSize))
		Expect(sent[0].Size).To(Equal(200 << 10))
		Expect(sent[0].Truncated).To(BeTrue())
	})
})

var _ = Describe("Bytes", func() {
	DescribeTable("JSON form",
		func(data string, want string) {
			encoded, err := json.Marshal(probe.Bytes(data))
			Expect(err).NotTo(HaveOccurred())
			Expect(string(encoded)).To(Equal(want))

			var decoded probe.Bytes
			Expect(json.Unmarshal(encoded, &decoded)).To(Succeed())
			Expect(string(decoded)).To(Equal(data))
		},
		Entry("plain text", "250 ok", `"250 ok"`),
		Entry("CRLF", "250 ok\r\n", `"250 ok\r\n"`),
		Entry("backslash", `a\b`, `"a\\\\b"`),
		Entry("NUL and DEL", "\x00\x7f", `"\\x00\\x7f"`),
		Entry("invalid UTF-8", "\xff\xc3", `"\\xff\\xc3"`),
		Entry("valid UTF-8", "grüße", `"grüße"`),
		Entry("bidirectional override", "\u202e", `"\\xe2\\x80\\xae"`),
		Entry("literal escape text", `\x41`, `"\\\\x41"`),
	)

	DescribeTable("rejects invalid escapes",
		func(encoded string) {
			var decoded probe.Bytes
			Expect(json.Unmarshal([]byte(encoded), &decoded)).NotTo(Succeed())
		},
		Entry("unknown escape", `"\\q"`),
		Entry("short hex escape", `"\\x4"`),
		Entry("non-hex digits", `"\\xzz"`),
		Entry("trailing backslash", `"abc\\"`),
	)
})
