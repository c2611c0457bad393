package sink

// Stats is what a sink with a queue of its own reports about it, for
// `vigil status`, the web page and /metrics.
type Stats struct {
	Name     string
	Queued   int    // waiting in the sink's queue now (in memory)
	Capacity int    // the queue's bound
	Written  uint64 // delivered
	Dropped  uint64 // lost on this side: the queue (and spool) was full, a spool record was corrupt, or encoding failed
	Failures uint64 // delivery errors: refused for good by the destination

	// Sinks on a spool.Queue (file, syslog, webhook, elasticsearch, nats)
	// also report the following. Every record such a sink accepts is, or
	// ends up, in exactly one place: memory, the spool, in flight,
	// Written, Failures or Dropped.
	Type       string
	Enqueued   uint64 // records accepted into the memory queue, in all
	Spooled    uint64 // records written to the disk spool instead (memory full, or older records on disk)
	Retries    uint64 // failed delivery attempts, per record, that were retried
	SpoolDepth int    // records in the disk spool now
	SpoolBytes int64  // its size now
	SpoolLimit int64  // its bound
}

// Reporter is a sink that reports Stats. The daemon asks every sink whether
// it is one.
type Reporter interface {
	Stats() Stats
}
