//! The words of the letters to customers (invoice notices, dunning letters, refund notices), in
//! the customer's language: English, or Simplified Chinese for a customer whose language is
//! `zh-CN` (`Ledger::set_customer_language`). Pure: the jobs pass the facts and write the result
//! to the outbox in their own transaction.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{CURRENCY, Error, Ledger, date_text};

/// The languages letters are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// English (the default).
    En,
    /// Simplified Chinese.
    ZhCn,
}

impl Language {
    /// From a stored or given tag: `en` or `zh-CN` (case does not matter); `None` for another.
    pub fn parse(tag: &str) -> Option<Language> {
        match tag.to_ascii_lowercase().as_str() {
            "en" => Some(Language::En),
            "zh-cn" | "zh-hans" | "zh" => Some(Language::ZhCn),
            _ => None,
        }
    }

    /// The tag as stored.
    pub fn tag(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::ZhCn => "zh-CN",
        }
    }
}

/// An amount as a reader of `language` writes it: `CNY 24,500.00` or `¥24,500.00`, to the cent,
/// with the sign of a credit in front of the currency.
pub fn amount_text(amount: Decimal, language: Language) -> String {
    let rounded = amount.round_dp(2);
    let negative = rounded.is_sign_negative() && !rounded.is_zero();
    let text = format!("{:.2}", rounded.abs());
    let (whole, cents) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let sign = if negative { "-" } else { "" };
    match language {
        Language::ZhCn if CURRENCY == "CNY" => format!("{sign}¥{grouped}.{cents}"),
        _ => format!("{sign}{CURRENCY} {grouped}.{cents}"),
    }
}

/// What an invoice notice says.
pub(crate) struct InvoiceFacts<'a> {
    pub customer: &'a str,
    pub number: &'a str,
    pub id: &'a str,
    pub net: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
    pub due: NaiveDate,
}

/// An invoice notice: (subject, body).
pub(crate) fn invoice_notice(language: Language, f: &InvoiceFacts<'_>) -> (String, String) {
    let money = |amount| amount_text(amount, language);
    let (total, net, tax, due) = (money(f.total), money(f.net), money(f.tax), date_text(f.due));
    match language {
        Language::En => (
            format!("Invoice {}", f.number),
            format!(
                "Dear {},\n\nWe have issued invoice {} for {total} (net {net}, tax {tax}), due on {due}. Please quote \
                 its reference {} with your payment.",
                f.customer, f.number, f.id
            ),
        ),
        Language::ZhCn => (
            format!("发票 {}", f.number),
            format!(
                "尊敬的 {}：\n\n随函附上发票 {}，金额 {total}（不含税 {net}，税额 {tax}），付款到期日为 {due}。\
                 付款时请注明发票参考号 {}。",
                f.customer, f.number, f.id
            ),
        ),
    }
}

/// Another notice about an invoice (a template the wording does not know): (subject, body).
pub(crate) fn invoice_other(language: Language, template: &str, f: &InvoiceFacts<'_>) -> (String, String) {
    let total = amount_text(f.total, language);
    match language {
        Language::En => (
            format!("About invoice {}", f.number),
            format!("Dear {},\n\n{template}: invoice {} for {total}.", f.customer, f.number),
        ),
        Language::ZhCn => (
            format!("关于发票 {}", f.number),
            format!("尊敬的 {}：\n\n{template}：发票 {}，金额 {total}。", f.customer, f.number),
        ),
    }
}

/// A dunning letter of `level` about an overdue invoice, `open` still owed: (subject, body).
pub(crate) fn dunning_letter(
    language: Language,
    level: i64,
    f: &InvoiceFacts<'_>,
    days_overdue: i64,
    open: Decimal,
) -> (String, String) {
    let (total, due, open) = (amount_text(f.total, language), date_text(f.due), amount_text(open, language));
    match language {
        Language::En => (
            match level {
                1 => format!("Reminder: invoice {} is overdue", f.number),
                _ => format!("Second reminder {level}: invoice {} is overdue", f.number),
            },
            format!(
                "Dear {},\n\nInvoice {} for {total} was due on {due} ({days_overdue} days ago). {open} is still open. \
                 Please pay quoting its reference {}.",
                f.customer, f.number, f.id
            ),
        ),
        Language::ZhCn => (
            match level {
                1 => format!("付款提醒：发票 {} 已逾期", f.number),
                _ => format!("第 {level} 次付款提醒：发票 {} 已逾期", f.number),
            },
            format!(
                "尊敬的 {}：\n\n发票 {}（金额 {total}）的付款到期日为 {due}，已逾期 {days_overdue} 天，\
                 尚有 {open} 未付。付款时请注明发票参考号 {}。",
                f.customer, f.number, f.id
            ),
        ),
    }
}

/// A refund notice: (subject, body).
pub(crate) fn refund_notice(language: Language, customer: &str, amount: Decimal, payment_id: &str) -> (String, String) {
    let amount = amount_text(amount, language);
    match language {
        Language::En => (
            "Refund of an over-payment".to_string(),
            format!("Dear {customer},\n\nWe have refunded {amount} of your payment {payment_id}."),
        ),
        Language::ZhCn => (
            "多付款项退款".to_string(),
            format!("尊敬的 {customer}：\n\n您的付款 {payment_id} 中的 {amount} 已退还给您。"),
        ),
    }
}

impl Ledger {
    /// Sets the language of a customer's letters: `en` or `zh-CN`.
    pub async fn set_customer_language(&self, customer_id: &str, language: &str) -> Result<(), Error> {
        let language = Language::parse(language).ok_or_else(|| Error::Input {
            field: "language".into(),
            problem: format!("{language:?} is not a language letters are written in (en, zh-CN)"),
        })?;
        self.update_customer("UPDATE customers SET language = $1 WHERE id = $2", Some(language.tag()), customer_id)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> InvoiceFacts<'static> {
        InvoiceFacts {
            customer: "Shanghai Pumps Co.",
            number: "2026-000007",
            id: "INV-2026-000007",
            net: Decimal::new(100_000, 2),
            tax: Decimal::new(13_000, 2),
            total: Decimal::new(113_000, 2),
            due: NaiveDate::from_ymd_opt(2026, 2, 4).unwrap_or_default(),
        }
    }

    #[test]
    fn letters_speak_the_customers_language_with_the_same_figures() {
        let (subject, body) = invoice_notice(Language::ZhCn, &facts());
        assert_eq!(subject, "发票 2026-000007");
        assert!(body.contains("金额 ¥1,130.00（不含税 ¥1,000.00，税额 ¥130.00），付款到期日为 2026-02-04"), "{body}");
        let (subject, body) = dunning_letter(Language::ZhCn, 2, &facts(), 31, Decimal::new(50_000, 2));
        assert_eq!(subject, "第 2 次付款提醒：发票 2026-000007 已逾期");
        assert!(body.contains("已逾期 31 天，尚有 ¥500.00 未付。付款时请注明发票参考号 INV-2026-000007。"), "{body}");
        let (subject, body) = refund_notice(Language::ZhCn, "Shanghai Pumps Co.", Decimal::new(15_000, 2), "BANK-9");
        assert_eq!(subject, "多付款项退款");
        assert!(body.contains("您的付款 BANK-9 中的 ¥150.00 已退还给您"), "{body}");
        // In English the amounts carry the currency's code.
        let (subject, body) = dunning_letter(Language::En, 1, &facts(), 7, Decimal::new(113_000, 2));
        assert_eq!(subject, "Reminder: invoice 2026-000007 is overdue");
        assert!(body.contains("was due on 2026-02-04 (7 days ago). CNY 1,130.00 is still open."), "{body}");
        let (subject, body) = invoice_notice(Language::En, &facts());
        assert_eq!(subject, "Invoice 2026-000007");
        assert!(
            body.starts_with("Dear Shanghai Pumps Co.,\n\nWe have issued invoice 2026-000007 for CNY 1,130.00"),
            "{body}"
        );
        assert_eq!(amount_text(Decimal::new(-123_456_789, 2), Language::En), "-CNY 1,234,567.89");
        assert_eq!(Language::parse("ZH-cn"), Some(Language::ZhCn));
        assert_eq!(Language::parse("de"), None);
    }
}
