//! Tests of schedules: pattern errors, daylight-saving transitions against a brute-force
//! oracle, and catch-up.

use chrono::{Datelike as _, NaiveDate, Offset as _, TimeDelta, TimeZone as _};

use super::*;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).expect("test time is valid RFC 3339").to_utc()
}

/// The next `n` fires of `pattern` in `zone` strictly after `from`, as RFC 3339 with offset.
fn fires(pattern: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
    Schedule::parse(pattern, Some(zone))
        .expect("test pattern parses")
        .upcoming(at(from), n)
        .iter()
        .map(DateTime::to_rfc3339)
        .collect()
}

fn error(pattern: &str, zone: Option<&str>) -> ScheduleError {
    Schedule::parse(pattern, zone).expect_err("test pattern is invalid")
}

#[test]
fn month_end_close_fires_on_the_last_day_at_18_in_shanghai() {
    assert_eq!(
        fires("0 18 L * *", "Asia/Shanghai", "2026-01-15T00:00:00Z", 4),
        [
            "2026-01-31T18:00:00+08:00",
            "2026-02-28T18:00:00+08:00",
            "2026-03-31T18:00:00+08:00",
            "2026-04-30T18:00:00+08:00",
        ]
    );
}

#[test]
fn month_end_close_finds_leap_february() {
    assert_eq!(
        fires("0 18 L * *", "Asia/Shanghai", "2028-01-31T10:00:00Z", 2),
        ["2028-02-29T18:00:00+08:00", "2028-03-31T18:00:00+08:00"]
    );
}

#[test]
fn restricted_day_of_month_and_day_of_week_match_either() {
    // 1 January 2026 is a Thursday.
    assert_eq!(
        fires("0 9 1 * MON", "UTC", "2026-01-01T00:00:00Z", 4),
        [
            "2026-01-01T09:00:00+00:00",
            "2026-01-05T09:00:00+00:00",
            "2026-01-12T09:00:00+00:00",
            "2026-01-19T09:00:00+00:00",
        ]
    );
}

#[test]
fn plus_prefix_requires_both_day_of_month_and_day_of_week() {
    assert_eq!(
        fires("0 9 1 * +MON", "UTC", "2026-01-01T00:00:00Z", 3),
        ["2026-06-01T09:00:00+00:00", "2027-02-01T09:00:00+00:00", "2027-03-01T09:00:00+00:00",]
    );
    // The 28-year weekday cycle: a leap day on a Monday is valid, though rare.
    assert_eq!(fires("0 0 29 2 +MON", "UTC", "2026-01-01T00:00:00Z", 1), ["2044-02-29T00:00:00+00:00"]);
}

#[test]
fn zero_seven_and_sun_are_all_sunday() {
    let sundays = ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"];
    for pattern in ["0 0 * * 0", "0 0 * * 7", "0 0 * * SUN", "0 0 * * sun"] {
        assert_eq!(fires(pattern, "UTC", "2026-01-01T00:00:00Z", 2), sundays, "{pattern}");
    }
    // A range ending in SUN (7) reaches the end of the week.
    assert_eq!(
        fires("0 0 * * FRI-SUN", "UTC", "2026-01-01T00:00:00Z", 3),
        ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",]
    );
}

#[test]
fn w_picks_the_nearest_weekday_within_the_month() {
    // 15 Feb and 15 Mar 2026 are Sundays, 15 Aug a Saturday, 1 Aug a Saturday.
    assert_eq!(
        fires("0 0 15W * *", "UTC", "2026-01-01T00:00:00Z", 4),
        [
            "2026-01-15T00:00:00+00:00",
            "2026-02-16T00:00:00+00:00",
            "2026-03-16T00:00:00+00:00",
            "2026-04-15T00:00:00+00:00",
        ]
    );
    assert_eq!(
        fires("0 0 15W,1W 8 *", "UTC", "2026-01-01T00:00:00Z", 2),
        ["2026-08-03T00:00:00+00:00", "2026-08-14T00:00:00+00:00"]
    );
    assert_eq!(
        fires("0 0 LW * *", "UTC", "2026-01-01T00:00:00Z", 2),
        ["2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00"]
    );
}

#[test]
fn hash_picks_the_nth_weekday_and_l_the_last() {
    assert_eq!(
        fires("0 0 * * 5#2", "UTC", "2026-01-01T00:00:00Z", 3),
        ["2026-01-09T00:00:00+00:00", "2026-02-13T00:00:00+00:00", "2026-03-13T00:00:00+00:00",]
    );
    let last_fridays = ["2026-01-30T00:00:00+00:00", "2026-02-27T00:00:00+00:00", "2026-03-27T00:00:00+00:00"];
    for pattern in ["0 0 * * 5#L", "0 0 * * FRI#L", "0 0 * * 5L"] {
        assert_eq!(fires(pattern, "UTC", "2026-01-01T00:00:00Z", 3), last_fridays, "{pattern}");
    }
}

#[test]
fn six_fields_put_seconds_first() {
    assert_eq!(
        fires("30 0 18 L * *", "Asia/Shanghai", "2026-01-15T00:00:00Z", 2),
        ["2026-01-31T18:00:30+08:00", "2026-02-28T18:00:30+08:00"]
    );
    assert_eq!(
        fires("*/20 * * * * *", "UTC", "2026-01-01T00:00:00Z", 3),
        ["2026-01-01T00:00:20+00:00", "2026-01-01T00:00:40+00:00", "2026-01-01T00:01:00+00:00",]
    );
}

#[test]
fn zone_defaults_to_utc() {
    let schedule = Schedule::parse("0 18 L * *", None).expect("parses");
    assert_eq!(schedule.zone(), Tz::UTC);
    assert_eq!(
        schedule.next_after(at("2026-01-15T00:00:00Z")).map(|fire| fire.to_rfc3339()),
        Some("2026-01-31T18:00:00+00:00".to_string())
    );
}

#[test]
fn nicknames_expand_and_keep_their_text() {
    assert_eq!(
        fires("@daily", "Europe/Berlin", "2026-01-01T00:00:00Z", 2),
        ["2026-01-02T00:00:00+01:00", "2026-01-03T00:00:00+01:00"]
    );
    assert_eq!(fires("@Monthly", "UTC", "2026-01-15T00:00:00Z", 1), ["2026-02-01T00:00:00+00:00"]);
    let schedule = Schedule::parse("@weekly", None).expect("parses");
    assert_eq!(schedule.pattern(), "@weekly");
}

#[test]
fn next_after_is_strictly_after() {
    let schedule = Schedule::parse("0 18 L * *", Some("Asia/Shanghai")).expect("parses");
    let fire = at("2026-01-31T10:00:00Z");
    assert_eq!(schedule.next_after(fire).map(|next| next.to_rfc3339()), Some("2026-02-28T18:00:00+08:00".to_string()));
    assert_eq!(
        schedule.next_after(fire - TimeDelta::nanoseconds(1)).map(|next| next.to_rfc3339()),
        Some("2026-01-31T18:00:00+08:00".to_string())
    );
}

#[test]
fn invalid_patterns_say_what_and_where() {
    let cases: [(&str, Option<&str>, &str); 17] = [
        ("61 * * * *", Some("minute"), "invalid minute field: 61 is out of range 0-59"),
        ("0 24 * * *", Some("hour"), "invalid hour field: 24 is out of range 0-23"),
        ("0 0 32 * *", Some("day of month"), "invalid day of month field: 32 is out of range 1-31"),
        ("0 0 0 * *", Some("day of month"), "invalid day of month field: 0 is out of range 1-31"),
        ("0 0 1 13 *", Some("month"), "invalid month field: 13 is out of range 1-12"),
        ("0 0 * * 8", Some("day of week"), "invalid day of week field: 8 is out of range 0-7"),
        ("60 0 0 * * *", Some("second"), "invalid second field: 60 is out of range 0-59"),
        ("hello world foo bar baz", Some("minute"), "invalid minute field: `hello` is not a number"),
        ("0 0 * FOO *", Some("month"), "invalid month field: `FOO` is not a month; use 1-12 or JAN-DEC"),
        (
            "0 0 * * monday",
            Some("day of week"),
            "invalid day of week field: `monday` is not a day of the week; use 0-7 or SUN-SAT",
        ),
        ("0 0 * MON *", Some("month"), "invalid month field: `MON` is not a month; use 1-12 or JAN-DEC"),
        ("*/0 * * * *", Some("minute"), "invalid minute field: step 0 in `*/0` never advances; use 1 or more"),
        (
            "0 22-2 * * *",
            Some("hour"),
            "invalid hour field: range 22-2 runs backwards; ranges do not wrap around, so write `22-23,0-2`",
        ),
        (
            "0 0 * * 5#6",
            Some("day of week"),
            "invalid day of week field: `#6` must be #1 to #5 or #L, as in `5#2` (second Friday) or `5#L`",
        ),
        (
            "0 0 * * L",
            Some("day of week"),
            "invalid day of week field: `L` alone is not a day of the week; write `5L` or `5#L` for the last Friday",
        ),
        (
            "5/10 * * * *",
            Some("minute"),
            "invalid minute field: invalid step syntax: single number steps like \"5/10\" are not allowed. Use \"*/10\" for wildcard steps or \"X-Y/10\" for range steps",
        ),
        (
            "@fortnightly",
            None,
            "invalid cron pattern: unknown nickname `@fortnightly`; known nicknames are @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly",
        ),
    ];
    for (pattern, field, message) in cases {
        let error = error(pattern, None);
        assert_eq!(error.to_string(), message, "{pattern}");
        match &error {
            ScheduleError::Pattern { field: found, .. } => assert_eq!(*found, field, "{pattern}"),
            other => panic!("{pattern}: expected a pattern error, got {other:?}"),
        }
    }
}

#[test]
fn wrong_field_counts_are_refused() {
    for (pattern, found) in [("0 0 * *", 4), ("", 0), ("0 0 0 1 1 * 2026", 7), ("1 2 3", 3)] {
        let error = error(pattern, None);
        assert_eq!(error, ScheduleError::FieldCount { found });
        assert_eq!(
            error.to_string(),
            format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), \
                 or 6 with seconds first; found {found}"
            )
        );
    }
    assert!(error("0 0 * *", None).help().contains("`0 18 L * *`"));
}

#[test]
fn unknown_zones_suggest_the_closest_name() {
    let cases = [
        ("Asia/Shangai", Some("Asia/Shanghai")),
        ("europe/berlin", Some("Europe/Berlin")),
        ("Shanghai", Some("Asia/Shanghai")),
        ("Mars/Olympus_Mons", None),
    ];
    for (zone, suggestion) in cases {
        let error = error("0 18 L * *", Some(zone));
        assert_eq!(error.to_string(), format!("unknown time zone `{zone}`"));
        assert_eq!(
            error,
            ScheduleError::UnknownZone { zone: zone.to_string(), suggestion: suggestion.map(str::to_string) }
        );
    }
    assert_eq!(error("0 18 L * *", Some("Asia/Shangai")).help(), "did you mean `Asia/Shanghai`?");
}

#[test]
fn patterns_that_never_fire_are_refused() {
    for pattern in ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *", "0 0 30 2 +MON"] {
        let error = error(pattern, None);
        assert_eq!(
            error.to_string(),
            format!(
                "`{pattern}` never fires: no date matches its day-of-month, month and \
                 day-of-week fields"
            )
        );
        assert!(error.help().contains("February"));
    }
    // OR-ed with a day of week, Feb 30 still fires on Mondays in February.
    assert!(Schedule::parse("0 0 30 2 MON", None).is_ok());
}

#[test]
fn fixed_time_in_spring_gap_fires_once_after_the_gap() {
    // Berlin springs from 02:00 CET to 03:00 CEST on 29 March 2026.
    assert_eq!(
        fires("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3),
        ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00",]
    );
    // Several skipped times coalesce into the one fire at 03:00; 03:00 itself too.
    assert_eq!(
        fires("0,30 2,3 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 3),
        ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:00:00+02:00",]
    );
}

#[test]
fn fixed_time_in_fall_overlap_fires_once_at_the_first() {
    // Berlin falls back from 03:00 CEST to 02:00 CET on 25 October 2026.
    assert_eq!(
        fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    );
    // Asking from inside the overlap's second half does not fire 02:30 again.
    assert_eq!(fires("30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 1), ["2026-10-26T02:30:00+01:00"]);
    // New York's repeated hour is 01:00-02:00 on 1 November 2026.
    assert_eq!(
        fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
    );
}

#[test]
fn lists_of_fixed_times_fire_once_on_transition_days() {
    // croner alone treats `2,14` as an interval job: it skips 02:30 on 29 March and fires
    // it twice on 25 October. We fire it once on both days.
    assert_eq!(
        fires("30 2,14 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 3),
        ["2026-03-28T14:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T14:30:00+02:00",]
    );
    assert_eq!(
        fires("30 2,14 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 3),
        ["2026-10-24T14:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T14:30:00+01:00",]
    );
}

#[test]
fn interval_skips_the_gap_and_repeats_the_overlap() {
    assert_eq!(
        fires("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", 3),
        ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00",]
    );
    assert_eq!(
        fires("*/30 * * * *", "Europe/Berlin", "2026-10-24T23:50:00Z", 5),
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ]
    );
    // Starting inside the overlap's first half still sees its second half.
    assert_eq!(
        fires("0 * * * *", "Europe/Berlin", "2026-10-25T00:40:00Z", 2),
        ["2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]
    );
}

#[test]
fn half_hour_and_whole_day_shifts_follow_the_same_policy() {
    // Lord Howe springs from 02:00 to 02:30 on 4 October 2026.
    assert_eq!(
        fires("15 2 * * *", "Australia/Lord_Howe", "2026-10-02T12:00:00Z", 3),
        ["2026-10-03T02:15:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00",]
    );
    // Samoa skipped 30 December 2011: a daily noon job fires once, as the day resumes.
    assert_eq!(
        fires("0 12 * * *", "Pacific/Apia", "2011-12-29T00:00:00Z", 3),
        ["2011-12-29T12:00:00-10:00", "2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00",]
    );
}

#[test]
fn upcoming_is_strictly_increasing_and_fixed_times_fire_once_a_day() {
    let zones = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"];
    let patterns =
        ["30 2 * * *", "0 1 * * *", "0,30 2,3 * * *", "*/30 * * * *", "0 18 L * *", "0 9 1 * MON", "15 */2 * * *"];
    let start = at("2026-01-01T00:00:00Z");
    let end = at("2027-01-01T00:00:00Z");
    for zone in zones {
        for pattern in patterns {
            let schedule = Schedule::parse(pattern, Some(zone)).expect("parses");
            let year: Vec<DateTime<Tz>> =
                std::iter::successors(schedule.next_after(start), |fire| schedule.next_after(fire.to_utc()))
                    .take_while(|fire| fire.to_utc() < end)
                    .collect();
            assert!(!year.is_empty(), "{pattern} in {zone}");
            for pair in year.windows(2) {
                assert!(pair[0] < pair[1], "{pattern} in {zone}: {pair:?}");
            }
            // Cross-check `missed` against `upcoming` over the same year.
            let missed = schedule.missed(start, end - TimeDelta::seconds(1));
            let count = year.len() as u64;
            assert_eq!(missed.count, count.min(MISSED_COUNT_LIMIT), "{pattern} in {zone}");
            assert_eq!(missed.capped, count > MISSED_COUNT_LIMIT, "{pattern} in {zone}");
            assert_eq!(missed.latest, year.last().map(DateTime::to_utc));
        }
        // Every local day of the year has exactly one fire of a daily fixed-time job.
        for pattern in ["30 2 * * *", "0 1 * * *", "0 0 * * *"] {
            let schedule = Schedule::parse(pattern, Some(zone)).expect("parses");
            let from = at("2026-01-01T00:00:00Z").with_timezone(&schedule.zone());
            let days: Vec<NaiveDate> = schedule
                .upcoming(from.to_utc() - TimeDelta::days(1), 400)
                .iter()
                .map(|fire| fire.date_naive())
                .skip_while(|day| day.year() < 2026)
                .take_while(|day| day.year() < 2027)
                .collect();
            assert_eq!(days.len(), 365, "{pattern} in {zone}");
            for pair in days.windows(2) {
                assert_eq!(pair[1] - pair[0], TimeDelta::days(1), "{pattern} in {zone}");
            }
        }
    }
}

#[test]
fn walks_agree_with_brute_force_around_every_transition() {
    // The oracle maps every matching wall-clock minute of four days around a transition to
    // its instants; `next_instant` and `last_at_or_before` must find the same neighbours.
    let zones = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"];
    let patterns = ["*/30 * * * *", "30 2 * * *", "0,30 0-3 * * *", "15 */2 * * *", "0 0 * * *"];
    for zone in zones {
        let tz: Tz = zone.parse().expect("known zone");
        let offset = |at: DateTime<Utc>| tz.offset_from_utc_datetime(&at.naive_utc()).fix();
        let transitions: Vec<DateTime<Utc>> = (0..365 * 24)
            .map(|hour| at("2026-01-01T00:00:00Z") + TimeDelta::hours(hour))
            .filter(|hour| offset(*hour) != offset(*hour + TimeDelta::hours(1)))
            .collect();
        assert_eq!(transitions.len(), 2, "{zone}");
        for pattern in patterns {
            let schedule = Schedule::parse(pattern, Some(zone)).expect("parses");
            for transition in &transitions {
                let start = schedule.wall(*transition - TimeDelta::days(2));
                let oracle: std::collections::BTreeSet<DateTime<Utc>> = (0..4 * 24 * 60)
                    .map(|minute| start + TimeDelta::minutes(minute))
                    .filter(|wall| schedule.cron.is_time_matching(wall).expect("matches"))
                    .flat_map(|wall| schedule.instants(wall).into_iter().flatten())
                    .collect();
                for step in 0..2 * 24 * 6 {
                    let probe = *transition - TimeDelta::days(1) + TimeDelta::minutes(10 * step);
                    assert_eq!(
                        schedule.next_instant(probe),
                        oracle.range(probe + TimeDelta::seconds(1)..).next().copied(),
                        "next after {probe}: {pattern} in {zone}"
                    );
                    assert_eq!(
                        schedule.last_at_or_before(probe),
                        oracle.range(..=probe).next_back().copied(),
                        "last at {probe}: {pattern} in {zone}"
                    );
                }
            }
        }
    }
}

#[test]
fn missed_coalesces_a_quarter_of_month_end_closes() {
    let schedule = Schedule::parse("0 18 L * *", Some("Asia/Shanghai")).expect("parses");
    let missed = schedule.missed(at("2026-01-31T10:00:00Z"), at("2026-05-15T00:00:00Z"));
    assert_eq!(missed, Missed { count: 3, capped: false, latest: Some(at("2026-04-30T10:00:00Z")) });
    // `now` is inclusive, `last_fire` exclusive.
    let on_time = schedule.missed(at("2026-01-31T10:00:00Z"), at("2026-02-28T10:00:00Z"));
    assert_eq!((on_time.count, on_time.latest), (1, Some(at("2026-02-28T10:00:00Z"))));
    let nothing = schedule.missed(at("2026-01-31T10:00:00Z"), at("2026-02-28T09:59:59Z"));
    assert_eq!(nothing, Missed { count: 0, capped: false, latest: None });
}

#[test]
fn missed_is_bounded_after_years_of_downtime() {
    let schedule = Schedule::parse("* * * * * *", Some("Europe/Berlin")).expect("parses");
    let missed = schedule.missed(at("2020-01-01T00:00:00Z"), at("2026-10-25T01:30:00.5Z"));
    assert_eq!(missed, Missed { count: MISSED_COUNT_LIMIT, capped: true, latest: Some(at("2026-10-25T01:30:00Z")) });
    // An every-second schedule fires every real second through both transitions.
    for (from, to) in
        [("2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z"), ("2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z")]
    {
        let missed = schedule.missed(at(from), at(to));
        assert_eq!((missed.count, missed.latest), (3600, Some(at(to))), "{from}");
    }
    let monthly = Schedule::parse("0 18 L * *", Some("Asia/Shanghai")).expect("parses");
    let missed = monthly.missed(at("2000-01-31T10:00:00Z"), at("2026-05-15T00:00:00Z"));
    assert_eq!((missed.count, missed.capped), (315, false));
    assert_eq!(missed.latest, Some(at("2026-04-30T10:00:00Z")));
}

#[test]
fn serde_round_trips_as_cron_and_tz() {
    let schedule = Schedule::parse("0 18 L * *", Some("Asia/Shanghai")).expect("parses");
    let json = serde_json::to_string(&schedule).expect("serialises");
    assert_eq!(json, r#"{"cron":"0 18 L * *","tz":"Asia/Shanghai"}"#);
    let back: Schedule = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back, schedule);

    let utc: Schedule = serde_json::from_str(r#"{"cron":"@daily"}"#).expect("deserialises");
    assert_eq!(utc, Schedule::parse("@daily", Some("UTC")).expect("parses"));

    let bad =
        serde_json::from_str::<Schedule>(r#"{"cron":"0 18 L * *","tz":"Asia/Shangai"}"#).expect_err("unknown zone");
    assert!(bad.to_string().starts_with("unknown time zone `Asia/Shangai`"), "{bad}");
    let bad = serde_json::from_str::<Schedule>(r#"{"cron":"61 * * * *"}"#).expect_err("bad");
    assert!(bad.to_string().starts_with("invalid minute field: 61"), "{bad}");
}

#[test]
fn display_equality_and_description() {
    let schedule = Schedule::parse(" 0 18 L * * ", Some("Asia/Shanghai")).expect("parses");
    assert_eq!(schedule.to_string(), r#""0 18 L * *" in Asia/Shanghai"#);
    assert_eq!(schedule.pattern(), "0 18 L * *");
    assert_eq!(schedule.describe(), "At 18:00, on the last day of the month (Asia/Shanghai)");
    assert_ne!(schedule, Schedule::parse("0 18 L * *", None).expect("parses"));
    assert_ne!(schedule, Schedule::parse("0 0 18 L * *", Some("Asia/Shanghai")).expect("parses"));
}
