package queue

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"
)

// A spool file is, in order:
//
//	amtpq 1 ENVLEN MSGLEN CRC\n
//	ENVELOPE      ENVLEN bytes: the Envelope as JSON, then \n
//	MESSAGE       MSGLEN bytes, exactly as given to Put
//	RECORDS       zero or more Records, each one JSON object and \n
//
// The header line contains the magic word, the format version and the two
// lengths in decimal, then CRC in 8 lower-case hex digits. CRC is the
// CRC-32C (Castagnoli) of the header line up to and including the space
// before CRC, then the envelope, then the message. The checksum does not
// cover the records.
// Each is appended by a single write and fsynced, so after a crash only
// the last record can be incomplete. A last record without \n is ignored.
const (
	formatMagic   = "amtpq"
	formatVersion = 1

	maxHeaderLen   = 128
	maxEnvelopeLen = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by the errors of ReadFile and Load for a file
// whose header, checksum or records are invalid. Open and Load move such a
// file to DIR/corrupt/.
var ErrCorrupt = errors.New("corrupt spool file")

// corruptError returns an error that wraps ErrCorrupt.
func corruptError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// encodeHead returns the header line and the envelope, the part of a
// spool file that precedes the message.
func encodeHead(env *Envelope, msg []byte) ([]byte, error) {
	envJSON, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode envelope of %s: %w", env.ID, err)
	}
	envJSON = append(envJSON, '\n')

	head := fmt.Appendf(nil, "%s %d %d %d ", formatMagic, formatVersion, len(envJSON), len(msg))
	crc := crc32.Update(0, castagnoli, head)
	crc = crc32.Update(crc, castagnoli, envJSON)
	crc = crc32.Update(crc, castagnoli, msg)
	head = fmt.Appendf(head, "%08x\n", crc)
	return append(head, envJSON...), nil
}

// encodeRecords returns recs as JSON lines.
func encodeRecords(recs []Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, rec := range recs {
		// Encode writes the object and a \n. The JSON encoding escapes
		// every \n inside strings, so each record is one line.
		if err := enc.Encode(rec); err != nil {
			return nil, fmt.Errorf("encode %s record: %w", rec.Type, err)
		}
	}
	return buf.Bytes(), nil
}

// spoolFile is the decoded content of one spool file.
type spoolFile struct {
	env      *Envelope // with the records applied
	msg      []byte    // nil unless the caller asked for the body
	records  int       // complete records applied
	validLen int64     // offset just past the last complete record
	fileLen  int64     // validLen plus the length of an incomplete last record
}

// readSpoolFile decodes the file f. It verifies the checksum in every case
// but keeps the message in memory only when withBody is set. Errors that
// mean the file is damaged wrap ErrCorrupt. An unknown format version is
// not reported as corruption, because a newer amtpd may have written the
// file.
func readSpoolFile(f *os.File, withBody bool) (*spoolFile, error) {
	br := bufio.NewReaderSize(f, 64<<10)
	head, err := readHeaderLine(br)
	if err != nil {
		return nil, err
	}
	envLen, msgLen, wantCRC, err := parseHeader(head)
	if err != nil {
		return nil, err
	}
	// Check the lengths before allocating buffers of those sizes.
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if need := int64(len(head)) + int64(envLen) + msgLen; need > info.Size() {
		return nil, corruptError("file is %d bytes long, shorter than the %d bytes its header declares", info.Size(), need)
	}

	checkedHead := head[:strings.LastIndexByte(head, ' ')+1]
	crc := crc32.Update(0, castagnoli, []byte(checkedHead))

	envJSON := make([]byte, envLen)
	if _, err := io.ReadFull(br, envJSON); err != nil {
		return nil, shortRead("envelope", err)
	}
	crc = crc32.Update(crc, castagnoli, envJSON)

	var msg []byte
	if withBody {
		msg = make([]byte, msgLen)
		if _, err := io.ReadFull(br, msg); err != nil {
			return nil, shortRead("message", err)
		}
		crc = crc32.Update(crc, castagnoli, msg)
	} else {
		crc, err = updateCRC(crc, br, msgLen)
		if err != nil {
			return nil, shortRead("message", err)
		}
	}
	if crc != wantCRC {
		return nil, corruptError("checksum %08x does not match the header's %08x", crc, wantCRC)
	}

	env := new(Envelope)
	if err := json.Unmarshal(envJSON, env); err != nil {
		return nil, corruptError("invalid envelope: %v", err)
	}

	sf := &spoolFile{env: env, msg: msg}
	sf.validLen = int64(len(head)) + int64(envLen) + msgLen
	if err := readRecords(br, sf); err != nil {
		return nil, err
	}
	return sf, nil
}

// updateCRC reads n bytes from r and adds them to the running checksum
// crc, without holding them all in memory.
func updateCRC(crc uint32, r io.Reader, n int64) (uint32, error) {
	buf := make([]byte, 32<<10)
	for n > 0 {
		chunk := buf[:min(int64(len(buf)), n)]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return crc, err
		}
		crc = crc32.Update(crc, castagnoli, chunk)
		n -= int64(len(chunk))
	}
	return crc, nil
}

func readHeaderLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) || errors.Is(err, io.EOF) {
			return "", corruptError("missing header line")
		}
		return "", fmt.Errorf("read header: %w", err)
	}
	if len(line) > maxHeaderLen {
		return "", corruptError("header line longer than %d bytes", maxHeaderLen)
	}
	return string(line), nil
}

// parseHeader returns the lengths and the checksum from the header line.
func parseHeader(line string) (envLen int, msgLen int64, crc uint32, err error) {
	fields := strings.Fields(line)
	if len(fields) != 5 || fields[0] != formatMagic {
		return 0, 0, 0, corruptError("header %q is not \"%s VERSION ENVLEN MSGLEN CRC\"", strings.TrimSpace(line), formatMagic)
	}
	version, err := strconv.Atoi(fields[1])
	if err != nil {
		return 0, 0, 0, corruptError("invalid format version %q", fields[1])
	}
	if version != formatVersion {
		return 0, 0, 0, fmt.Errorf("unsupported spool format version %d: this amtpd reads version %d, so run the amtpd that wrote the file", version, formatVersion)
	}
	envLen, err = strconv.Atoi(fields[2])
	if err != nil || envLen < 2 || envLen > maxEnvelopeLen {
		return 0, 0, 0, corruptError("invalid envelope length %q", fields[2])
	}
	msgLen, err = strconv.ParseInt(fields[3], 10, 64)
	if err != nil || msgLen < 0 {
		return 0, 0, 0, corruptError("invalid message length %q", fields[3])
	}
	crc64, err := strconv.ParseUint(fields[4], 16, 32)
	if err != nil || len(fields[4]) != 8 {
		return 0, 0, 0, corruptError("invalid checksum %q", fields[4])
	}
	return envLen, msgLen, uint32(crc64), nil
}

func shortRead(part string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corruptError("file ends inside the %s", part)
	}
	return fmt.Errorf("read %s: %w", part, err)
}

// readRecords applies the records that follow the message to sf.env and
// sets sf.validLen and sf.fileLen. A record that is not valid JSON or that
// apply rejects makes the file corrupt, unless it is the incomplete last
// one.
func readRecords(br *bufio.Reader, sf *spoolFile) error {
	sf.fileLen = sf.validLen
	for {
		line, err := br.ReadBytes('\n')
		sf.fileLen += int64(len(line))
		if errors.Is(err, io.EOF) {
			// A last record without \n was cut short by a crash: the
			// Update that wrote it did not return.
			return nil
		}
		if err != nil {
			return fmt.Errorf("read records: %w", err)
		}

		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return corruptError("invalid record %d at offset %d: %v", sf.records+1, sf.validLen, err)
		}
		if err := apply(sf.env, rec); err != nil {
			return corruptError("record %d at offset %d: %v", sf.records+1, sf.validLen, err)
		}
		sf.records++
		sf.validLen += int64(len(line))
	}
}

// ReadFile reads the spool file at path and returns its envelope, with
// every complete record applied, and its message. It only reads, so
// offline tools can use it on the spool of a running amtpd. Errors for a
// damaged file wrap ErrCorrupt.
func ReadFile(path string) (*Envelope, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()

	sf, err := readSpoolFile(f, true)
	if err != nil {
		return nil, nil, fmt.Errorf("read spool file %s: %w", path, err)
	}
	return sf.env, sf.msg, nil
}
