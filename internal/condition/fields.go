package condition

import "strings"

// historyFields are the field names of RetailCRM's order history.
var historyFields = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`
		status status_comment order_type order_method site manager first_name last_name patronymic
		phone additional_phone email customer_comment manager_comment call expired
		delivery_type delivery_service delivery_cost delivery_net_cost delivery_date delivery_time
		delivery_address.city delivery_address.street delivery_address.building delivery_address.flat
		delivery_address.index delivery_address.region delivery_address.text delivery_address.notes
		integration_delivery_data.status payments payments.status payments.type payments.amount
		payments.paid_at payments.comment order_product order_product.status order_product.quantity
		order_product.initial_price order_product.discount_total created_at
	`) {
		historyFields[f] = true
	}
}

// isHistoryField tells a field name of the order history; custom fields
// are custom_<code>.
func isHistoryField(name string) bool {
	return historyFields[name] || strings.HasPrefix(name, "custom_") && len(name) > len("custom_")
}
