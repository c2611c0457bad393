package daemon

type fimLive struct{}
