package retailcrm

import "time"

// HistoryFilter selects history entries.
type HistoryFilter struct {
	SinceID   int64     // filter[sinceId], exclusive; 0 omits it
	OrderID   int64     // filter[orderId]: one order's entries; 0 omits it
	StartDate time.Time // filter[startDate], "Y-m-d H:i:s" in Location; zero omits it
	EndDate   time.Time // filter[endDate], likewise; the API's second includes the whole second
	Location  *time.Location
	Limit     int // default PageLimit
	Page      int // 0 omits it
}

// OrdersFilter selects orders for OrderList.
type OrdersFilter struct {
	// ExtendedStatus: filter[extendedStatus][], orders in any of these
	// status codes (the API also takes status group codes here).
	ExtendedStatus []string
	// StatusUpdatedAtFrom: filter[statusUpdatedAtFrom], orders whose status
	// changed at or after it, "Y-m-d H:i:s" in Location; zero omits it.
	StatusUpdatedAtFrom time.Time
	Location            *time.Location
	Sites               []string // filter[sites][]; empty: every site
	Limit               int      // default PageLimit
	Page                int      // default 1
}

// apiTime formats t as RetailCRM's "Y-m-d H:i:s" in loc (UTC when nil),
// the account's time zone in which the API reads date filters.
func apiTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(time.DateTime)
}
