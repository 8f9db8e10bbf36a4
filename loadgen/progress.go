package loadgen

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress shows the run's progress: an mpb bar on a terminal, or a plain
// line every ProgressInterval otherwise. It also compacts the timeline
// once per second.
type progress struct {
	g        *generator
	start    time.Time
	stop     chan struct{}
	done     sync.WaitGroup
	bars     *mpb.Progress
	bar      *mpb.Bar
	out      io.Writer
	interval time.Duration
}

// progressTotal is the bar's scale: per mille of the run.
const progressTotal = 1000

func newProgress(cfg Config, g *generator) *progress {
	p := &progress{g: g, start: time.Now(), stop: make(chan struct{}), out: cfg.Progress, interval: cfg.ProgressInterval}

	if cfg.Progress != nil && cfg.Terminal {
		p.bars = mpb.New(mpb.WithOutput(cfg.Progress), mpb.WithWidth(40), mpb.WithRefreshRate(200*time.Millisecond))
		p.bar = p.bars.New(progressTotal, mpb.BarStyle(),
			mpb.PrependDecorators(decor.Name("load "+cfg.Scenario+" "), decor.Elapsed(decor.ET_STYLE_GO)),
			mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return p.line() })),
		)
	}

	p.done.Go(p.loop)
	return p
}

func (p *progress) loop() {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	lastLine := time.Now()
	for {
		select {
		case <-p.stop:
			return
		case now := <-ticker.C:
			p.g.timeline.compact(now)
			if p.bar != nil {
				p.bar.SetCurrent(int64(p.fraction() * progressTotal))
			} else if p.out != nil && now.Sub(lastLine) >= p.interval {
				fmt.Fprintf(p.out, "load: %s %s\n", time.Since(p.start).Round(time.Second), p.line())
				lastLine = now
			}
		}
	}
}

// fraction returns how much of the run is done, from 0 to 1, by time or
// by count, whichever is further.
func (p *progress) fraction() float64 {
	cfg := p.g.cfg
	var done float64
	if cfg.Duration > 0 {
		done = time.Since(p.start).Seconds() / cfg.Duration.Seconds()
	}
	if limit := p.g.countLimit(); limit > 0 {
		done = max(done, float64(p.g.arrivals.Load())/float64(limit))
	}
	return min(done, 1)
}

// line returns the progress figures: rate, errors and the p99 so far.
func (p *progress) line() string {
	activity, p99 := p.g.timeline.snapshot()
	elapsed := time.Since(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(activity.Completed) / elapsed
	}
	remaining := ""
	if p.g.cfg.Duration > 0 {
		remaining = fmt.Sprintf(", %s left", max(p.g.cfg.Duration-time.Since(p.start), 0).Round(time.Second))
	}
	return fmt.Sprintf("%d started, %d ok (%.1f/s), %d failed, p99 %s%s",
		activity.Started, activity.Completed, rate, activity.Failed, p99.Round(10*time.Microsecond), remaining)
}

// finish stops the display.
func (p *progress) finish() {
	close(p.stop)
	p.done.Wait()
	p.g.timeline.compact(time.Now())
	if p.bar != nil {
		p.bar.SetCurrent(progressTotal)
		p.bars.Wait()
	}
}
