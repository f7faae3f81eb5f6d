// Package sdnotify tells systemd (Type=notify) when understudy is ready, and
// feeds its watchdog (WatchdogSec=) only while the audio keeps moving: a host
// whose clock has stopped advancing gets restarted by systemd even though its
// process is alive. Outside systemd (no NOTIFY_SOCKET) everything here is a
// no-op.
package sdnotify

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Ready sends READY=1. It reports false, with no error, when not started by
// systemd with a notify socket.
func Ready() (bool, error) { return daemon.SdNotify(false, daemon.SdNotifyReady) }

// Stopping sends STOPPING=1, so systemd knows the exit that follows is ours.
func Stopping() (bool, error) { return daemon.SdNotify(false, daemon.SdNotifyStopping) }

// Watchdog feeds systemd's watchdog from a goroutine.
type Watchdog struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
	tick *time.Ticker
}

// StartWatchdog feeds the watchdog every half WATCHDOG_USEC, but only when
// progress (e.g. the clock's period count) has moved since the last feed: a
// stalled clock stops the feeding and systemd restarts the service when
// WatchdogSec runs out. It returns nil, nil when the watchdog is off for this
// process (no WATCHDOG_USEC, or WATCHDOG_PID names another process).
func StartWatchdog(progress func() uint64) (*Watchdog, error) {
	iv, err := daemon.SdWatchdogEnabled(false)
	if err != nil || iv <= 0 {
		return nil, err
	}
	t := time.NewTicker(iv / 2)
	w := startWatchdog(progress, t.C, func() error {
		_, err := daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		return err
	})
	w.tick = t
	return w, nil
}

func startWatchdog(progress func() uint64, ticks <-chan time.Time, feed func() error) *Watchdog {
	w := &Watchdog{stop: make(chan struct{}), done: make(chan struct{})}
	last := progress()
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-ticks:
			}
			// A feed that fails is retried on the next tick; systemd
			// decides what a missed one means.
			if now := progress(); now != last && feed() == nil {
				last = now
			}
		}
	}()
	return w
}

// Stop ends the feeding and waits for the goroutine; safe on nil and more
// than once.
func (w *Watchdog) Stop() {
	if w == nil {
		return
	}
	w.once.Do(func() {
		close(w.stop)
		<-w.done
		if w.tick != nil {
			w.tick.Stop()
		}
	})
}

// Serve is what a command does once it plays: READY=1, then the watchdog fed
// from progress. The returned stop sends STOPPING=1 and ends the feeding.
// Problems talking to systemd are reported on warn, never fatal.
func Serve(progress func() uint64, warn io.Writer) (stop func()) {
	sent, err := Ready()
	if err != nil {
		fmt.Fprintf(warn, "understudy: warning: telling systemd we are ready: %v\n", err)
	}
	w, err := StartWatchdog(progress)
	if err != nil {
		fmt.Fprintf(warn, "understudy: warning: systemd watchdog: %v\n", err)
	}
	return func() {
		w.Stop()
		if sent {
			Stopping()
		}
	}
}
