//! Journal entry descriptions for a reader's language.
//!
//! The sub-ledger stores each entry's description in English, in one of a few fixed forms
//! (`invoice 2026-000001 to Acme`, `payment P-7 applied to invoice 2026-000001`...). A Chinese
//! reader gets each known form in Chinese, with its numbers and names as they are; a description
//! of any other form (an entry written by hand, a form added later) is shown as stored.

use super::i18n::Lang;

/// `description` of an entry for a reader of `lang`.
pub fn description(lang: Lang, description: &str) -> String {
    match lang {
        Lang::En => description.to_string(),
        Lang::ZhCn => chinese(description).unwrap_or_else(|| description.to_string()),
    }
}

/// The Chinese of a description of a known form; `None` for any other.
fn chinese(text: &str) -> Option<String> {
    if text == "opening stock taken over" {
        return Some("期初库存转入".to_string());
    }
    if let Some(rest) = text.strip_prefix("invoice ")
        && let Some((number, customer)) = rest.split_once(" to ")
    {
        return Some(format!("开具发票 {number}（{customer}）"));
    }
    if let Some(rest) = text.strip_prefix("cost of goods of order ")
        && let Some((order, shipment)) = rest.split_once(", shipment ")
    {
        return Some(format!("订单 {order} 发货 {shipment} 的销售成本"));
    }
    if let Some(rest) = text.strip_prefix("payment ") {
        if let Some((payment, invoice)) = rest.split_once(" applied to invoice ") {
            return Some(format!("付款 {payment} 核销发票 {invoice}"));
        }
        if let Some((payment, reference)) = rest.split_once(" received (")
            && let Some(reference) = reference.strip_suffix(')')
        {
            return Some(format!("收到付款 {payment}（{reference}）"));
        }
    }
    if let Some(invoice) = text.strip_prefix("short payment on invoice ") {
        return Some(format!("发票 {invoice} 少付差额"));
    }
    if let Some(invoice) = text.strip_prefix("write-off of invoice ") {
        return Some(format!("发票 {invoice} 坏账核销"));
    }
    if let Some(payment) = text.strip_prefix("refund of payment ") {
        return Some(format!("付款 {payment} 退款"));
    }
    if let Some(payment) = text.strip_prefix("payment return of payment ") {
        return Some(format!("付款 {payment} 退回"));
    }
    if let Some(number) = text.strip_prefix("opening receivable ").and_then(|r| r.strip_suffix(" taken over")) {
        return Some(format!("期初应收 {number} 转入"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_the_ledger_writes_reads_in_chinese_with_its_numbers_and_names() {
        for (english, chinese) in [
            ("invoice 2026-000001 to Shanghai Trading Co.", "开具发票 2026-000001（Shanghai Trading Co.）"),
            ("cost of goods of order SO-1, shipment SH-1", "订单 SO-1 发货 SH-1 的销售成本"),
            ("payment P-7 received (bank ref 42)", "收到付款 P-7（bank ref 42）"),
            ("payment P-7 applied to invoice 2026-000001", "付款 P-7 核销发票 2026-000001"),
            ("short payment on invoice 2026-000001", "发票 2026-000001 少付差额"),
            ("refund of payment P-7", "付款 P-7 退款"),
            ("payment return of payment P-7", "付款 P-7 退回"),
            ("write-off of invoice 2026-000001", "发票 2026-000001 坏账核销"),
            ("opening receivable 2025-000042 taken over", "期初应收 2025-000042 转入"),
            ("opening stock taken over", "期初库存转入"),
        ] {
            assert_eq!(description(Lang::ZhCn, english), chinese);
            assert_eq!(description(Lang::En, english), english);
        }
    }

    #[test]
    fn a_description_of_another_form_is_shown_as_stored() {
        for text in ["manual correction", "payment P-7 received without a bracket", "invoice without a customer", ""] {
            assert_eq!(description(Lang::ZhCn, text), text);
        }
    }
}
