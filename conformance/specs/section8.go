package specs

import (
	"encoding/base64"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
)

// section8 checks draft section 8, Security Considerations: a private
// connection should require client authentication beyond the
// certificate.
func section8() {
	Describe("8 Security Considerations", func() {
		clause("8-private-additional-authentication", []string{"private"}, func(c *Check) {
			s := c.openPrivate("MAIL without AUTH, then AUTH with a wrong password")
			if s == nil {
				return
			}
			id, err := privateClient()
			if err != nil {
				c.Error("%v", err)
				return
			}

			mail, err := s.Cmd(mailCommand("MPC=per/individual"))
			if err != nil {
				c.Error("no reply to MAIL: %s", describe(err))
				return
			}
			if mail.Code == 250 {
				c.Broken("the private listener accepted MAIL without authentication")
				return
			}
			if err := s.reset(); err != nil {
				c.Error("%s", describe(err))
				return
			}

			wrong := base64.StdEncoding.EncodeToString([]byte("\x00" + id.CN + "\x00wrong-password-" + current().RunID))
			auth, err := s.Cmd("AUTH PLAIN " + wrong)
			if err != nil {
				c.Error("no reply to AUTH: %s", describe(err))
				return
			}

			var problems []string
			if mail.Code != 530 {
				problems = append(problems, fmt.Sprintf("MAIL without authentication got %s, not 530", summarize(mail)))
			}
			if auth.Code != 535 {
				problems = append(problems, fmt.Sprintf("AUTH PLAIN as %s with a wrong password got %s, not 535", id.CN, summarize(auth)))
			}
			if len(problems) > 0 {
				c.Broken("%s", strings.Join(problems, "; "))
				return
			}
			c.Pass("MAIL without authentication got %s, and AUTH with a wrong password got %s", summarize(mail), summarize(auth))
		})
	})
}
