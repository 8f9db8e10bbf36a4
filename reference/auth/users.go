// Package auth checks SMTP AUTH PLAIN credentials (RFC 4954) against a
// users file, for the private listener of draft-weinman-amtp-03 section 7.
//
// The users file has one "name:bcrypt-hash" entry per line; empty lines
// and lines starting with "#" are ignored. `htpasswd -nbB name password`
// writes this format.
package auth

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Users maps user names to bcrypt hashes.
type Users struct {
	hashes map[string][]byte
}

// LoadUsers reads a users file.
func LoadUsers(path string) (*Users, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read users file: %w", err)
	}

	u := &Users{hashes: map[string][]byte{}}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for lineNo := 1; scanner.Scan(); lineNo++ {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("users file %s line %d: want name:bcrypt-hash", path, lineNo)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("users file %s line %d: user %q: the hash is not bcrypt (%v); create it with htpasswd -nbB", path, lineNo, name, err)
		}
		u.hashes[strings.ToLower(name)] = []byte(hash)
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("read users file %s: %w", path, err)
	}
	return u, nil
}

// Authenticate reports whether password is the password of name. User
// names are compared without regard to case.
func (u *Users) Authenticate(name, password string) bool {
	hash, ok := u.hashes[strings.ToLower(name)]
	if !ok {
		// Spend the same time as for a known user, so timing does not
		// reveal which names exist.
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

var dummyHash = sync.OnceValue(func() []byte {
	hash, _ := bcrypt.GenerateFromPassword([]byte("dummy password"), bcrypt.DefaultCost)
	return hash
})

// ErrMalformed means the AUTH PLAIN response is not valid base64 of
// authzid NUL authcid NUL password.
var ErrMalformed = errors.New("malformed AUTH PLAIN response")

// DecodePlain decodes an AUTH PLAIN response (RFC 4616) and returns the
// authorization identity, the authentication identity and the password.
// The authentication identity and the password must not be empty, as the
// grammar of RFC 4616 section 2 requires.
func DecodePlain(response string) (authzid, authcid, password string, err error) {
	raw, err := base64.StdEncoding.DecodeString(response)
	if err != nil {
		return "", "", "", fmt.Errorf("%w: invalid base64", ErrMalformed)
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("%w: want authzid NUL authcid NUL password, with a non-empty authcid and password", ErrMalformed)
	}
	return parts[0], parts[1], parts[2], nil
}
