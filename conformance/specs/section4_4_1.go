package specs

import (
	. "github.com/onsi/ginkgo/v2"
)

// section4_4_1 checks draft section 4.4.1, Hello Command (HELO): AMTP
// does not support HELO, and a server replies
// 504 to it.
func section4_4_1() {
	Describe("4.4.1 Hello Command (HELO)", func() {
		clause("4.4.1-helo-rejected", nil, func(c *Check) {
			if !c.requireBaseline() {
				return
			}
			// First HELO: right after the greeting, in place of EHLO.
			s, id := c.dialValid("HELO after the greeting")
			if s == nil {
				return
			}
			greeting, err := s.Read()
			if err != nil {
				c.Error("no greeting: %s", describe(err))
				return
			}
			if greeting.Code != 220 {
				c.Error("the greeting was %s, not 220", summarize(greeting))
				return
			}
			first, err := s.Cmd("HELO " + id.CN)
			if err != nil {
				c.Broken("HELO after the greeting got no reply: %s", describe(err))
				return
			}
			s.Close()

			// Second HELO: after a successful EHLO.
			session := c.open("HELO after EHLO")
			if session == nil {
				return
			}
			second, err := session.Cmd("HELO " + id.CN)
			if err != nil {
				c.Broken("HELO after EHLO got no reply: %s", describe(err))
				return
			}

			switch {
			case first.Code != 504:
				c.Broken("HELO after the greeting got %s, not 504", summarize(first))
			case second.Code != 504:
				c.Broken("HELO after EHLO got %s, not 504", summarize(second))
			default:
				c.Pass("HELO got 504 after the greeting (%s) and after EHLO (%s)", summarize(first), summarize(second))
			}
		})
	})
}
