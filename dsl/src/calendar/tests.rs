use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use super::*;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn days(from: &str, to: &str) -> Vec<NaiveDate> {
    day(from).iter_days().take_while(|d| *d <= day(to)).collect()
}

/// A wall-clock time in `zone` as an instant.
fn at(zone: Tz, s: &str) -> DateTime<Utc> {
    let wall = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    zone.from_local_datetime(&wall).earliest().unwrap().to_utc()
}

/// An instant shown as a wall-clock time in `zone`.
fn wall_in(zone: Tz, t: DateTime<Utc>) -> String {
    t.with_timezone(&zone).format("%Y-%m-%d %a %H:%M %Z").to_string()
}

const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;
const BERLIN: Tz = chrono_tz::Europe::Berlin;

/// The Spring Festival and National Day weeks of China's 2026 calendar, with their make-up days.
fn cn() -> Calendar {
    let mut holidays = days("2026-02-15", "2026-02-23");
    holidays.extend(days("2026-09-25", "2026-09-27"));
    holidays.extend(days("2026-10-01", "2026-10-07"));
    let workdays = ["2026-02-14", "2026-02-28", "2026-09-20", "2026-10-10"].map(day);
    Calendar::new("cn", SHANGHAI)
        .with_hours(&[(9 * 60, 12 * 60), (13 * 60, 18 * 60)])
        .unwrap()
        .with_days(holidays, workdays)
        .unwrap()
}

fn berlin() -> Calendar {
    Calendar::new("berlin", BERLIN).with_hours(&[(9 * 60, 17 * 60)]).unwrap()
}

#[test]
fn working_days_follow_the_week_holidays_and_make_up_days() {
    let cal = cn();
    assert!(cal.is_working_day(day("2026-02-13")), "a Friday");
    assert!(cal.is_working_day(day("2026-02-14")), "a make-up Saturday");
    assert!(!cal.is_working_day(day("2026-02-16")), "a holiday Monday");
    assert!(!cal.is_working_day(day("2026-02-21")), "a Saturday inside the holiday");
    assert!(!cal.is_working_day(day("2026-03-07")), "a plain Saturday");
    assert!(cal.is_working_day(day("2026-09-20")), "a make-up Sunday");
}

#[test]
fn three_business_days_from_the_friday_before_spring_festival() {
    // Friday 16:00; Saturday the 14th is worked, the 15th to the 23rd are off.
    let cal = cn();
    let due = cal.add_days(at(SHANGHAI, "2026-02-13 16:00"), 3).unwrap();
    assert_eq!(wall_in(SHANGHAI, due), "2026-02-25 Wed 16:00 CST");
    // The date alone moves the same way.
    assert_eq!(cal.add_days_to_date(day("2026-02-13"), 3), Some(day("2026-02-25")));
    assert_eq!(cal.add_days_to_date(day("2026-02-13"), 1), Some(day("2026-02-14")));
}

#[test]
fn a_task_opened_on_a_holiday_counts_from_the_next_working_morning() {
    // Friday 25 September is Mid-Autumn; the 28th-30th work; National Day is off until the 7th.
    let cal = cn();
    let due = cal.add_days(at(SHANGHAI, "2026-09-25 16:00"), 3).unwrap();
    assert_eq!(wall_in(SHANGHAI, due), "2026-10-08 Thu 09:00 CST");
    // After hours on a working day, the count starts the next working morning too.
    let due = cal.add_days(at(SHANGHAI, "2026-09-30 19:30"), 1).unwrap();
    assert_eq!(wall_in(SHANGHAI, due), "2026-10-09 Fri 09:00 CST");
    // In the lunch break, from the afternoon's start.
    let due = cal.add_days(at(SHANGHAI, "2026-03-02 12:30"), 2).unwrap();
    assert_eq!(wall_in(SHANGHAI, due), "2026-03-04 Wed 13:00 CST");
}

#[test]
fn business_hours_skip_lunch_nights_weekends_and_holidays() {
    let cal = cn();
    let friday = at(SHANGHAI, "2026-02-13 16:00");
    // Exactly to the end of the day: 18:00, not Saturday 09:00.
    assert_eq!(wall_in(SHANGHAI, cal.add_working_time(friday, 2 * 3600).unwrap()), "2026-02-13 Fri 18:00 CST");
    // Two hours on Friday, two on the make-up Saturday morning.
    assert_eq!(wall_in(SHANGHAI, cal.add_working_time(friday, 4 * 3600).unwrap()), "2026-02-14 Sat 11:00 CST");
    // Through Saturday's lunch break and over the holiday week.
    assert_eq!(wall_in(SHANGHAI, cal.add_working_time(friday, 8 * 3600).unwrap()), "2026-02-14 Sat 16:00 CST");
    assert_eq!(wall_in(SHANGHAI, cal.add_working_time(friday, 12 * 3600).unwrap()), "2026-02-24 Tue 11:00 CST");
    // Backward: four working hours before Tuesday 11:00 is Saturday 16:00.
    let tuesday = at(SHANGHAI, "2026-02-24 11:00");
    assert_eq!(wall_in(SHANGHAI, cal.add_working_time(tuesday, -4 * 3600).unwrap()), "2026-02-14 Sat 16:00 CST");
    assert_eq!(cal.add_working_time(tuesday, 0), Some(tuesday));
}

#[test]
fn counting_back_mirrors_counting_forward() {
    let cal = cn();
    assert_eq!(cal.add_days_to_date(day("2026-02-25"), -3), Some(day("2026-02-13")));
    assert_eq!(cal.add_days_to_date(day("2026-10-08"), -1), Some(day("2026-09-30")));
    let due = cal.add_days(at(SHANGHAI, "2026-02-25 16:00"), -3).unwrap();
    assert_eq!(wall_in(SHANGHAI, due), "2026-02-13 Fri 16:00 CST");
    // Outside working hours, back from the end of the last working period.
    let due = cal.add_days(at(SHANGHAI, "2026-02-24 07:00"), -1).unwrap();
    assert_eq!(wall_in(SHANGHAI, due), "2026-02-13 Fri 18:00 CST");
    assert_eq!(cal.add_days_to_date(day("2026-02-21"), 0), Some(day("2026-02-21")));
}

#[test]
fn business_days_keep_the_wall_clock_time_across_the_spring_forward() {
    // Berlin moves from CET (UTC+1) to CEST (UTC+2) on Sunday 29 March 2026.
    let cal = berlin();
    let friday = at(BERLIN, "2026-03-27 10:00");
    assert_eq!(friday.to_rfc3339(), "2026-03-27T09:00:00+00:00");
    let due = cal.add_days(friday, 1).unwrap();
    assert_eq!(wall_in(BERLIN, due), "2026-03-30 Mon 10:00 CEST");
    assert_eq!(due.to_rfc3339(), "2026-03-30T08:00:00+00:00");
    // Six working hours from Friday 15:00: two on Friday, four on Monday (in summer time).
    let due = cal.add_working_time(at(BERLIN, "2026-03-27 15:00"), 6 * 3600).unwrap();
    assert_eq!(wall_in(BERLIN, due), "2026-03-30 Mon 13:00 CEST");
    // And back across the fall-back on 25 October.
    let due = cal.add_days(at(BERLIN, "2026-10-23 10:00"), 1).unwrap();
    assert_eq!(wall_in(BERLIN, due), "2026-10-26 Mon 10:00 CET");
}

#[test]
fn working_hours_that_a_transition_cuts_are_real_time() {
    // A calendar working every day, round the clock: business hours are elapsed hours, so 24
    // of them across the spring-forward end at 13:00 summer time, 24 real hours later.
    let cal = Calendar::new("always", BERLIN).with_week([true; 7]).unwrap();
    let saturday = at(BERLIN, "2026-03-28 12:00");
    let due = cal.add_working_time(saturday, 24 * 3600).unwrap();
    assert_eq!(wall_in(BERLIN, due), "2026-03-29 Sun 13:00 CEST");
    assert_eq!((due - saturday).num_hours(), 24);
    // A period starting inside the gap starts when the gap ends.
    let night = Calendar::new("night", BERLIN).with_week([true; 7]).unwrap().with_hours(&[(150, 300)]).unwrap();
    let start = night.next_working_instant(at(BERLIN, "2026-03-29 00:00")).unwrap();
    assert_eq!(wall_in(BERLIN, start), "2026-03-29 Sun 03:00 CEST");
    // 02:30-05:00 on that day holds two real hours.
    assert_eq!(wall_in(BERLIN, night.add_working_time(start, 2 * 3600).unwrap()), "2026-03-29 Sun 05:00 CEST");
}

#[test]
fn a_day_can_end_at_midnight() {
    let cal = Calendar::new("late", SHANGHAI).with_hours(&[(20 * 60, DAY_MINUTES)]).unwrap();
    let due = cal.add_working_time(at(SHANGHAI, "2026-03-02 23:00"), 2 * 3600).unwrap();
    assert_eq!(wall_in(SHANGHAI, due), "2026-03-03 Tue 21:00 CST");
}

#[test]
fn an_absurd_calendar_gives_up_instead_of_walking_for_ever() {
    // One minute of work a week: 10,000 business hours would take eleven millennia.
    let cal = Calendar::new("sparse", SHANGHAI)
        .with_week([true, false, false, false, false, false, false])
        .unwrap()
        .with_hours(&[(540, 541)])
        .unwrap();
    let monday = at(SHANGHAI, "2026-03-02 09:00");
    assert_eq!(cal.add_working_time(monday, i64::from(MAX_COUNT) * 3600), None);
    assert_eq!(
        cal.add_working_time(monday, 120).map(|t| wall_in(SHANGHAI, t)),
        Some("2026-03-09 Mon 09:01 CST".into())
    );
}

#[test]
fn invalid_calendars_are_refused() {
    let cal = Calendar::new("x", SHANGHAI);
    assert_eq!(cal.clone().with_week([false; 7]).unwrap_err(), Error::NoWorkingDays("x".into()));
    assert!(matches!(cal.clone().with_hours(&[(600, 540)]), Err(Error::BadPeriod(_))));
    assert!(matches!(cal.clone().with_hours(&[(0, DAY_MINUTES + 1)]), Err(Error::BadPeriod(_))));
    assert_eq!(
        cal.clone().with_hours(&[(540, 720), (700, 800)]).unwrap_err().to_string(),
        "working hours 09:00-12:00 and 11:40-13:20 overlap"
    );
    assert_eq!(
        cal.with_days([day("2026-02-14")], [day("2026-02-14")]).unwrap_err(),
        Error::Conflict(day("2026-02-14"))
    );
}

#[test]
fn the_serialised_form_lists_every_day_and_round_trips() {
    let cal = cn();
    let json = serde_json::to_value(&cal).unwrap();
    assert_eq!(json["zone"], "Asia/Shanghai");
    assert_eq!(json["week"], serde_json::json!(["mon", "tue", "wed", "thu", "fri"]));
    assert_eq!(json["hours"], serde_json::json!(["09:00-12:00", "13:00-18:00"]));
    assert_eq!(json["workdays"], serde_json::json!(["2026-02-14", "2026-02-28", "2026-09-20", "2026-10-10"]));
    let back: Calendar = serde_json::from_value(json).unwrap();
    assert_eq!(back, cal);
    for (broken, message) in [
        (r#"{"name":"x","zone":"Mars/Base","week":["mon"],"hours":[]}"#, "unknown time zone `Mars/Base`"),
        (r#"{"name":"x","zone":"UTC","week":["mo"],"hours":[]}"#, "unknown weekday `mo`"),
        (r#"{"name":"x","zone":"UTC","week":[],"hours":[]}"#, "calendar `x` has no working weekday"),
        (r#"{"name":"x","zone":"UTC","week":["mon"],"hours":["9-17"]}"#, "are not `HH:MM-HH:MM`"),
        (r#"{"name":"x","zone":"UTC","week":["mon"],"hours":[],"holidays":["2026-02-30"]}"#, "invalid date"),
    ] {
        let err = serde_json::from_str::<Calendar>(broken).unwrap_err().to_string();
        assert!(err.contains(message), "{broken}: {err}");
    }
}

#[test]
fn clocks_parse_from_midnight_to_midnight() {
    assert_eq!(parse_clock("09:00"), Some(540));
    assert_eq!(parse_clock("9:30"), Some(570));
    assert_eq!(parse_clock("24:00"), Some(DAY_MINUTES));
    for bad in ["24:01", "12:60", "1200", "123:00", "9:5", ""] {
        assert_eq!(parse_clock(bad), None, "{bad}");
    }
}

#[test]
fn a_calendar_says_which_coming_years_it_lists_no_holidays_for() {
    let cal = cn();
    assert_eq!(cal.listed_years(), BTreeSet::from([2026]));
    // Inside a listed year, far from its end: nothing missing.
    assert_eq!(cal.unlisted_years(day("2026-06-30")), Vec::<i32>::new());
    // From 92 days before 2027 begins, 2027 is wanted too.
    assert_eq!(cal.unlisted_years(day("2026-09-30")), Vec::<i32>::new());
    assert_eq!(cal.unlisted_years(day("2026-10-01")), vec![2027]);
    assert_eq!(cal.unlisted_years(day("2026-12-31")), vec![2027]);
    // In a year it does not list at all.
    assert_eq!(cal.unlisted_years(day("2027-03-01")), vec![2027]);
    assert_eq!(cal.unlisted_years(day("2027-12-01")), vec![2027, 2028]);
    // Before its first listed year: that year is missing, not the listed one.
    assert_eq!(cal.unlisted_years(day("2025-12-15")), vec![2025]);
    // A calendar of plain weeks by design lists no year and misses none.
    let weekdays = Calendar::new("weekdays", chrono_tz::UTC);
    assert_eq!(weekdays.unlisted_years(day("2026-12-31")), Vec::<i32>::new());
}
