package event

// Host identifies the machine the agent runs on. It is the same for every event.
type Host struct {
	Name   string
	ID     string // /etc/machine-id
	BootID string
	Kernel string // uname release
	Arch   string
}
