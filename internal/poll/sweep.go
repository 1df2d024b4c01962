package poll

import "time"

// SweepResult is what the last orders sweep did.
type SweepResult struct {
	At        time.Time
	Orders    int    // orders in a target status changed within the window
	Checked   int    // of which had their history read
	Recovered int    // transitions emitted that the history poll had missed
	Requests  int    // API requests the sweep made
	Error     string // why it failed, if it did
}
