package auth_test

import (
	"encoding/base64"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/crypto/bcrypt"

	"github.com/amtp-toolkit/amtp/reference/auth"
)

// hash returns a bcrypt hash of password at the minimum cost, to keep the
// specs fast.
func hash(password string) string {
	GinkgoHelper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	Expect(err).NotTo(HaveOccurred())
	return string(h)
}

// writeUsers writes text to a users file in a temporary folder and
// returns its path.
func writeUsers(text string) string {
	GinkgoHelper()
	path := filepath.Join(GinkgoT().TempDir(), "users")
	Expect(os.WriteFile(path, []byte(text), 0o600)).To(Succeed())
	return path
}

var _ = Describe("LoadUsers", func() {
	var users *auth.Users

	BeforeEach(func() {
		text := "# private listener users\n" +
			"\n" +
			"Alice.Example.Test:" + hash("alice secret") + "\n" +
			"   # indented comment\n" +
			"  bob.example.test:" + hash("bob secret") + "  \n"
		var err error
		users, err = auth.LoadUsers(writeUsers(text))
		Expect(err).NotTo(HaveOccurred())
	})

	It("accepts the right password", func() {
		Expect(users.Authenticate("alice.example.test", "alice secret")).To(BeTrue())
	})

	It("rejects a wrong password", func() {
		Expect(users.Authenticate("alice.example.test", "bob secret")).To(BeFalse())
	})

	It("rejects an empty password", func() {
		Expect(users.Authenticate("alice.example.test", "")).To(BeFalse())
	})

	It("ignores case of user names", func() {
		Expect(users.Authenticate("ALICE.example.TEST", "alice secret")).To(BeTrue())
	})

	It("trims spaces around entries", func() {
		Expect(users.Authenticate("bob.example.test", "bob secret")).To(BeTrue())
	})

	It("keeps case of passwords", func() {
		Expect(users.Authenticate("bob.example.test", "BOB SECRET")).To(BeFalse())
	})

	It("rejects an unknown user", func() {
		Expect(users.Authenticate("carol.example.test", "alice secret")).To(BeFalse())
	})

	It("reads an empty file", func() {
		empty, err := auth.LoadUsers(writeUsers("# no users yet\n"))
		Expect(err).NotTo(HaveOccurred())
		Expect(empty.Authenticate("alice.example.test", "alice secret")).To(BeFalse())
	})

	It("reads a file without final newline", func() {
		u, err := auth.LoadUsers(writeUsers("carol:" + hash("pw")))
		Expect(err).NotTo(HaveOccurred())
		Expect(u.Authenticate("carol", "pw")).To(BeTrue())
	})

	DescribeTable("rejects bad lines",
		func(line string, message string) {
			text := "# users\n" + "alice:" + hash("pw") + "\n" + line + "\n"
			_, err := auth.LoadUsers(writeUsers(text))
			Expect(err).To(MatchError(ContainSubstring("line 3")))
			Expect(err).To(MatchError(ContainSubstring(message)))
		},
		Entry("no colon", "bob", "want name:bcrypt-hash"),
		Entry("empty name", ":$2a$04$abcdefghijklmnopqrstuu", "want name:bcrypt-hash"),
		Entry("plain text password", "bob:secret", `user "bob": the hash is not bcrypt`),
		Entry("MD5 crypt hash", "bob:$apr1$abcdefgh$0123456789abcdefghijk/", `user "bob": the hash is not bcrypt`),
		Entry("empty hash", "bob:", `user "bob": the hash is not bcrypt`),
	)

	It("reports a missing file", func() {
		_, err := auth.LoadUsers(filepath.Join(GinkgoT().TempDir(), "missing"))
		Expect(err).To(MatchError(os.ErrNotExist))
	})
})

// plain returns the base64 AUTH PLAIN response for the three parts.
func plain(authzid, authcid, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(authzid + "\x00" + authcid + "\x00" + password))
}

var _ = Describe("DecodePlain", func() {
	It("decodes without authzid", func() {
		authzid, authcid, password, err := auth.DecodePlain(plain("", "alice", "secret"))
		Expect(err).NotTo(HaveOccurred())
		Expect(authzid).To(BeEmpty())
		Expect(authcid).To(Equal("alice"))
		Expect(password).To(Equal("secret"))
	})

	It("decodes with authzid", func() {
		authzid, authcid, password, err := auth.DecodePlain(plain("admin", "alice", "pass word"))
		Expect(err).NotTo(HaveOccurred())
		Expect(authzid).To(Equal("admin"))
		Expect(authcid).To(Equal("alice"))
		Expect(password).To(Equal("pass word"))
	})

	DescribeTable("rejects",
		func(response string) {
			_, _, _, err := auth.DecodePlain(response)
			Expect(err).To(MatchError(auth.ErrMalformed))
		},
		Entry("invalid base64", "not base64!"),
		Entry("missing padding", "AGFsaWNlAHNlY3JldA"),
		Entry("empty response", ""),
		Entry("one NUL", base64.StdEncoding.EncodeToString([]byte("alice\x00secret"))),
		Entry("three NULs", base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret\x00"))),
		Entry("empty authcid", plain("admin", "", "secret")),
		Entry("empty password", plain("", "alice", "")),
	)
})
