//! How bonded writes a time for people and for JSON: RFC 3339 in UTC, to the second
//! (`2026-12-01T06:50:08Z`). One function, so no message, table or answer prints the `time`
//! crate's debugging form (`2026-12-01 6:50:08.0 +00:00:00`).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `t` in UTC, whole seconds, RFC 3339.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_are_rfc3339_utc_to_the_second() {
        assert_eq!(
            rfc3339(datetime!(2026-12-01 6:50:08.123 UTC)),
            "2026-12-01T06:50:08Z"
        );
        assert_eq!(
            rfc3339(datetime!(2026-12-01 7:50:08 +01:00)),
            "2026-12-01T06:50:08Z"
        );
    }
}
