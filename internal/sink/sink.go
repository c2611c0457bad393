// Package sink defines where events go. Each output lives in its own
// subpackage; the daemon writes to every sink from one goroutine, off the
// ring buffer reader's path, so a slow sink can fill the queue (which drops
// and counts) but never stall the kernel transport.
package sink

import "github.com/vigilsec/vigil/internal/event"

// Sink receives events in order.
type Sink interface {
	// Write takes an event. It must not keep e after it returns.
	Write(e *event.Event) error
	// Flush pushes out anything buffered; called when the queue runs empty.
	Flush() error
	Close() error
}
