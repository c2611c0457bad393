package sink

// Stats is what a sink with a queue of its own reports about it, for
// `vigil status`, the web page and /metrics.
type Stats struct {
	Name     string
	Queued   int    // waiting in the sink's queue now
	Capacity int    // the queue's bound
	Written  uint64 // delivered
	Dropped  uint64 // refused because the queue was full
	Failures uint64 // delivery errors
}

// Reporter is a sink that reports Stats. The daemon asks every sink whether
// it is one.
type Reporter interface {
	Stats() Stats
}
