package crmsim

// Change says who makes a change. The zero value is a user (source "user")
// with a generated user id.
type Change struct {
	// Source is "user" (default), "api" (through a key), "code" (RetailCRM
	// itself), "rule" (a trigger's action), "combine" (a merge of orders) or
	// "split" (a split of an order). Only "user" entries carry user{id}, and
	// only "api" entries apiKey{current}.
	Source string
	UserID int64  // for source "user"; 0 picks one
	APIKey string // for source "api": the key the change was made through
}

// sources are the history sources the API writes (Change.Source).
var sources = []string{"user", "api", "code", "rule", "combine", "split"}
