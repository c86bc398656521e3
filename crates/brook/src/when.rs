//! ISO-8601 date-times and durations for `--to-datetime` and `--by-duration`, as
//! Kafka's kafka-consumer-groups takes them, without a date library.

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn number(text: &str, what: &str, max: i64) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) && n <= max => Ok(n),
        _ => Err(format!("bad {what} '{text}'")),
    }
}

/// `YYYY-MM-DDTHH:MM[:SS[.sss]][Z|+HH:MM|-HH:MM]` as ms since the epoch; no zone: UTC.
pub fn parse_datetime_ms(text: &str) -> Result<i64, String> {
    let bad = || format!("'{text}': expected YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM]");
    let (date, rest) = text.split_once('T').ok_or_else(bad)?;
    let mut ymd = date.splitn(3, '-');
    let (Some(y), Some(mo), Some(d)) = (ymd.next(), ymd.next(), ymd.next()) else {
        return Err(bad());
    };
    let (y, mo, d) = (
        number(y, "year", 9999)?,
        number(mo, "month", 12)?,
        number(d, "day", 31)?,
    );
    if mo == 0 || d == 0 {
        return Err(bad());
    }
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, zone) = rest.split_at(i);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
        (
            t,
            sign * (number(h, "zone hour", 23)? * 60 + number(m, "zone minute", 59)?),
        )
    } else {
        (rest, 0)
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.split(':');
    let h = number(parts.next().ok_or_else(bad)?, "hour", 23)?;
    let mi = number(parts.next().ok_or_else(bad)?, "minute", 59)?;
    let sec = parts.next().map_or(Ok(0), |x| number(x, "second", 60))?;
    if parts.next().is_some() {
        return Err(bad());
    }
    let ms = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        number(&digits, "fraction", 999)?
    };
    let days = days_from_civil(y, mo, d);
    Ok((((days * 24 + h) * 60 + mi - offset_min) * 60 + sec) * 1000 + ms)
}

/// `PnDTnHnMn.nS` (Java's `Duration.parse` form) as ms.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let bad = || format!("'{text}': expected an ISO-8601 duration such as PT1H or P1DT30M");
    let rest = text.strip_prefix('P').ok_or_else(bad)?;
    let (days, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = 0.0f64;
    if !days.is_empty() {
        let n = days.strip_suffix('D').ok_or_else(bad)?;
        total += n.parse::<f64>().map_err(|_| bad())? * 86_400_000.0;
    }
    let mut number = String::new();
    for c in time.chars() {
        let unit_ms = match c {
            'H' => 3_600_000.0,
            'M' => 60_000.0,
            'S' => 1000.0,
            c if c.is_ascii_digit() || c == '.' => {
                number.push(c);
                continue;
            }
            _ => return Err(bad()),
        };
        total += number.parse::<f64>().map_err(|_| bad())? * unit_ms;
        number.clear();
    }
    if !number.is_empty() || (days.is_empty() && time.is_empty()) {
        return Err(bad());
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_to_epoch_ms() {
        for (text, ms) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2024-05-01T12:00:00Z", 1_714_564_800_000),
            ("2024-05-01T12:00:00.250", 1_714_564_800_250),
            ("2024-05-01T14:00:00+02:00", 1_714_564_800_000),
            ("2024-05-01T07:30-04:30", 1_714_564_800_000),
            ("2000-02-29T00:00:00Z", 951_782_400_000),
        ] {
            assert_eq!(parse_datetime_ms(text), Ok(ms), "{text}");
        }
        for bad in [
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "yesterday",
            "2024-05-01T25:00",
        ] {
            assert!(parse_datetime_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse_to_ms() {
        for (text, ms) in [
            ("PT1H", 3_600_000),
            ("P1DT30M", 88_200_000),
            ("PT0.5S", 500),
            ("P2D", 172_800_000),
        ] {
            assert_eq!(parse_duration_ms(text), Ok(ms), "{text}");
        }
        for bad in ["1H", "P", "PT", "PT5", "PTxH"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
