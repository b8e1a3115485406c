//! The books' time zone: a Shanghai company's invoice issued at 01:30 on New Year's Day (still
//! 31 December in UTC) is dated, numbered and posted in the new year, due by its terms from that
//! day, and a December already closed does not refuse it; the same instant in books kept in UTC
//! falls in December. The zone is chosen before the first entry and refused after.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use cloverleaf_finance::{Error, Ledger};
use cloverleaf_testkit::testdb::ScratchDb;
use sqlx::Row;

use crate::harness::{date, dec};

/// 2026-12-31 17:30 UTC: 2027-01-01 01:30 in Shanghai.
fn new_years_night() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 31, 17, 30, 0).unwrap()
}

/// A seeded ledger on a database of its own, its books kept in `zone` (`None`: as new books are).
async fn books(zone: Option<Tz>) -> Option<(ScratchDb, Ledger)> {
    let db = ScratchDb::new().await?;
    let ledger = Ledger::connect(&db.url()).await.unwrap();
    if let Some(zone) = zone {
        ledger.set_book_zone(zone).await.unwrap();
    }
    let today = ledger.book_date(new_years_night()).await.unwrap();
    ledger.seed_demo_company(today).await.unwrap();
    Some((db, ledger))
}

/// The date and period of the journal entry of `invoice_id`'s issue.
async fn posting(ledger: &Ledger, invoice_id: &str) -> (String, String) {
    let row = sqlx::query("SELECT entry_date, period FROM journal_entries WHERE document = $1 AND kind = 'invoice'")
        .bind(invoice_id)
        .fetch_one(ledger.pool())
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_shanghai_invoice_after_midnight_is_dated_numbered_and_posted_in_the_new_year() {
    let Some((db, ledger)) = books(Some(chrono_tz::Asia::Shanghai)).await else { return };
    assert_eq!(ledger.book_zone().await.unwrap(), chrono_tz::Asia::Shanghai);
    // December is closed at the year's end; the invoice written after midnight belongs to January.
    ledger.close_period("close-dec", new_years_night(), date("2026-12-31")).await.unwrap();
    let invoice = ledger.issue_invoice("inv-1", new_years_night(), "SO-1", "C-004", dec("100.00")).await.unwrap();
    assert_eq!(invoice.invoice_number, "2027-000001");
    assert_eq!(invoice.due_date, date("2027-01-31"), "30 days' terms from 1 January");
    assert_eq!(posting(&ledger, &invoice.invoice_id).await, ("2027-01-01".to_string(), "2027-01".to_string()));

    // Another handle on the same books (another node, a worker) reads the zone they are kept in.
    let other = Ledger::connect(&db.url()).await.unwrap();
    assert_eq!(other.book_date(new_years_night()).await.unwrap(), date("2027-01-01"));

    // The books hold entries now: the zone stays.
    let refused = ledger.set_book_zone(Tz::UTC).await.unwrap_err();
    match &refused {
        Error::Input { field, problem } => {
            assert_eq!(field, "book_time_zone");
            assert!(problem.contains("Asia/Shanghai") && problem.contains("before the first entry"), "{problem}");
        }
        other => panic!("expected a refusal of the input, got {other:?}"),
    }
    assert_eq!(other.book_zone().await.unwrap(), chrono_tz::Asia::Shanghai);
    // Naming the zone the books are kept in again changes nothing and is no error.
    ledger.set_book_zone(chrono_tz::Asia::Shanghai).await.unwrap();
}

#[tokio::test]
async fn books_kept_in_utc_put_the_same_instant_in_december() {
    let Some((_db, ledger)) = books(None).await else { return };
    assert_eq!(ledger.book_zone().await.unwrap(), Tz::UTC);
    let invoice = ledger.issue_invoice("inv-1", new_years_night(), "SO-1", "C-004", dec("100.00")).await.unwrap();
    assert_eq!(invoice.invoice_number, "2026-000001");
    assert_eq!(posting(&ledger, &invoice.invoice_id).await, ("2026-12-31".to_string(), "2026-12".to_string()));
    // December closed: the same invoice's posting would be refused there.
    ledger.close_period("close-dec", new_years_night(), date("2026-12-31")).await.unwrap();
    let refused = ledger.issue_invoice("inv-2", new_years_night(), "SO-2", "C-004", dec("100.00")).await.unwrap_err();
    assert!(matches!(refused, Error::PeriodClosed { .. }), "{refused:?}");
}
