package condition

import "strings"

// historyFields are the field names of RetailCRM's order history: those
// its API documentation and its modules' history handling name, and those
// its documentation's trigger conditions use. A name outside them is only a
// warning (RetailCRM adds fields), since a typo would silently never match.
var historyFields = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`
		id number external_id created_at status status_comment order_type order_method site
		customer contact company manager call expired country first_name last_name patronymic
		phone additional_phone email customer_comment manager_comment
		payment_type payment_status full_paid_at discount discount_percent discount_manual_amount
		discount_manual_percent prepay_sum shipment_store shipment_date shipped source
		delivery_type delivery_service delivery_date delivery_time delivery_cost delivery_net_cost
		delivery_address.country delivery_address.index delivery_address.region delivery_address.city
		delivery_address.street delivery_address.building delivery_address.house delivery_address.block
		delivery_address.flat delivery_address.floor delivery_address.intercom_code delivery_address.metro
		delivery_address.notes delivery_address.text
		integration_delivery_data.status integration_delivery_data.track_number integration_delivery_data.courier
		payments payments.amount payments.paid_at payments.comment payments.type payments.status payments.external_id
		order_product order_product.id order_product.initial_price order_product.discount
		order_product.discount_percent order_product.discount_total order_product.quantity order_product.status
		order_product.summ order_product.vat_rate order_product.price_type
		contragent.contragent_type contragent.legal_name contragent.legal_address contragent.inn contragent.kpp
		contragent.ogrn contragent.certificate_number contragent.certificate_date contragent.bank
		contragent.bank_address contragent.corr_account contragent.bank_account contragent.bik
	`) {
		historyFields[f] = true
	}
}

// isHistoryField tells a field name of the order history; custom fields
// are custom_<code>.
func isHistoryField(name string) bool {
	return historyFields[name] || strings.HasPrefix(name, "custom_") && len(name) > len("custom_")
}
